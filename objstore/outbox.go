package objstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// The change outbox: with Config.Outbox on, every metadata change appends a
// record naming the message and its new version in the same fsync'd
// transaction as the change itself, so a consumer (the PostgreSQL index
// feeder) can never miss one, even across crashes and long outages of
// whatever it feeds. Records carry no metadata: the consumer reads the
// message's current metadata when it applies them, which is never older than
// the change recorded. See the layout table in doc.go.

// OutboxKind says what happened to a message.
type OutboxKind uint8

// Outbox record kinds.
const (
	// OutboxUpsert: the message's metadata was stored or replaced (Commit,
	// PutMeta; a tombstone is an upsert of a deleted state).
	OutboxUpsert OutboxKind = 1
	// OutboxExpire: retention removed the message altogether.
	OutboxExpire OutboxKind = 2
)

func (k OutboxKind) String() string {
	switch k {
	case OutboxUpsert:
		return "upsert"
	case OutboxExpire:
		return "expire"
	}
	return fmt.Sprintf("OutboxKind(%d)", uint8(k))
}

// OutboxRecord is one change waiting in the outbox.
type OutboxRecord struct {
	Seq      uint64 // position in the outbox; increases with every append
	Kind     OutboxKind
	ID       lazaret.ID
	Version  lazaret.Version // the message's version after the change
	Enqueued time.Time       // when the change was made (store clock)
}

// OutboxStats describes the outbox backlog.
type OutboxStats struct {
	Enabled bool
	Records int64     // records waiting
	Oldest  time.Time // enqueue time of the oldest waiting record; zero if none
	// Overflow is set when changes were not recorded one by one (the outbox
	// was full or switched off): the consumer must resynchronise from the
	// metadata itself (see ClearOutboxOverflow and MetaPage).
	Overflow bool
}

// Names of the outbox's small store records.
const (
	outboxMarker   = "outbox"
	outboxOverflow = "outbox-overflow"
)

// outboxValueVersion is the first byte of an outbox record value.
const outboxValueVersion = 1

// outboxState is the outbox's in-memory state.
type outboxState struct {
	seq      atomic.Uint64 // last sequence number issued
	count    atomic.Int64  // records stored (maintained through delta)
	overflow atomic.Bool   // mirrors the outbox-overflow record
}

func outboxKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(prefix(nsOutbox), seq) }

func encodeOutboxValue(kind OutboxKind, id lazaret.ID, v lazaret.Version, enq time.Time) []byte {
	b := make([]byte, 0, 2+8+8+4+4+len(id))
	b = append(b, outboxValueVersion, byte(kind))
	b = binary.BigEndian.AppendUint64(b, uint64(enq.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(v.Wall))
	b = binary.BigEndian.AppendUint32(b, v.Logical)
	b = binary.BigEndian.AppendUint32(b, uint32(int32(v.Node)))
	return append(b, id...)
}

func decodeOutbox(k, v []byte) (OutboxRecord, error) {
	if len(k) != 10 || len(v) < 2+8+8+4+4+1 || v[0] != outboxValueVersion {
		return OutboxRecord{}, fmt.Errorf("bad outbox record %q (%d bytes): %w", k, len(v), lazaret.ErrCorrupt)
	}
	r := OutboxRecord{
		Seq:      binary.BigEndian.Uint64(k[2:]),
		Kind:     OutboxKind(v[1]),
		Enqueued: time.Unix(0, int64(binary.BigEndian.Uint64(v[2:]))),
		Version: lazaret.Version{
			Wall:    int64(binary.BigEndian.Uint64(v[10:])),
			Logical: binary.BigEndian.Uint32(v[18:]),
			Node:    int(int32(binary.BigEndian.Uint32(v[22:]))),
		},
		ID: lazaret.ID(v[26:]),
	}
	if r.Kind != OutboxUpsert && r.Kind != OutboxExpire {
		return OutboxRecord{}, fmt.Errorf("outbox record %d: unknown kind %d: %w", r.Seq, r.Kind, lazaret.ErrCorrupt)
	}
	return r, nil
}

// openOutbox runs at Open: it finds the last sequence number and counts the
// records, and reconciles the outbox with Config.Outbox. Turning the outbox
// on where it was off (or on a new store) sets the overflow flag, because
// changes made meanwhile were not recorded; turning it off drops it.
func (s *Store) openOutbox() error {
	var n int64
	var last uint64
	var marker, overflow bool
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(nsOutbox)})
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			last = binary.BigEndian.Uint64(it.Item().Key()[2:])
		}
		it.Close()
		for name, p := range map[string]*bool{outboxMarker: &marker, outboxOverflow: &overflow} {
			_, err := txn.Get(recordKey(name))
			if err == nil {
				*p = true
			} else if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch {
	case s.cfg.Outbox && !marker:
		err = s.update(func(txn *badger.Txn, _ *delta) error {
			if err := txn.Set(recordKey(outboxMarker), encTime(nil, s.clock.Now())); err != nil {
				return err
			}
			return txn.Set(recordKey(outboxOverflow), []byte{1})
		})
		overflow = true
	case !s.cfg.Outbox && marker:
		if _, err = s.deletePrefix(prefix(nsOutbox)); err == nil {
			err = s.deleteKeys([][]byte{recordKey(outboxMarker), recordKey(outboxOverflow)})
		}
		n, overflow = 0, false
	}
	if err != nil {
		return err
	}
	s.ob.seq.Store(last)
	s.ob.count.Store(n)
	s.ob.overflow.Store(overflow)
	return nil
}

