package objstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// timeValueVersion is the first byte of a time-index value.
const timeValueVersion = 1

// encodeTimeValue returns the value of a message's time-index key: a summary
// of the message that lets Open rebuild counters and List skip states without
// decoding metadata.
func encodeTimeValue(m *lazaret.Metadata) []byte {
	b := []byte{timeValueVersion, byte(m.State)}
	return binary.BigEndian.AppendUint64(b, uint64(m.Size))
}

func decodeTimeValue(v []byte) (lazaret.State, int64, error) {
	if len(v) != 10 || v[0] != timeValueVersion {
		return 0, 0, fmt.Errorf("bad time index value (%d bytes): %w", len(v), lazaret.ErrCorrupt)
	}
	return lazaret.State(v[1]), int64(binary.BigEndian.Uint64(v[2:])), nil
}

// checkMeta validates what the store needs of m.
func checkMeta(op string, m *lazaret.Metadata) error {
	if m == nil {
		return &lazaret.Error{Op: op, Err: fmt.Errorf("%w: nil metadata", lazaret.ErrInvalidArgument)}
	}
	if err := checkID(op, m.ID); err != nil {
		return err
	}
	if y := m.Received.Year(); m.Received.IsZero() || y < 1700 || y > 2200 {
		return &lazaret.Error{Op: op, ID: m.ID, Err: fmt.Errorf("%w: received time %v out of range", lazaret.ErrInvalidArgument, m.Received)}
	}
	if m.State < lazaret.StateQuarantined || m.State > lazaret.StateDeleted {
		return &lazaret.Error{Op: op, ID: m.ID, Err: fmt.Errorf("%w: state %v", lazaret.ErrInvalidArgument, m.State)}
	}
	if m.Size < 0 {
		return &lazaret.Error{Op: op, ID: m.ID, Err: fmt.Errorf("%w: negative size %d", lazaret.ErrInvalidArgument, m.Size)}
	}
	return nil
}

// Meta returns the metadata of message id, or an error wrapping
// lazaret.ErrNotFound.
func (s *Store) Meta(id lazaret.ID) (*lazaret.Metadata, error) {
	const op = "objstore.meta"
	if err := checkID(op, id); err != nil {
		return nil, err
	}
	leave, err := s.enter()
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	defer leave()
	var m *lazaret.Metadata
	err = s.db.View(func(txn *badger.Txn) error {
		m, err = getMeta(txn, id)
		return err
	})
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	if m == nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.ErrNotFound}
	}
	return m, nil
}

// getMeta reads id's metadata in txn; it returns nil, nil if there is none.
func getMeta(txn *badger.Txn, id lazaret.ID) (*lazaret.Metadata, error) {
	item, err := txn.Get(metaKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m := new(lazaret.Metadata)
	err = item.Value(func(v []byte) error { return json.Unmarshal(v, m) })
	if err != nil {
		return nil, fmt.Errorf("decoding metadata: %w (%w)", lazaret.ErrCorrupt, err)
	}
	return m, nil
}

// PutMeta stores m, replacing any metadata stored for m.ID, and moves the
// message's time-index entry if Received changed. It returns once the change
// is fsync'd. It does not touch shards. The store does not merge versions:
// callers decide which record wins (see lazaret.Metadata.Version).
func (s *Store) PutMeta(ctx context.Context, m *lazaret.Metadata) error {
	const op = "objstore.putmeta"
	if err := checkMeta(op, m); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &lazaret.Error{Op: op, ID: m.ID, Err: err}
	}
	leave, err := s.enter()
	if err != nil {
		return &lazaret.Error{Op: op, ID: m.ID, Err: err}
	}
	defer leave()
	val, err := json.Marshal(m)
	if err != nil {
		return &lazaret.Error{Op: op, ID: m.ID, Err: err}
	}
	need := int64(writeNeed)
	if m.State == lazaret.StateDeleted {
		need = freeingNeed // a tombstone lets its body go
	}
	err = s.updateNeed(need, func(txn *badger.Txn, d *delta) error {
		if err := putMetaTxn(txn, m, val, d); err != nil {
			return err
		}
		return s.outboxAppendTxn(txn, OutboxUpsert, m.ID, m.Version, d)
	})
	if err != nil {
		return &lazaret.Error{Op: op, ID: m.ID, Err: err}
	}
	return nil
}

// putMetaTxn writes metadata m (JSON val) and its time-index key in txn,
// removing the old time-index key, and records the counter change in d.
func putMetaTxn(txn *badger.Txn, m *lazaret.Metadata, val []byte, d *delta) error {
	old, err := getMeta(txn, m.ID)
	if err != nil {
		return err
	}
	if old != nil {
		d.addMessage(old.State, old.Size, -1)
		if !old.Received.Equal(m.Received) {
			if err := txn.Delete(timeKey(old.Received, m.ID)); err != nil {
				return err
			}
		}
	}
	if err := txn.Set(metaKey(m.ID), val); err != nil {
		return err
	}
	if err := txn.Set(timeKey(m.Received, m.ID), encodeTimeValue(m)); err != nil {
		return err
	}
	d.addMessage(m.State, m.Size, 1)
	return nil
}

// deleteMessageTxn deletes id's metadata, time-index key and shards in txn.
// It reports whether there was metadata to delete.
func deleteMessageTxn(txn *badger.Txn, id lazaret.ID, d *delta) (bool, error) {
	old, err := getMeta(txn, id)
	if err != nil {
		return false, err
	}
	if old != nil {
		d.addMessage(old.State, old.Size, -1)
		if err := txn.Delete(timeKey(old.Received, id)); err != nil {
			return false, err
		}
		if err := txn.Delete(metaKey(id)); err != nil {
			return false, err
		}
	}
	if _, err := deleteShardsTxn(txn, id, d); err != nil {
		return false, err
	}
	return old != nil, nil
}
