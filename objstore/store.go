package objstore

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/lazaret/lazaret"
)

// Store is a node's durable local store of message metadata and body shards,
// kept in one badger database. It is safe for concurrent use. Writes of
// different messages proceed in parallel and share fsyncs (group commit,
// see update).
type Store struct {
	cfg   Config
	db    *badger.DB
	log   *slog.Logger
	clock lazaret.Clock

	// mu is held shared by every operation and exclusively by Close, so that
	// Close waits for running operations and later ones fail cleanly.
	mu        sync.RWMutex
	closed    bool
	done      chan struct{} // closed by Close; stops background work
	closeOnce sync.Once
	wg        sync.WaitGroup

	// Counters behind Stats, rebuilt at Open and maintained by every write.
	messages, bodyBytes, shards, shardBytes atomic.Int64
	// ws counts what writes cost (writestats.go).
	ws writeCounters

	// space is the free-space guard (space.go).
	space space

	// ob is the change outbox's in-memory state (outbox.go).
	ob outboxState

	// Group commit (see update).
	commitCh      chan *commitReq
	stopCommitter chan struct{} // closed by Close after operations finish
	committerDone chan struct{} // closed when the committer has stopped
}

// errClosed is returned by operations on a closed Store.
var errClosed = fmt.Errorf("objstore closed: %w", lazaret.ErrUnavailable)

// maxConflictRetries bounds how often a read-modify-write transaction is
// retried when a concurrent write to the same keys wins.
const maxConflictRetries = 200

// Open opens (creating if needed) the store in cfg.Dir. It deletes the chunks
// of shard writes that never committed (a crash or kill between
// NewShardWriter and Commit), then rebuilds the counters behind Stats. A nil
// log discards logs; a nil clock means the system clock.
func Open(cfg Config, log *slog.Logger, clock lazaret.Clock) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = lazaret.SystemClock{}
	}
	log = log.With("component", "objstore", "dir", cfg.Dir)
	db, err := badger.Open(cfg.badgerOptions(badgerLogger{log.With("lib", "badger")}))
	if err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) || strings.Contains(err.Error(), "Cannot acquire directory lock") {
			// Badger holds an flock on the directory and writes the
			// holder's pid into LOCK; its error keeps no errno to test.
			return nil, fmt.Errorf("objstore.Open %s: %w", cfg.Dir, lockHolder(cfg.Dir))
		}
		return nil, fmt.Errorf("objstore.Open %s: %w", cfg.Dir, err)
	}
	s := &Store{cfg: cfg, db: db, log: log, clock: clock, done: make(chan struct{}),
		commitCh: make(chan *commitReq), stopCommitter: make(chan struct{}), committerDone: make(chan struct{})}
	s.startWriteStats()
	go s.committer()
	if err := s.sweepPending(); errors.Is(err, lazaret.ErrDiskFull) {
		// Leftover chunks are invisible; a later Open sweeps them. A node
		// restarted on a full disk must still come up and serve reads.
		log.Warn("unfinished writes left for a later start: disk full", "err", err)
	} else if err != nil {
		s.stopCommitting()
		_ = db.Close()
		return nil, fmt.Errorf("objstore.Open %s: sweeping unfinished writes: %w", cfg.Dir, err)
	}
	if err := s.rebuildCounters(); err != nil {
		s.stopCommitting()
		_ = db.Close()
		return nil, fmt.Errorf("objstore.Open %s: counting: %w", cfg.Dir, err)
	}
	if err := s.openOutbox(); err != nil {
		s.stopCommitting()
		_ = db.Close()
		return nil, fmt.Errorf("objstore.Open %s: outbox: %w", cfg.Dir, err)
	}
	log.Info("objstore opened", "messages", s.messages.Load(), "shards", s.shards.Load())
	return s, nil
}

// Close stops background work, waits for running operations and closes the
// database. Operations after Close fail with an error wrapping
// lazaret.ErrUnavailable. Close is idempotent.
func (s *Store) Close() error {
	// Signal background work first, so that it stops between batches
	// instead of holding Close up.
	s.closeOnce.Do(func() { close(s.done) })
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	s.stopCommitting()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("objstore.Close: %w", err)
	}
	return nil
}

