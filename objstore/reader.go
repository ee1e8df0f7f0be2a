package objstore

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// OpenShard returns shard index of message id and a reader of its bytes. The
// reader checks each chunk's CRC32C before handing out any of its bytes, and
// the shard's size and SHA-256 before returning io.EOF; a mismatch is an
// *lazaret.Error wrapping lazaret.ErrCorrupt that names the message, shard
// and chunk. Each chunk is read in its own short transaction, so a slow
// reader holds nothing back; if the shard is deleted or replaced meanwhile,
// Read fails with an error wrapping lazaret.ErrNotFound. The caller must
// close the reader.
func (s *Store) OpenShard(id lazaret.ID, index int) (ShardInfo, io.ReadCloser, error) {
	const op = "objstore.openshard"
	if err := checkID(op, id); err != nil {
		return ShardInfo{}, nil, err
	}
	if index < 0 || index >= MaxShards {
		return ShardInfo{}, nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: shard index %d", lazaret.ErrInvalidArgument, index)}
	}
	leave, err := s.enter()
	if err != nil {
		return ShardInfo{}, nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	defer leave()
	var h *header
	err = s.db.View(func(txn *badger.Txn) (err error) {
		h, err = getHeader(txn, id, index)
		return err
	})
	if err != nil {
		return ShardInfo{}, nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	if h == nil {
		return ShardInfo{}, nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("shard %d: %w", index, lazaret.ErrNotFound)}
	}
	return h.ShardInfo, &shardReader{s: s, h: h, chunks: h.Chunks(), sha: sha256.New()}, nil
}

// shardReader reads and verifies one committed shard, chunk by chunk.
type shardReader struct {
	s      *Store
	h      *header
	chunks int
	next   int    // next chunk to load
	raw    []byte // last chunk value: CRC32C(4) + data
	buf    []byte // unread verified bytes of the last chunk
	read   int64
	sha    hash.Hash
	err    error // sticky: io.EOF or the failure
}

const readOp = "objstore.read"

func (r *shardReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.next == r.chunks {
			r.err = r.verifyEnd()
			return 0, r.err
		}
		if err := r.load(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// WriteTo writes the rest of the shard to w, chunk by chunk, without an
// intermediate copy.
func (r *shardReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if len(r.buf) > 0 {
			n, err := w.Write(r.buf)
			total += int64(n)
			r.buf = r.buf[n:]
			if err != nil {
				return total, err
			}
			continue
		}
		if r.err != nil {
			if r.err == io.EOF {
				return total, nil
			}
			return total, r.err
		}
		if r.next == r.chunks {
			r.err = r.verifyEnd()
			continue
		}
		if err := r.load(); err != nil {
			r.err = err
		}
	}
}

func (r *shardReader) corrupt(format string, args ...any) error {
	return &lazaret.Error{Op: readOp, ID: r.h.ID, Err: fmt.Errorf("shard %d: %w: %s", r.h.Index, lazaret.ErrCorrupt, fmt.Sprintf(format, args...))}
}

// verifyEnd checks the size and SHA-256 of the whole shard.
func (r *shardReader) verifyEnd() error {
	if r.read != r.h.Size {
		return r.corrupt("read %d bytes, header says %d", r.read, r.h.Size)
	}
	var sum [32]byte
	r.sha.Sum(sum[:0])
	if sum != r.h.SHA256 {
		return r.corrupt("SHA-256 %x, header says %x", sum, r.h.SHA256)
	}
	return io.EOF
}

// load reads and verifies chunk r.next.
func (r *shardReader) load() error {
	leave, err := r.s.enter()
	if err != nil {
		return &lazaret.Error{Op: readOp, ID: r.h.ID, Err: err}
	}
	defer leave()
	n := r.next
	want := int64(r.h.ChunkSize)
	if rest := r.h.Size - int64(n)*want; rest < want {
		want = rest
	}
	var missing, replaced bool
	err = r.s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(chunkKey(r.h.ID, r.h.Index, r.h.gen, n))
		if errors.Is(err, badger.ErrKeyNotFound) {
			missing = true
			cur, err := getHeader(txn, r.h.ID, r.h.Index)
			replaced = err == nil && (cur == nil || cur.gen != r.h.gen)
			return nil
		}
		if err != nil {
			return err
		}
		r.raw, err = item.ValueCopy(r.raw[:0])
		return err
	})
	switch {
	case err != nil:
		return &lazaret.Error{Op: readOp, ID: r.h.ID, Err: fmt.Errorf("shard %d chunk %d: %w", r.h.Index, n, err)}
	case replaced:
		return &lazaret.Error{Op: readOp, ID: r.h.ID, Err: fmt.Errorf("shard %d deleted or replaced while reading: %w", r.h.Index, lazaret.ErrNotFound)}
	case missing:
		return r.corrupt("chunk %d missing", n)
	case len(r.raw) < 4:
		return r.corrupt("chunk %d truncated to %d bytes", n, len(r.raw))
	}
	data := r.raw[4:]
	if got, sum := crc32.Checksum(data, castagnoli), binary.BigEndian.Uint32(r.raw); got != sum {
		return r.corrupt("chunk %d CRC32C %08x, stored %08x", n, got, sum)
	}
	if int64(len(data)) != want {
		return r.corrupt("chunk %d has %d bytes, want %d", n, len(data), want)
	}
	r.sha.Write(data)
	r.read += int64(len(data))
	r.buf = data
	r.next++
	return nil
}

// Close releases the reader. It never fails.
func (r *shardReader) Close() error {
	r.raw, r.buf = nil, nil
	if r.err == nil {
		r.err = errors.New("objstore: read after Close")
	}
	return nil
}
