package objstore

import (
	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// Key namespaces, for tests that count raw keys.
const (
	NSMeta      = nsMeta
	NSTime      = nsTime
	NSHeader    = nsHeader
	NSChunk     = nsChunk
	NSPending   = nsPending
	NSShardTime = nsShardTime
)

// KeyCount returns the number of keys in namespace ns.
func (s *Store) KeyCount(ns byte) int {
	n := 0
	_ = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(ns)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n
}

// CorruptChunk flips one bit of byte off of chunk n's data in committed shard
// index of id, writing the raw value back through badger.
func (s *Store) CorruptChunk(id lazaret.ID, index, n, off int) error {
	return s.db.Update(func(txn *badger.Txn) error {
		h, err := getHeader(txn, id, index)
		if err != nil {
			return err
		}
		if h == nil {
			return lazaret.ErrNotFound
		}
		k := chunkKey(id, index, h.gen, n)
		item, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err != nil {
			return err
		}
		v[4+off] ^= 0x40
		return txn.Set(k, v)
	})
}

// Flatten flushes memtables' deletions down the LSM tree (as compactions do
// over time) so that value-log GC sees the garbage.
func (s *Store) Flatten() error { return s.db.Flatten(2) }