// outboxAppendTxn records a change to message id in txn, if the outbox is
// on. When the outbox is full it sets the overflow flag instead.
func (s *Store) outboxAppendTxn(txn *badger.Txn, kind OutboxKind, id lazaret.ID, v lazaret.Version, d *delta) error {
	if !s.cfg.Outbox {
		return nil
	}
	if s.ob.count.Load() >= int64(s.cfg.OutboxMaxRecords) {
		s.ob.overflow.Store(true)
		return txn.Set(recordKey(outboxOverflow), []byte{1})
	}
	seq := s.ob.seq.Add(1)
	if err := txn.Set(outboxKey(seq), encodeOutboxValue(kind, id, v, s.clock.Now())); err != nil {
		return err
	}
	d.outbox++
	return nil
}

// OutboxRead returns up to max of the oldest outbox records, oldest first.
// Records stay until OutboxAck deletes them.
func (s *Store) OutboxRead(max int) ([]OutboxRecord, error) {
	const op = "objstore.outboxread"
	leave, err := s.enter()
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	var recs []OutboxRecord
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(nsOutbox), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(recs) < max; it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				r, err := decodeOutbox(item.Key(), v)
				recs = append(recs, r)
				return err
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	return recs, nil
}

// OutboxAck deletes records the consumer has applied. Records already gone
// are ignored. The deletion is not fsync'd on its own: after a crash a
// record may come back, and applying a change twice is harmless.
func (s *Store) OutboxAck(recs []OutboxRecord) error {
	const op = "objstore.outboxack"
	if len(recs) == 0 {
		return nil
	}
	leave, err := s.enter()
	if err != nil {
		return &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	for len(recs) > 0 {
		batch := recs[:min(len(recs), 1000)]
		recs = recs[len(batch):]
		err := s.updateNeed(freeingNeed, func(txn *badger.Txn, d *delta) error {
			for _, r := range batch {
				k := outboxKey(r.Seq)
				if _, err := txn.Get(k); errors.Is(err, badger.ErrKeyNotFound) {
					continue
				} else if err != nil {
					return err
				}
				if err := txn.Delete(k); err != nil {
					return err
				}
				d.outbox--
			}
			return nil
		})
		if err != nil {
			return &lazaret.Error{Op: op, Err: err}
		}
	}
	return nil
}

// OutboxStats returns the size and age of the backlog.
func (s *Store) OutboxStats() (OutboxStats, error) {
	st := OutboxStats{Enabled: s.cfg.Outbox, Records: s.ob.count.Load(), Overflow: s.ob.overflow.Load()}
	if !s.cfg.Outbox || st.Records == 0 {
		return st, nil
	}
	leave, err := s.enter()
	if err != nil {
		return st, &lazaret.Error{Op: "objstore.outboxstats", Err: err}
	}
	defer leave()
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(nsOutbox), PrefetchValues: false})
		defer it.Close()
		it.Rewind()
		if !it.Valid() {
			return nil
		}
		return it.Item().Value(func(v []byte) error {
			r, err := decodeOutbox(it.Item().Key(), v)
			st.Oldest = r.Enqueued
			return err
		})
	})
	if err != nil {
		return st, &lazaret.Error{Op: "objstore.outboxstats", Err: err}
	}
	return st, nil
}

// SetOutboxOverflow sets the overflow flag durably: the consumer will
// resynchronise everything. A consumer whose resynchronisation failed calls
// it to try again later.
func (s *Store) SetOutboxOverflow() error {
	return s.setOverflow(true)
}

// ClearOutboxOverflow clears the overflow flag. A consumer calls it just
// before it resynchronises: any change dropped before the call is in the
// metadata it then reads, and any dropped after sets the flag again.
func (s *Store) ClearOutboxOverflow() error {
	return s.setOverflow(false)
}

func (s *Store) setOverflow(on bool) error {
	const op = "objstore.outboxoverflow"
	leave, err := s.enter()
	if err != nil {
		return &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	err = s.update(func(txn *badger.Txn, _ *delta) error {
		if on {
			return txn.Set(recordKey(outboxOverflow), []byte{1})
		}
		return txn.Delete(recordKey(outboxOverflow))
	})
	if err != nil {
		return &lazaret.Error{Op: op, Err: err}
	}
	s.ob.overflow.Store(on)
	return nil
}

// Metas returns the current metadata of each id, in one consistent snapshot;
// an id without metadata (expired, or never stored) gives nil at its index.
func (s *Store) Metas(ids []lazaret.ID) ([]*lazaret.Metadata, error) {
	const op = "objstore.metas"
	leave, err := s.enter()
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	out := make([]*lazaret.Metadata, len(ids))
	err = s.db.View(func(txn *badger.Txn) error {
		for i, id := range ids {
			m, err := getMeta(txn, id)
			if err != nil {
				return fmt.Errorf("message %s: %w", id, err)
			}
			out[i] = m
		}
		return nil
	})
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	return out, nil
}

// MetaPage returns up to max metadata records in id order, starting after
// id after ("" starts at the first). An empty result means the end. Pages
// are independent snapshots: walking them all sees every record that exists
// throughout the walk.
func (s *Store) MetaPage(ctx context.Context, after lazaret.ID, max int) ([]*lazaret.Metadata, error) {
	const op = "objstore.metapage"
	if err := ctx.Err(); err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	leave, err := s.enter()
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	var out []*lazaret.Metadata
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(nsMeta), PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		start := prefix(nsMeta)
		if after != "" {
			start = append(metaKey(after), 0)
		}
		for it.Seek(start); it.Valid() && len(out) < max; it.Next() {
			item := it.Item()
			if after != "" && bytes.Equal(item.Key(), metaKey(after)) {
				continue
			}
			m := new(lazaret.Metadata)
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, m) }); err != nil {
				return fmt.Errorf("decoding metadata %q: %w (%w)", item.Key(), lazaret.ErrCorrupt, err)
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}
	return out, nil
}
