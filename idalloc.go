package lazaret

import (
	"sync"
	"time"
)

// IDLease persists an [Allocator]'s high-water mark: a Unix second up to
// which the allocator may issue ids without asking again. Each node keeps its
// own lease, next to its data, so that ids stay unique across restarts.
type IDLease interface {
	// LoadIDLease returns the last value stored, or 0 if none was.
	LoadIDLease() (int64, error)
	// StoreIDLease records until. It must be durable (fsync'd) when it
	// returns nil. If it returns an error, until may or may not have been
	// stored; the allocator assumes neither.
	StoreIDLease(until int64) error
}

// DefaultLeaseAhead is the LeaseAhead an [AllocatorConfig] gets when it
// leaves it zero: under load, one lease write (fsync) every three seconds,
// and after a restart ids at most three seconds ahead of the wall clock.
const DefaultLeaseAhead = 2 * time.Second

// AllocatorConfig configures an [Allocator].
type AllocatorConfig struct {
	// Node is this node's number, unique in the cluster: 0 to MaxNode16 for
	// IDFormatExim16, 0 to MaxNode23 for IDFormatExim23.
	Node int
	// Format is the form of the ids issued; the zero value is IDFormatExim16.
	Format IDFormat
	// Clock tells the wall time; nil means SystemClock.
	Clock Clock
	// Lease persists the high-water mark. It is required: without it, ids
	// issued before a crash could be issued again after it.
	Lease IDLease
	// LeaseAhead is how far past the current second each lease write
	// reaches, rounded up to whole seconds; zero means DefaultLeaseAhead.
	// Longer means fewer fsyncs but ids further ahead of the wall clock
	// after a restart (see Allocator).
	LeaseAhead time.Duration
}

// Allocator issues cluster-unique ids for one node. It is safe for
// concurrent use.
//
// Uniqueness across nodes comes from the node number in every id. Uniqueness
// within a node comes from a hybrid logical second: the allocator keeps the
// logical second sec and the sequence number seq of the last id it issued.
// For the next id it takes sec = max(wall-clock second, last sec); if that is
// the last sec it increments seq, otherwise seq starts again at 0. When seq
// would overflow its field (62^6 ids in one second in the 16-char form), sec
// moves one second into the future and seq restarts at 0. So the (sec, seq)
// pairs of one allocator strictly increase, whatever the wall clock does.
//
// To survive restarts, the allocator keeps a lease L in its [IDLease]: no id
// it has issued has a second beyond L. Before it uses a second sec beyond L,
// it durably stores L = sec + LeaseAhead (in whole seconds); only then does
// it issue the id. A new allocator loads L and issues only ids with seconds
// beyond it, so no id issued before a crash (even kill -9 mid-write) is
// issued again.
//
// The costs, for LeaseAhead = A seconds:
//   - Lease writes: at most one per A+1 seconds of wall time under steady
//     load (plus one per restart), each an fsync that the Next calls of that
//     moment wait for.
//   - The t field runs ahead of the wall clock: by up to A+1 s after a
//     restart (the first second used is L+1), by a further A+1 s for each
//     restart that follows before the wall clock catches up, and by however
//     far the wall clock stepped backwards (the logical second never goes
//     back, so it waits for the wall clock to return). t is never behind the
//     wall clock.
//
// Next fails, and never issues a duplicate, when the lease cannot be stored
// or when the logical second passes [MaxIDSecond].
type Allocator struct {
	node   int
	format IDFormat
	clock  Clock
	lease  IDLease
	ahead  int64  // LeaseAhead in whole seconds, ≥ 1
	maxSeq uint64 // largest seq of the format; tests lower it to exercise carry

	mu     sync.Mutex
	sec    int64  // logical second of the last id issued (or of the lease at start)
	seq    uint64 // sequence number of the last id issued in sec
	leased int64  // last value StoreIDLease accepted (or LoadIDLease returned)
}

