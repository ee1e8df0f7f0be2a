package objstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// castagnoli is the CRC32C table used for chunks and shard headers.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaxShards is the largest K+M a shard may belong to.
const MaxShards = 256

// ShardSpec says which shard of which code a [ShardWriter] writes.
type ShardSpec struct {
	K     int // data shards, >= 1; a whole copy is K=1, M=0
	M     int // parity shards, >= 0; K+M <= MaxShards
	Index int // this shard, in [0, K+M)
	// BodySize is the size of the whole message body, or -1 if it is only
	// known at the end (then call [ShardWriter.SetBodySize] before Finish,
	// unless K is 1, where the body is the shard).
	BodySize int64
	// Gen names the writer's data and, once committed, the shard itself
	// (see [Store.DeleteShard]); 0 picks a random one. A node streaming a
	// shard to a peer chooses it, so that it can take back exactly that
	// shard even when the peer's answer was lost.
	Gen uint64
}

func (sp ShardSpec) check() error {
	switch {
	case sp.K < 1 || sp.M < 0 || sp.K+sp.M > MaxShards:
		return fmt.Errorf("%w: shard code %d+%d (want K >= 1, M >= 0, K+M <= %d)", lazaret.ErrInvalidArgument, sp.K, sp.M, MaxShards)
	case sp.Index < 0 || sp.Index >= sp.K+sp.M:
		return fmt.Errorf("%w: shard index %d outside [0, %d)", lazaret.ErrInvalidArgument, sp.Index, sp.K+sp.M)
	case sp.BodySize < -1:
		return fmt.Errorf("%w: body size %d", lazaret.ErrInvalidArgument, sp.BodySize)
	}
	return nil
}

// ShardInfo describes a stored shard.
type ShardInfo struct {
	ID        lazaret.ID
	K, M      int      // the code: K data and M parity shards
	Index     int      // which shard this is, in [0, K+M)
	Size      int64    // bytes in this shard
	BodySize  int64    // bytes in the whole message body
	ChunkSize int      // bytes per chunk (the last chunk may be shorter)
	SHA256    [32]byte // of this shard's bytes
}

// Chunks returns the number of chunks the shard is stored in.
func (si *ShardInfo) Chunks() int { return numChunks(si.Size, si.ChunkSize) }

func numChunks(size int64, chunkSize int) int {
	return int((size + int64(chunkSize) - 1) / int64(chunkSize))
}

// header is the stored form of a committed shard.
type header struct {
	ShardInfo
	gen       uint64    // generation whose chunks hold the data
	committed time.Time // store clock at commit, for orphan expiry
}

const (
	headerVersion = 1
	headerLen     = 1 + 2 + 2 + 2 + 8 + 8 + 4 + 8 + 8 + 32 + 4
)

