package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// Expire deletes every message received before `before`, whatever its
// state: metadata, time-index key and all its shards. It also deletes shards
// committed before `before` whose message has no metadata (replica shards
// whose metadata never arrived). It returns the number of messages deleted.
// Work is done in fsync'd transactions of Config.ExpireBatch messages; if ctx
// is cancelled Expire stops between batches and returns what it deleted so
// far with ctx's error. Space in the value log is reclaimed later by RunGC.
func (s *Store) Expire(ctx context.Context, before time.Time) (int, error) {
	const op = "objstore.expire"
	leave, err := s.enter()
	if err != nil {
		return 0, &lazaret.Error{Op: op, Err: err}
	}
	defer leave()
	n, err := s.expireBatches(ctx, nsTime, before, s.expireMessagesTxn)
	if err != nil {
		return n, &lazaret.Error{Op: op, Err: err}
	}
	orphans, err := s.expireBatches(ctx, nsShardTime, before, s.expireShardsTxn)
	if err != nil {
		return n, &lazaret.Error{Op: op, Err: err}
	}
	if n > 0 || orphans > 0 {
		s.log.Info("expired", "before", before, "messages", n, "orphan_shards", orphans)
	}
	return n, nil
}

// expireBatches walks namespace ns (time-ordered keys) forwards up to time
// before, handing keys to fn in batches, each in its own transaction, and
// returns the sum of fn's counts. A batch too big for one transaction is
// split.
func (s *Store) expireBatches(ctx context.Context, ns byte, before time.Time, fn func(*badger.Txn, [][]byte, *delta) (int, error)) (int, error) {
	limit := encTime(prefix(ns), before)
	from := prefix(ns)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var keys [][]byte
		err := s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(ns)})
			defer it.Close()
			for it.Seek(from); it.Valid() && len(keys) < s.cfg.ExpireBatch; it.Next() {
				k := it.Item().Key()
				if bytes.Compare(k, limit) >= 0 {
					break
				}
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil || len(keys) == 0 {
			return total, err
		}
		for rest := keys; len(rest) > 0; {
			batch := rest
			var n int
			for {
				err = s.updateNeed(freeingNeed, func(txn *badger.Txn, d *delta) (err error) {
					n, err = fn(txn, batch, d)
					return err
				})
				if !errors.Is(err, badger.ErrTxnTooBig) || len(batch) == 1 {
					break
				}
				batch = batch[:len(batch)/2]
			}
			if err != nil {
				return total, err
			}
			total += n
			rest = rest[len(batch):]
		}
		// Continue after the last key seen; keys fn skipped stay behind.
		from = append(keys[len(keys)-1], 0)
	}
}

// expireMessagesTxn deletes the messages whose time-index keys are keys.
func (s *Store) expireMessagesTxn(txn *badger.Txn, keys [][]byte, d *delta) (int, error) {
	n := 0
	for _, k := range keys {
		if _, err := txn.Get(k); errors.Is(err, badger.ErrKeyNotFound) {
			continue // deleted or moved since the scan
		} else if err != nil {
			return 0, err
		}
		t, id, ok := splitTimeKey(k)
		if !ok {
			return 0, fmt.Errorf("bad time index key %q: %w", k, lazaret.ErrCorrupt)
		}
		m, err := getMeta(txn, id)
		if err != nil {
			return 0, fmt.Errorf("message %s: %w", id, err)
		}
		if m == nil || !m.Received.Equal(t) {
			// A stray index entry: drop it alone.
			if err := txn.Delete(k); err != nil {
				return 0, err
			}
			continue
		}
		if _, err := deleteMessageTxn(txn, id, d); err != nil {
			return 0, fmt.Errorf("message %s: %w", id, err)
		}
		if err := s.outboxAppendTxn(txn, OutboxExpire, id, m.Version, d); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// expireShardsTxn deletes the shards named by commit-time keys whose message
// has no metadata.
func (s *Store) expireShardsTxn(txn *badger.Txn, keys [][]byte, d *delta) (int, error) {
	n := 0
	for _, k := range keys {
		t, id, index, ok := splitShardTimeKey(k)
		if !ok {
			return 0, fmt.Errorf("bad shard time key %q: %w", k, lazaret.ErrCorrupt)
		}
		if _, err := txn.Get(metaKey(id)); err == nil {
			continue // the message's own received time governs it
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return 0, err
		}
		h, err := getHeader(txn, id, index)
		if err != nil {
			return 0, fmt.Errorf("message %s: %w", id, err)
		}
		if h == nil || !h.committed.Equal(t) {
			if err := txn.Delete(k); err != nil {
				return 0, err
			}
			continue
		}
		if err := deleteShardTxn(txn, h, d); err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// StartBackground starts a goroutine that, every interval (Config.GCInterval
// if interval is 0), expires messages received more than retention before
// the store clock's now (no expiry if retention is 0) and then runs RunGC.
// It stops when ctx is cancelled or the store is closed; Close waits for it.
// Errors are logged.
func (s *Store) StartBackground(ctx context.Context, retention, interval time.Duration) {
	if interval <= 0 {
		interval = s.cfg.GCInterval
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	s.wg.Add(2)
	go func() { // cancels the loop's context when the store closes
		defer s.wg.Done()
		select {
		case <-s.done:
		case <-ctx.Done():
		}
		cancel()
	}()
	go func() {
		defer s.wg.Done()
		defer cancel()
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if retention > 0 {
				if _, err := s.Expire(ctx, s.clock.Now().Add(-retention)); err != nil && ctx.Err() == nil {
					s.log.Error("retention failed", "err", err)
				}
			}
			if err := s.RunGC(); err != nil && ctx.Err() == nil {
				s.log.Error("value log GC failed", "err", err)
			}
		}
	}()
}