// stopCommitting stops the committer goroutine (Open's error paths).
func (s *Store) stopCommitting() {
	close(s.stopCommitter)
	<-s.committerDone
}

// enter marks the start of an operation; call the returned func when done.
func (s *Store) enter() (func(), error) {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return nil, errClosed
	}
	return s.mu.RUnlock, nil
}

// delta is a change to the Stats counters made by one transaction.
type delta struct{ messages, bodyBytes, shards, shardBytes, outbox int64 }

func (s *Store) apply(d *delta) {
	s.ob.count.Add(d.outbox)
	s.messages.Add(d.messages)
	s.bodyBytes.Add(d.bodyBytes)
	s.shards.Add(d.shards)
	s.shardBytes.Add(d.shardBytes)
}

// update runs fn in a read-write transaction and commits it (fsync'd when
// SyncWrites is on). The counter changes fn records are applied only if the
// commit succeeds.
//
// Group commit: badger fsyncs its write-ahead log once per committed
// transaction, so concurrent callers would each pay a full fsync. Instead,
// update hands fn to the committer goroutine, which runs the fns of every
// caller waiting at that moment in one transaction, in arrival order, and
// commits it with one fsync. Each fn sees the writes of those before it, as
// if they had run one after another. fn may therefore run more than once (a
// retry after a conflict, or a rerun without a failed neighbour), so it must
// derive everything from what it reads in txn.
//
// update is for transactions that add at most writeNeed bytes; see
// updateNeed.
func (s *Store) update(fn func(txn *badger.Txn, d *delta) error) error {
	return s.updateNeed(writeNeed, fn)
}

// updateNeed is update for a transaction that adds up to need bytes, or
// deletes (need == freeingNeed). It is refused with lazaret.ErrDiskFull when
// the file system cannot take need bytes and keep the reserve (space.go).
func (s *Store) updateNeed(need int64, fn func(txn *badger.Txn, d *delta) error) error {
	req := &commitReq{fn: fn, need: need, done: make(chan error, 1)}
	select {
	case s.commitCh <- req:
	case <-s.committerDone:
		return errClosed
	}
	return <-req.done
}

// commitReq is one caller's transaction function waiting for the committer.
type commitReq struct {
	fn   func(*badger.Txn, *delta) error
	need int64 // bytes fn may add; freeingNeed for deletes
	d    delta
	done chan error
}

// maxGroup bounds how many callers share one transaction.
const maxGroup = 64

// committer runs waiting update calls in groups until the store closes.
func (s *Store) committer() {
	defer close(s.committerDone)
	for {
		var first *commitReq
		select {
		case first = <-s.commitCh:
		case <-s.stopCommitter:
			return
		}
		group := []*commitReq{first}
	drain:
		for len(group) < maxGroup {
			select {
			case r := <-s.commitCh:
				group = append(group, r)
			default:
				break drain
			}
		}
		if group = s.admit(group); len(group) > 0 {
			s.commitGroup(group)
		}
	}
}

