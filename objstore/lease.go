package objstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// idLeaseRecord names the record holding the id allocator's lease.
const idLeaseRecord = "idlease"

// LoadIDLease returns the value last stored with StoreIDLease, or 0 if none
// was ever stored. The id allocator keeps the end of the time range it may
// issue ids from here, so a restart never reissues an id.
func (s *Store) LoadIDLease() (int64, error) {
	const op = "objstore.loadidlease"
	leave, err := s.enter()
	if err != nil {
		return 0, &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	var until int64
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(recordKey(idLeaseRecord))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("id lease record of %d bytes: %w", len(v), lazaret.ErrCorrupt)
			}
			until = int64(binary.BigEndian.Uint64(v))
			return nil
		})
	})
	if err != nil {
		return 0, &lazaret.Error{Op: op, Err: err}
	}
	return until, nil
}

// StoreIDLease durably (fsync'd) records until as the id lease, replacing the
// previous value; it does not check that the lease only grows.
func (s *Store) StoreIDLease(until int64) error {
	const op = "objstore.storeidlease"
	leave, err := s.enter()
	if err != nil {
		return &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	err = s.update(func(txn *badger.Txn, _ *delta) error {
		return txn.Set(recordKey(idLeaseRecord), binary.BigEndian.AppendUint64(nil, uint64(until)))
	})
	if err != nil {
		return &lazaret.Error{Op: op, Err: err}
	}
	return nil
}
