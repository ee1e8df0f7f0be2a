package objstore

import (
	"fmt"
	"sync"
	"time"

	"github.com/lazaret/lazaret"
)

// Free-space guard.
//
// Badger writes its value log, memtables and tables through mmap'd files it
// has extended with ftruncate, which allocates no blocks. When the file
// system fills up, the next store into such a page cannot be backed and the
// kernel sends SIGBUS, which kills the process: there is no error to handle.
// Preallocating is not possible from outside badger (it creates memtable,
// table and value-log files as it goes), so the store instead checks the
// file system's free space (statfs) before every transaction and refuses
// the transaction with lazaret.ErrDiskFull when it would leave less than a
// reserve. The reserve is sized for what badger writes on its own after
// our writes stop: flushing every memtable to a level-0 table, compacting a
// stalled level 0, and compactions deeper in the LSM tree (see
// Config.MinFree). Writes that free space (deletes, retention purges,
// outbox acknowledgements) may use half of the reserve, so that an operator
// can still delete. Value-log GC, which copies live values before it frees
// a file, runs only with a value-log file's worth of space above the
// reserve.
//
// The guard protects against the store's own growth. Another process that
// fills the same file system to the last block while badger flushes a
// memtable can still fault it; keep the data directory on its own file
// system.

// SpaceStatus is what the free-space guard last saw.
type SpaceStatus struct {
	Free    int64 // bytes free on the data file system; -1 if unknown
	Reserve int64 // bytes the store keeps free (Config.MinFree, or derived)
	// FullSince is when the store started refusing writes for lack of
	// space; zero while it accepts them.
	FullSince time.Time
	// Refused counts writes refused for lack of space since Open.
	Refused int64
}

// space is the store's free-space guard state.
type space struct {
	mu        sync.Mutex
	free      int64
	fullSince time.Time
	refused   int64
}

// writeNeed is what a transaction that stores no body chunk may add: a
// metadata record with its indexes and outbox record, with room to spare.
const writeNeed = 64 << 10

// freeingNeed marks a transaction that deletes: it may use half the reserve.
const freeingNeed = -1

// reserve returns the bytes to keep free: Config.MinFree, or when that is
// zero what badger may still write after ours stop: every memtable flushed
// to level 0, a stalled level 0 compacted (inputs and outputs both on
// disk), and an eighth of the LSM tree for deeper compactions.
func (s *Store) reserve() int64 {
	if s.cfg.MinFree > 0 {
		return s.cfg.MinFree
	}
	lsm, _ := s.db.Size()
	c := &s.cfg
	return c.MemTableSize*int64(c.NumMemtables+c.NumLevelZeroTablesStall) + 2*int64(c.ChunkSize) + lsm/8
}

// checkSpace returns an error wrapping lazaret.ErrDiskFull when a
// transaction adding need bytes (freeingNeed for deletes) would leave less
// than the reserve free. A file system that cannot be asked is not checked.
func (s *Store) checkSpace(need int64) error {
	return s.admitNeeds([]int64{need})[0]
}

// admitNeeds checks transactions adding needs[i] bytes each, to be written
// together in this order, against one look at the free space, and returns
// nil for those that fit and an ErrDiskFull error for the others.
func (s *Store) admitNeeds(needs []int64) []error {
	errs := make([]error, len(needs))
	if s.cfg.MinFree < 0 {
		return errs
	}
	free := s.statFree()
	reserve := s.reserve()
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	s.space.free = free
	if free < 0 {
		return errs
	}
	var taken int64
	admittedGrowth, refused := false, false
	for i, need := range needs {
		floor := reserve
		if need < 0 {
			need, floor = 0, reserve/2
		}
		if free-taken-need < floor {
			errs[i] = fmt.Errorf("%w: %d bytes free on %s, %d needed plus %d reserved", lazaret.ErrDiskFull, free-taken, s.cfg.Dir, need, floor)
			refused = true
			continue
		}
		taken += need
		admittedGrowth = admittedGrowth || need > 0
	}
	switch {
	case refused:
		s.space.refused++
		if s.space.fullSince.IsZero() {
			s.space.fullSince = s.clock.Now()
			s.log.Warn("disk full: refusing writes until space is freed", "free", free, "reserve", reserve)
		}
	case admittedGrowth && !s.space.fullSince.IsZero():
		s.log.Info("disk space is back; accepting writes", "free", free, "reserve", reserve,
			"refused", s.space.refused, "full_for", s.clock.Now().Sub(s.space.fullSince).Round(time.Second))
		s.space.fullSince = time.Time{}
	}
	return errs
}

// gcFits reports whether value-log GC, which copies up to a file's worth of
// live values before it frees the file, fits above the reserve.
func (s *Store) gcFits() bool {
	free := s.statFree()
	return s.cfg.MinFree < 0 || free < 0 || free-s.cfg.ValueLogFileSize >= s.reserve()
}

// Space returns what the free-space guard last saw, asking the file system
// afresh (Free is -1 once the store is closed).
func (s *Store) Space() SpaceStatus {
	leave, err := s.enter()
	if err != nil {
		return SpaceStatus{Free: -1}
	}
	defer leave()
	free := s.statFree()
	s.space.mu.Lock()
	defer s.space.mu.Unlock()
	s.space.free = free
	st := SpaceStatus{Free: free, Reserve: s.reserve(), FullSince: s.space.fullSince, Refused: s.space.refused}
	if s.cfg.MinFree < 0 {
		st.Reserve = 0
	}
	return st
}