// admit answers the requests of group that the free space cannot take with
// lazaret.ErrDiskFull and returns the others, with one look at the free
// space for the whole group.
func (s *Store) admit(group []*commitReq) []*commitReq {
	needs := make([]int64, len(group))
	for i, r := range group {
		needs[i] = r.need
	}
	errs := s.admitNeeds(needs)
	kept := group[:0]
	for i, r := range group {
		if errs[i] != nil {
			r.done <- errs[i]
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// commitGroup commits group in one transaction, retrying on conflicts with
// transactions outside the committer (none today, but badger checks), and
// answers every request.
func (s *Store) commitGroup(group []*commitReq) {
	for attempt := 0; len(group) > 0; attempt++ {
		if attempt >= maxConflictRetries {
			err := fmt.Errorf("objstore: gave up after %d transaction conflicts: %w", maxConflictRetries, lazaret.ErrUnavailable)
			for _, r := range group {
				r.done <- err
			}
			return
		}
		if attempt > 0 {
			time.Sleep(rand.N(time.Duration(min(attempt, 20)) * 500 * time.Microsecond))
		}
		txn := s.db.NewTransaction(true)
		failed := -1
		var ferr error
		for i, r := range group {
			r.d = delta{}
			if ferr = r.fn(txn, &r.d); ferr != nil {
				failed = i
				break
			}
		}
		if failed >= 0 {
			txn.Discard()
			if errors.Is(ferr, badger.ErrTxnTooBig) && len(group) > 1 {
				// Too much for one transaction: commit the halves apart.
				half := len(group) / 2
				s.commitGroup(group[:half])
				s.commitGroup(group[half:])
				return
			}
			// The failed fn's partial writes are in txn: answer it and
			// run the others again without it.
			group[failed].done <- ferr
			group = append(group[:failed:failed], group[failed+1:]...)
			attempt--
			continue
		}
		err := txn.Commit()
		txn.Discard()
		if s.cfg.SyncWrites && (err == nil || !errors.Is(err, badger.ErrConflict)) {
			s.ws.synced.Add(1)
		}
		if errors.Is(err, badger.ErrConflict) {
			continue
		}
		for _, r := range group {
			if err == nil {
				s.apply(&r.d)
			}
			r.done <- err
		}
		return
	}
}

// sweepPending deletes the chunks and markers of writes that never
// committed. It runs at Open, before any writer exists.
func (s *Store) sweepPending() error {
	var markers [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix(nsPending)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			markers = append(markers, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range markers {
		chunks := append(prefix(nsChunk), m[2:]...)
		n, err := s.deletePrefix(chunks)
		if err != nil {
			return err
		}
		if err := s.deleteKeys([][]byte{m}); err != nil {
			return err
		}
		s.log.Warn("removed unfinished shard write", "key", fmt.Sprintf("%q", m[2:]), "chunks", n)
	}
	return nil
}

// deletePrefix deletes every key starting with p, in as many fsync'd batches
// as needed, and returns how many it deleted.
func (s *Store) deletePrefix(p []byte) (int, error) {
	var keys [][]byte
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			keys = append(keys, it.Item().KeyCopy(nil))
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return len(keys), s.deleteKeys(keys)
}

// deleteKeys deletes keys with a write batch (fsync'd on Flush).
func (s *Store) deleteKeys(keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	if err := s.checkSpace(freeingNeed); err != nil {
		return err
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}

// rebuildCounters recomputes the Stats counters from the time index and the
// shard headers; both live in the LSM tree, so no body is read.
func (s *Store) rebuildCounters() error {
	var d delta
	err := s.db.View(func(txn *badger.Txn) error {
		err := scanValues(txn, prefix(nsTime), func(k, v []byte) error {
			state, size, err := decodeTimeValue(v)
			if err != nil {
				return fmt.Errorf("time index %q: %w", k, err)
			}
			d.addMessage(state, size, 1)
			return nil
		})
		if err != nil {
			return err
		}
		return scanValues(txn, prefix(nsHeader), func(k, v []byte) error {
			h, err := decodeHeader(v)
			if err != nil {
				return fmt.Errorf("shard header %q: %w", k, err)
			}
			d.shards++
			d.shardBytes += h.Size
			return nil
		})
	})
	if err != nil {
		return err
	}
	s.apply(&d)
	return nil
}

// scanValues calls fn with every key starting with p and its value, in key
// order. Neither slice may be kept after fn returns.
func scanValues(txn *badger.Txn, p []byte, fn func(k, v []byte) error) error {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: p, PrefetchValues: true, PrefetchSize: 256})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if err := item.Value(func(v []byte) error { return fn(item.Key(), v) }); err != nil {
			return err
		}
	}
	return nil
}

// addMessage counts (sign > 0) or uncounts (sign < 0) a message record.
func (d *delta) addMessage(state lazaret.State, size int64, sign int64) {
	if state == lazaret.StateDeleted {
		return
	}
	d.messages += sign
	d.bodyBytes += sign * size
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.cfg.Dir }

// ErrInUse: the data directory is open in another process.
var ErrInUse = errors.New("data directory in use")

// lockHolder describes who holds dir's badger lock, wrapping ErrInUse.
func lockHolder(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "LOCK"))
	if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && perr == nil && pid > 0 {
		return fmt.Errorf("%w by pid %d", ErrInUse, pid)
	}
	return fmt.Errorf("%w by another process", ErrInUse)
}