func encodeHeader(h *header) []byte {
	b := make([]byte, 0, headerLen)
	b = append(b, headerVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(h.K))
	b = binary.BigEndian.AppendUint16(b, uint16(h.M))
	b = binary.BigEndian.AppendUint16(b, uint16(h.Index))
	b = binary.BigEndian.AppendUint64(b, uint64(h.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(h.BodySize))
	b = binary.BigEndian.AppendUint32(b, uint32(h.ChunkSize))
	b = binary.BigEndian.AppendUint64(b, h.gen)
	b = binary.BigEndian.AppendUint64(b, uint64(h.committed.UnixNano()))
	b = append(b, h.SHA256[:]...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeHeader decodes a header value; the caller fills in ID.
func decodeHeader(v []byte) (*header, error) {
	if len(v) != headerLen || v[0] != headerVersion {
		return nil, fmt.Errorf("bad shard header (%d bytes): %w", len(v), lazaret.ErrCorrupt)
	}
	if crc32.Checksum(v[:headerLen-4], castagnoli) != binary.BigEndian.Uint32(v[headerLen-4:]) {
		return nil, fmt.Errorf("shard header checksum: %w", lazaret.ErrCorrupt)
	}
	h := &header{}
	h.K = int(binary.BigEndian.Uint16(v[1:]))
	h.M = int(binary.BigEndian.Uint16(v[3:]))
	h.Index = int(binary.BigEndian.Uint16(v[5:]))
	h.Size = int64(binary.BigEndian.Uint64(v[7:]))
	h.BodySize = int64(binary.BigEndian.Uint64(v[15:]))
	h.ChunkSize = int(binary.BigEndian.Uint32(v[23:]))
	h.gen = binary.BigEndian.Uint64(v[27:])
	h.committed = time.Unix(0, int64(binary.BigEndian.Uint64(v[35:])))
	copy(h.SHA256[:], v[43:75])
	if h.Size < 0 || h.ChunkSize <= 0 {
		return nil, fmt.Errorf("shard header size %d chunk %d: %w", h.Size, h.ChunkSize, lazaret.ErrCorrupt)
	}
	return h, nil
}

// getHeader reads the header of shard index of id; nil, nil if there is none.
func getHeader(txn *badger.Txn, id lazaret.ID, index int) (*header, error) {
	item, err := txn.Get(headerKey(id, index))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h *header
	err = item.Value(func(v []byte) (err error) {
		h, err = decodeHeader(v)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("shard %d: %w", index, err)
	}
	h.ID = id
	return h, nil
}

// headers returns the headers of every committed shard of id, by index.
func headers(txn *badger.Txn, id lazaret.ID) ([]*header, error) {
	var hs []*header
	err := scanValues(txn, idPrefix(nsHeader, id), func(k, v []byte) error {
		h, err := decodeHeader(v)
		if err != nil {
			return fmt.Errorf("shard header %q: %w", k, err)
		}
		h.ID = id
		hs = append(hs, h)
		return nil
	})
	return hs, err
}

// deleteShardTxn deletes shard h (header, chunks, commit-time key) in txn.
func deleteShardTxn(txn *badger.Txn, h *header, d *delta) error {
	if err := txn.Delete(headerKey(h.ID, h.Index)); err != nil {
		return err
	}
	if err := txn.Delete(shardTimeKey(h.committed, h.ID, h.Index)); err != nil {
		return err
	}
	for n := range h.Chunks() {
		if err := txn.Delete(chunkKey(h.ID, h.Index, h.gen, n)); err != nil {
			return err
		}
	}
	d.shards--
	d.shardBytes -= h.Size
	return nil
}

// deleteShardsTxn deletes every committed shard of id in txn and returns how
// many there were.
func deleteShardsTxn(txn *badger.Txn, id lazaret.ID, d *delta) (int, error) {
	hs, err := headers(txn, id)
	if err != nil {
		return 0, err
	}
	for _, h := range hs {
		if err := deleteShardTxn(txn, h, d); err != nil {
			return 0, err
		}
	}
	return len(hs), nil
}

// ShardInfos returns the committed shards of id, ordered by index; an empty
// slice if there are none.
func (s *Store) ShardInfos(id lazaret.ID) ([]ShardInfo, error) {
	const op = "objstore.shardinfos"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	leave, err := s.enter()
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	defer leave()
	var hs []*header
	err = s.db.View(func(txn *badger.Txn) (err error) {
		hs, err = headers(txn, id)
		return err
	})
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	infos := make([]ShardInfo, len(hs))
	for i, h := range hs {
		infos[i] = h.ShardInfo
	}
	return infos, nil
}

// DeleteShard deletes shard index of id if the committed one is the one
// written with generation gen (see [ShardSpec.Gen]), and reports whether it
// did. A shard committed later under the same index by another writer is
// left alone: undoing one write never removes another's.
func (s *Store) DeleteShard(id lazaret.ID, index int, gen uint64) (bool, error) {
	const op = "objstore.deleteshard"
	if err := checkID(op, id); err != nil {
		return false, err
	}
	leave, err := s.enter()
	if err != nil {
		return false, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	defer leave()
	deleted := false
	err = s.update(func(txn *badger.Txn, d *delta) error {
		deleted = false
		h, err := getHeader(txn, id, index)
		if err != nil || h == nil || h.gen != gen {
			return err
		}
		deleted = true
		return deleteShardTxn(txn, h, d)
	})
	if err != nil {
		return false, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	return deleted, nil
}

// DeleteShards deletes every committed shard of id (headers and chunks) in
// one fsync'd transaction, leaving its metadata alone. Deleting a message
// without shards is not an error. Writes in progress are not affected.
func (s *Store) DeleteShards(id lazaret.ID) error {
	const op = "objstore.deleteshards"
	if err := checkID(op, id); err != nil {
		return err
	}
	leave, err := s.enter()
	if err != nil {
		return &lazaret.Error{Op: op, ID: id, Err: err}
	}
	defer leave()
	err = s.updateNeed(freeingNeed, func(txn *badger.Txn, d *delta) error {
		_, err := deleteShardsTxn(txn, id, d)
		return err
	})
	if err != nil {
		return &lazaret.Error{Op: op, ID: id, Err: err}
	}
	return nil
}
