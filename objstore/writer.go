package objstore

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// writerState is where a ShardWriter is in its life.
type writerState int

const (
	writerOpen writerState = iota
	writerFinished
	writerCommitted
	writerAborted
	writerFailed
)

// ShardWriter writes one shard of one message. Its bytes stay invisible until
// [Store.Commit] or [Store.CommitShards] includes it; until then
// [ShardWriter.Abort] or a crash followed by [Open] removes every trace.
//
// Data is cut into chunks of Config.ChunkSize bytes; each full chunk is
// written (fsync'd) once more data follows it, so memory use is one chunk per writer. The
// first chunk written goes in the same atomic write as the writer's pending
// marker. A shard of at most one chunk is never written before Commit: its
// chunk is stored by the commit transaction itself, which saves an fsync.
//
// A ShardWriter must be used by one goroutine at a time (Commit counts as a
// use).
type ShardWriter struct {
	s         *Store
	id        lazaret.ID
	spec      ShardSpec
	gen       uint64
	chunkSize int

	state  writerState
	err    error  // sticky write error
	val    []byte // CRC32C(4) + chunk buffer, reused for every chunk
	fill   int    // bytes of chunk data in val[4:]
	chunks int    // chunks written to the database
	marked bool   // pending marker stored
	size   int64
	sha    hash.Hash
	info   ShardInfo
}

// initialChunkBuf is the chunk buffer a writer starts with; it grows up to
// the chunk size.
const initialChunkBuf = 32 << 10

// NewShardWriter starts writing shard spec.Index of message id. Nothing is
// stored until the first full chunk (with the pending marker) or Commit.
func (s *Store) NewShardWriter(id lazaret.ID, spec ShardSpec) (*ShardWriter, error) {
	const op = "objstore.newshardwriter"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	if err := spec.check(); err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	gen := spec.Gen
	if gen == 0 {
		gen = NewGen()
	}
	return &ShardWriter{
		s:         s,
		id:        id,
		spec:      spec,
		gen:       gen,
		chunkSize: s.cfg.ChunkSize,
		val:       make([]byte, 4, 4+min(s.cfg.ChunkSize, initialChunkBuf)),
		sha:       sha256.New(),
	}, nil
}

// NewGen returns a random, non-zero writer generation (see [ShardSpec.Gen]).
func NewGen() uint64 {
	var g [8]byte
	for {
		_, _ = rand.Read(g[:]) // never fails (crypto/rand panics instead)
		if v := binary.BigEndian.Uint64(g[:]); v != 0 {
			return v
		}
	}
}

// Gen returns the writer's generation (see [ShardSpec.Gen]).
func (w *ShardWriter) Gen() uint64 { return w.gen }

// ID returns the message id the writer writes a shard of.
func (w *ShardWriter) ID() lazaret.ID { return w.id }

// Spec returns the writer's shard spec.
func (w *ShardWriter) Spec() ShardSpec { return w.spec }

// SetBodySize sets the size of the whole body when the spec said -1. It must
// be called before Finish.
func (w *ShardWriter) SetBodySize(n int64) error {
	if w.state != writerOpen || n < 0 {
		return &lazaret.Error{Op: "objstore.setbodysize", ID: w.id, Err: fmt.Errorf("%w: body size %d on writer in state %d", lazaret.ErrInvalidArgument, n, w.state)}
	}
	w.spec.BodySize = n
	return nil
}

// Write appends p to the shard, storing each chunk as it fills.
func (w *ShardWriter) Write(p []byte) (int, error) {
	const op = "objstore.write"
	if w.state != writerOpen {
		return 0, w.stateErr(op)
	}
	written := 0
	for len(p) > 0 {
		// A full chunk is stored only when more data follows, so that a
		// body of exactly one chunk is still stored by Commit alone.
		if w.fill == w.chunkSize {
			if err := w.flush(); err != nil {
				return written, w.fail(op, err)
			}
		}
		// Grow the buffer as data arrives, so that the many small messages
		// do not each allocate (and zero) a whole chunk.
		n := min(len(p), w.chunkSize-w.fill)
		w.val = append(w.val[:4+w.fill], p[:n]...)
		w.fill += n
		written += n
		p = p[n:]
	}
	return written, nil
}