// NewAllocator returns an allocator for cfg.Node. It reads the lease once;
// the first id it issues has a later second than the lease.
func NewAllocator(cfg AllocatorConfig) (*Allocator, error) {
	const op = "new id allocator"
	maxNode := cfg.Format.MaxNode()
	switch {
	case maxNode < 0:
		return nil, Errorf(op, "", "%w: unknown id format %v", ErrInvalidArgument, cfg.Format)
	case cfg.Node < 0:
		return nil, Errorf(op, "", "%w: node number %d is negative", ErrInvalidArgument, cfg.Node)
	case cfg.Node > maxNode:
		return nil, Errorf(op, "", "%w: node number %d exceeds %d, the largest the %v id format holds",
			ErrIDSpaceExhausted, cfg.Node, maxNode, cfg.Format)
	case cfg.Lease == nil:
		return nil, Errorf(op, "", "%w: no IDLease (ids would repeat after a restart)", ErrInvalidArgument)
	case cfg.LeaseAhead < 0:
		return nil, Errorf(op, "", "%w: negative LeaseAhead %v", ErrInvalidArgument, cfg.LeaseAhead)
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.LeaseAhead == 0 {
		cfg.LeaseAhead = DefaultLeaseAhead
	}
	ahead := int64((cfg.LeaseAhead + time.Second - 1) / time.Second)

	l, err := cfg.Lease.LoadIDLease()
	if err != nil {
		return nil, Errorf(op, "", "load id lease: %w", err)
	}
	if l < 0 {
		return nil, Errorf(op, "", "%w: stored id lease %d is negative", ErrCorrupt, l)
	}
	a := &Allocator{
		node:   cfg.Node,
		format: cfg.Format,
		clock:  cfg.Clock,
		lease:  cfg.Lease,
		ahead:  ahead,
		maxSeq: cfg.Format.maxSeq(),
		sec:    l,
		leased: l,
	}
	// Ids up to second l may have been issued before a restart. Pretending
	// that second l is full makes the first id carry into l+1 unless the wall
	// clock is already past l.
	a.seq = a.maxSeq
	return a, nil
}

// Node returns the node number the allocator puts into ids.
func (a *Allocator) Node() int { return a.node }

// Format returns the format of the ids the allocator issues.
func (a *Allocator) Format() IDFormat { return a.format }

// Next returns a new id, different from every id this node has issued
// before, in this process or an earlier one, and from every id of every
// other node. It fails with an error wrapping ErrIDSpaceExhausted once the
// logical second passes MaxIDSecond, and with the lease's error if the lease
// cannot be stored; in both cases it issues nothing and a later call may
// succeed (after the lease recovers).
func (a *Allocator) Next() (ID, error) {
	const op = "allocate id"
	wall := a.clock.Now().Unix()

	a.mu.Lock()
	defer a.mu.Unlock()
	sec, seq := max(wall, a.sec), uint64(0)
	if sec == a.sec {
		if a.seq < a.maxSeq {
			seq = a.seq + 1
		} else {
			sec++ // second full: borrow the next one
		}
	}
	if sec > MaxIDSecond {
		return "", Errorf(op, "", "%w: second %d is beyond the last an id can carry (%d, %s)",
			ErrIDSpaceExhausted, sec, int64(MaxIDSecond), time.Unix(MaxIDSecond, 0).UTC().Format(time.RFC3339))
	}
	if sec > a.leased {
		// Capping at MaxIDSecond keeps the lease meaningful to the end of the
		// range; any later second fails above before touching the lease.
		until := min(sec+a.ahead, MaxIDSecond)
		if err := a.lease.StoreIDLease(until); err != nil {
			return "", Errorf(op, "", "store id lease %d: %w", until, err)
		}
		a.leased = until
	}
	a.sec, a.seq = sec, seq
	return formatID(a.format, sec, seq, a.node), nil
}

// MemIDLease is an IDLease kept in memory, for tests and examples: it
// survives a new Allocator in the same process, not a restart of the
// process. The zero value is an empty lease. It is safe for concurrent use.
type MemIDLease struct {
	mu     sync.Mutex
	until  int64
	stores int
}

// LoadIDLease returns the last value stored, or 0.
func (m *MemIDLease) LoadIDLease() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.until, nil
}

// StoreIDLease records until.
func (m *MemIDLease) StoreIDLease(until int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.until = until
	m.stores++
	return nil
}

// Stores returns how many times StoreIDLease was called, which is how many
// fsyncs a durable lease would have done.
func (m *MemIDLease) Stores() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stores
}