// flush stores the buffered chunk (with the pending marker, the first time).
func (w *ShardWriter) flush() error {
	leave, err := w.s.enter()
	if err != nil {
		return err
	}
	defer leave()
	data := w.val[4 : 4+w.fill]
	binary.BigEndian.PutUint32(w.val, crc32.Checksum(data, castagnoli))
	// update returns after the write is applied (and fsync'd), so w.val may
	// be reused.
	err = w.s.updateNeed(int64(len(w.val))+writeNeed, func(txn *badger.Txn, _ *delta) error {
		if !w.marked {
			created := binary.BigEndian.AppendUint64(nil, uint64(w.s.clock.Now().UnixNano()))
			if err := txn.Set(pendingKey(w.id, w.spec.Index, w.gen), created); err != nil {
				return err
			}
		}
		return txn.Set(chunkKey(w.id, w.spec.Index, w.gen, w.chunks), w.val[:4+w.fill])
	})
	if err != nil {
		return err
	}
	w.marked = true
	w.sha.Write(data)
	w.size += int64(w.fill)
	w.chunks++
	w.fill = 0
	return nil
}

// Finish ends the shard: it stores the last chunk if earlier chunks are
// stored (a single-chunk shard waits for Commit), and computes the size and
// SHA-256. The shard stays invisible until committed.
func (w *ShardWriter) Finish() (ShardInfo, error) {
	const op = "objstore.finish"
	if w.state != writerOpen {
		if w.state == writerFinished {
			return w.info, nil
		}
		return ShardInfo{}, w.stateErr(op)
	}
	if w.marked && w.fill > 0 {
		if err := w.flush(); err != nil {
			return ShardInfo{}, w.fail(op, err)
		}
	}
	size := w.size + int64(w.fill)
	if w.fill > 0 { // unflushed single chunk, stored by Commit
		w.sha.Write(w.val[4 : 4+w.fill])
		binary.BigEndian.PutUint32(w.val, crc32.Checksum(w.val[4:4+w.fill], castagnoli))
	}
	body := w.spec.BodySize
	if w.spec.K == 1 {
		if body == -1 {
			body = size
		}
		if body != size {
			return ShardInfo{}, w.fail(op, fmt.Errorf("%w: shard of 1+%d code has %d bytes, body size is %d", lazaret.ErrInvalidArgument, w.spec.M, size, body))
		}
	} else if body == -1 {
		return ShardInfo{}, w.fail(op, fmt.Errorf("%w: body size of %d+%d shard not set", lazaret.ErrInvalidArgument, w.spec.K, w.spec.M))
	}
	w.info = ShardInfo{
		ID: w.id, K: w.spec.K, M: w.spec.M, Index: w.spec.Index,
		Size: size, BodySize: body, ChunkSize: w.chunkSize,
	}
	w.sha.Sum(w.info.SHA256[:0])
	w.state = writerFinished
	return w.info, nil
}

// tail returns the value of the unflushed single chunk Commit must store, or
// nil.
func (w *ShardWriter) tail() []byte {
	if w.marked || w.fill == 0 {
		return nil
	}
	return w.val[:4+w.fill]
}

// Abort discards the shard: it deletes the stored chunks and the pending
// marker. Abort after Commit or Abort does nothing, so `defer w.Abort()` is
// safe.
func (w *ShardWriter) Abort() error {
	if w.state == writerCommitted || w.state == writerAborted {
		return nil
	}
	w.state = writerAborted
	w.val = nil
	if !w.marked {
		return nil
	}
	leave, err := w.s.enter()
	if err != nil {
		// Open sweeps the marker after a restart.
		return &lazaret.Error{Op: "objstore.abort", ID: w.id, Err: err}
	}
	defer leave()
	if _, err := w.s.deletePrefix(chunkPrefix(w.id, w.spec.Index, w.gen)); err != nil {
		return &lazaret.Error{Op: "objstore.abort", ID: w.id, Err: err}
	}
	if err := w.s.deleteKeys([][]byte{pendingKey(w.id, w.spec.Index, w.gen)}); err != nil {
		return &lazaret.Error{Op: "objstore.abort", ID: w.id, Err: err}
	}
	return nil
}

func (w *ShardWriter) fail(op string, err error) error {
	w.state = writerFailed
	w.err = err
	return &lazaret.Error{Op: op, ID: w.id, Err: fmt.Errorf("shard %d: %w", w.spec.Index, err)}
}

var errWriterState = fmt.Errorf("%w: shard writer not open", lazaret.ErrInvalidArgument)

func (w *ShardWriter) stateErr(op string) error {
	switch w.state {
	case writerFailed:
		return &lazaret.Error{Op: op, ID: w.id, Err: fmt.Errorf("shard %d: earlier write failed: %w", w.spec.Index, w.err)}
	case writerFinished:
		return &lazaret.Error{Op: op, ID: w.id, Err: fmt.Errorf("shard %d: %w: already finished", w.spec.Index, errWriterState)}
	case writerCommitted:
		return &lazaret.Error{Op: op, ID: w.id, Err: fmt.Errorf("shard %d: %w: already committed", w.spec.Index, errWriterState)}
	default:
		return &lazaret.Error{Op: op, ID: w.id, Err: fmt.Errorf("shard %d: %w: aborted", w.spec.Index, errWriterState)}
	}
}
