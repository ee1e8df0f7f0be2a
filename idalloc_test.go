package lazaret

// These tests are white-box: to exercise the carry into the next second
// (which needs 62^6 ids within one second in production) they shrink an
// allocator's maxSeq. Everything else goes through the exported API.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var errStoreFailed = errors.New("simulated lease write failure")

// failer is what the helpers need of a *testing.T, *testing.B or *rapid.T.
type failer interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// crashLease is an IDLease whose next write can be made to fail. A failed
// write may or may not have reached the disk (failLands), which is what a
// crash or an I/O error in the middle of a write allows; a write that
// returned nil is always durable. It is not safe for concurrent use.
type crashLease struct {
	durable   int64
	stores    int
	fail      bool // the next StoreIDLease fails
	failLands bool // ... after its value became durable anyway
}

func (l *crashLease) LoadIDLease() (int64, error) { return l.durable, nil }

func (l *crashLease) StoreIDLease(until int64) error {
	if l.fail {
		l.fail = false
		if l.failLands {
			l.durable = until
		}
		return errStoreFailed
	}
	l.durable = until
	l.stores++
	return nil
}

// newAllocatorSeq is NewAllocator with the sequence field limited to
// maxSeq (0 means the format's own limit).
func newAllocatorSeq(t failer, cfg AllocatorConfig, maxSeq uint64) *Allocator {
	t.Helper()
	a, err := NewAllocator(cfg)
	if err != nil {
		t.Fatalf("NewAllocator(%+v): %v", cfg, err)
	}
	if maxSeq != 0 {
		a.maxSeq, a.seq = maxSeq, maxSeq
	}
	return a
}

// decodeID returns the three fields of an id the allocator issued, sequence
// number included, which parseID does not return. (base62Value itself is
// checked against an independent encoder by the tests in id_test.go.)
func decodeID(t failer, id ID) (sec int64, seq uint64, node int) {
	var fields [3]uint64
	f := 0
	for i := 0; i < len(id); i++ {
		c := id[i]
		if c == '-' && f < 2 && i > 0 {
			f++
			continue
		}
		d := base62Value(c)
		if d < 0 || fields[f] > 1<<58 {
			t.Helper()
			t.Fatalf("id %q: bad byte or too large field at offset %d", id, i)
		}
		fields[f] = fields[f]*62 + uint64(d)
	}
	if f != 2 {
		t.Helper()
		t.Fatalf("id %q does not have 3 fields", id)
	}
	return int64(fields[0]), fields[1], int(fields[2])
}

func TestNewAllocatorValidation(t *testing.T) {
	lease := &MemIDLease{}
	tests := []struct {
		name string
		cfg  AllocatorConfig
		want error  // nil: success
		msg  string // substring of the error
	}{
		{"node 0", AllocatorConfig{Node: 0, Lease: lease}, nil, ""},
		{"max node 16", AllocatorConfig{Node: MaxNode16, Lease: lease}, nil, ""},
		{"max node 23", AllocatorConfig{Node: MaxNode23, Format: IDFormatExim23, Lease: lease}, nil, ""},
		{"node beyond 16", AllocatorConfig{Node: MaxNode16 + 1, Lease: lease}, ErrIDSpaceExhausted, "exceeds 3843"},
		{"node beyond 23", AllocatorConfig{Node: MaxNode23 + 1, Format: IDFormatExim23, Lease: lease}, ErrIDSpaceExhausted, "exceeds 14776335"},
		{"negative node", AllocatorConfig{Node: -1, Lease: lease}, ErrInvalidArgument, "negative"},
		{"bad format", AllocatorConfig{Node: 1, Format: 9, Lease: lease}, ErrInvalidArgument, "IDFormat(9)"},
		{"no lease", AllocatorConfig{Node: 1}, ErrInvalidArgument, "IDLease"},
		{"negative lease ahead", AllocatorConfig{Node: 1, Lease: lease, LeaseAhead: -time.Second}, ErrInvalidArgument, "LeaseAhead"},
		{"corrupt lease", AllocatorConfig{Node: 1, Lease: &crashLease{durable: -5}}, ErrCorrupt, "-5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := NewAllocator(tt.cfg)
			if tt.want == nil {
				if err != nil || a == nil {
					t.Fatalf("NewAllocator = %v, %v", a, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("NewAllocator error %v, want %v saying %q", err, tt.want, tt.msg)
			}
			var e *Error
			if !errors.As(err, &e) || e.Op != "new id allocator" {
				t.Fatalf("NewAllocator error %v is not an *Error naming the operation", err)
			}
		})
	}
}

// TestAllocatorRestart walks through the lease arithmetic step by step.
func TestAllocatorRestart(t *testing.T) {
	const t0 = 1_780_000_000
	clk := NewManualClock(time.Unix(t0, 0))
	lease := &MemIDLease{}
	cfg := AllocatorConfig{Node: 3, Clock: clk, Lease: lease} // LeaseAhead 2s
	a := newAllocatorSeq(t, cfg, 0)
	next := func(a *Allocator) (int64, uint64) {
		t.Helper()
		id, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		sec, seq, node := decodeID(t, id)
		if node != 3 {
			t.Fatalf("%q: node %d", id, node)
		}
		return sec, seq
	}
	expect := func(gotSec int64, gotSeq uint64, sec int64, seq uint64, until int64, stores int) {
		t.Helper()
		if gotSec != sec || gotSeq != seq {
			t.Fatalf("id (sec, seq) = (t0%+d, %d), want (t0%+d, %d)", gotSec-t0, gotSeq, sec-t0, seq)
		}
		if l, _ := lease.LoadIDLease(); l != until || lease.Stores() != stores {
			t.Fatalf("lease = t0%+d after %d stores, want t0%+d after %d", l-t0, lease.Stores(), until-t0, stores)
		}
	}
	s, q := next(a)
	expect(s, q, t0, 0, t0+2, 1)
	s, q = next(a)
	expect(s, q, t0, 1, t0+2, 1)
	clk.Advance(2 * time.Second) // still inside the lease: no write
	s, q = next(a)
	expect(s, q, t0+2, 0, t0+2, 1)
	clk.Advance(time.Second) // past it: one write
	s, q = next(a)
	expect(s, q, t0+3, 0, t0+5, 2)

	// Restart at the same wall time: ids up to t0+5 may exist.
	a = newAllocatorSeq(t, cfg, 0)
	s, q = next(a)
	expect(s, q, t0+6, 0, t0+8, 3)
	s, q = next(a)
	expect(s, q, t0+6, 1, t0+8, 3)

	// Clock steps back an hour: the logical second holds.
	clk.Advance(-time.Hour)
	s, q = next(a)
	expect(s, q, t0+6, 2, t0+8, 3)
	// Restart while the clock is still an hour behind.
	a = newAllocatorSeq(t, cfg, 0)
	s, q = next(a)
	expect(s, q, t0+9, 0, t0+11, 4)
	// The wall clock overtakes.
	clk.Set(time.Unix(t0+100, 0))
	s, q = next(a)
	expect(s, q, t0+100, 0, t0+102, 5)
}

func TestAllocatorCarry(t *testing.T) {
	const t0 = 1_780_000_000
	clk := NewManualClock(time.Unix(t0, 0))
	lease := &MemIDLease{}
	a := newAllocatorSeq(t, AllocatorConfig{Node: 1, Clock: clk, Lease: lease, LeaseAhead: time.Second}, 2)
	var got []string
	for range 7 {
		id, err := a.Next()
		if err != nil {
			t.Fatal(err)
		}
		sec, seq, _ := decodeID(t, id)
		got = append(got, fmt.Sprintf("%+d.%d", sec-t0, seq))
	}
	// Three ids per second, then borrow from the next second.
	want := "+0.0 +0.1 +0.2 +1.0 +1.1 +1.2 +2.0"
	if strings.Join(got, " ") != want {
		t.Fatalf("ids = %s, want %s", strings.Join(got, " "), want)
	}
	if l, _ := lease.LoadIDLease(); l != t0+3 {
		t.Fatalf("lease = t0%+d, want t0+3", l-t0)
	}
}

func TestAllocatorExhausted(t *testing.T) {
	clk := NewManualClock(time.Unix(MaxIDSecond, 0))
	lease := &MemIDLease{}
	cfg := AllocatorConfig{Node: 1, Clock: clk, Lease: lease}
	a := newAllocatorSeq(t, cfg, 1)
	for range 2 {
		if _, err := a.Next(); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 { // and it stays so
		id, err := a.Next()
		if !errors.Is(err, ErrIDSpaceExhausted) || id != "" || !strings.Contains(err.Error(), "3769") {
			t.Fatalf("Next at the end of the id space = %q, %v", id, err)
		}
	}
	if l, _ := lease.LoadIDLease(); l != MaxIDSecond {
		t.Fatalf("lease = %d, want capped at %d", l, int64(MaxIDSecond))
	}
	// A restart cannot go back.
	a = newAllocatorSeq(t, cfg, 0)
	if id, err := a.Next(); !errors.Is(err, ErrIDSpaceExhausted) {
		t.Fatalf("Next after restart at the end = %q, %v", id, err)
	}
	// A clock beyond the range fails too, rather than wrapping around.
	clk2 := NewManualClock(time.Unix(MaxIDSecond+1, 0))
	a = newAllocatorSeq(t, AllocatorConfig{Node: 1, Clock: clk2, Lease: &MemIDLease{}}, 0)
	if id, err := a.Next(); !errors.Is(err, ErrIDSpaceExhausted) {
		t.Fatalf("Next with the clock past the range = %q, %v", id, err)
	}
	// A clock before 1970 borrows from the lease instead of going negative.
	clk3 := NewManualClock(time.Unix(-1000, 0))
	a = newAllocatorSeq(t, AllocatorConfig{Node: 1, Clock: clk3, Lease: &MemIDLease{}}, 0)
	if id, err := a.Next(); err != nil || id.Time().Unix() != 1 {
		t.Fatalf("Next with the clock before 1970 = %q, %v", id, err)
	}
}

func TestAllocatorLeaseFailure(t *testing.T) {
	const t0 = 1_780_000_000
	clk := NewManualClock(time.Unix(t0, 0))
	lease := &crashLease{fail: true}
	a := newAllocatorSeq(t, AllocatorConfig{Node: 1, Clock: clk, Lease: lease}, 0)
	id, err := a.Next()
	if !errors.Is(err, errStoreFailed) || id != "" {
		t.Fatalf("Next with a failing lease = %q, %v", id, err)
	}
	var e *Error
	if !errors.As(err, &e) || e.Op != "allocate id" {
		t.Fatalf("error %v does not name the operation", err)
	}
	id, err = a.Next()
	if err != nil || id.Time().Unix() != t0 {
		t.Fatalf("Next after the lease recovered = %q, %v", id, err)
	}
}

// TestAllocatorLeaseWrites checks the fsync budget under steady load.
func TestAllocatorLeaseWrites(t *testing.T) {
	for _, ahead := range []time.Duration{time.Second, 2 * time.Second, 1500 * time.Millisecond, 10 * time.Second} {
		clk := NewManualClock(time.Unix(1_780_000_000, 0))
		lease := &MemIDLease{}
		a := newAllocatorSeq(t, AllocatorConfig{Node: 1, Clock: clk, Lease: lease, LeaseAhead: ahead}, 0)
		const seconds = 600
		for range seconds * 10 {
			if _, err := a.Next(); err != nil {
				t.Fatal(err)
			}
			clk.Advance(100 * time.Millisecond)
		}
		whole := int((ahead + time.Second - 1) / time.Second)
		if want := seconds/(whole+1) + 1; lease.Stores() > want {
			t.Errorf("LeaseAhead %v: %d lease writes in %d s, want ≤ %d", ahead, lease.Stores(), seconds, want)
		}
	}
}

// simNode is one simulated cluster node: its own clock, lease and
// allocator, and the ids it has issued over all its restarts.
type simNode struct {
	cfg    AllocatorConfig
	clock  *ManualClock
	lease  *crashLease
	maxSeq uint64
	alloc  *Allocator
	last   ID // last id issued, by any incarnation
}

func (n *simNode) restart(t failer) {
	n.alloc = newAllocatorSeq(t, n.cfg, n.maxSeq)
}

// next asks the node for an id and checks what is true of every id: it is
// greater than every earlier id of its node (hence unique within the node,
// across restarts), carries the node number, is not behind the wall clock,
// and is covered by the durable lease. It returns "" when the lease failed.
func (n *simNode) next(t failer) ID {
	id, _, _ := n.nextAt(t, n.clock.Now().Unix())
	return id
}

// nextAt is next for callers that know the wall-clock second (it does not
// change during a burst) and want the id's fields.
func (n *simNode) nextAt(t failer, wall int64) (id ID, sec int64, seq uint64) {
	id, err := n.alloc.Next()
	if err != nil {
		if !errors.Is(err, errStoreFailed) || id != "" {
			t.Fatalf("node %d: Next = %q, %v", n.cfg.Node, id, err)
		}
		return "", 0, 0
	}
	sec, seq, node := decodeID(t, id)
	switch {
	case len(id) != n.cfg.Format.Len():
		t.Fatalf("node %d: %q is not a %v id", n.cfg.Node, id, n.cfg.Format)
	case id <= n.last:
		t.Fatalf("node %d: %q issued after %q", n.cfg.Node, id, n.last)
	case node != n.cfg.Node:
		t.Fatalf("node %d issued %q", n.cfg.Node, id)
	case sec < wall:
		t.Fatalf("node %d: %q is behind the wall clock second %d", n.cfg.Node, id, wall)
	case sec > n.lease.durable:
		t.Fatalf("node %d: %q is beyond the durable lease %d", n.cfg.Node, id, n.lease.durable)
	}
	n.last = id
	return id, sec, seq
}

// crashDuringLeaseWrite moves the clock past the lease so that the next id
// needs a lease write, lets that write fail as armed in n.lease (the process
// dies in the middle of it), and restarts the node.
func (n *simNode) crashDuringLeaseWrite(t failer) {
	if !n.lease.fail {
		t.Fatal("crashDuringLeaseWrite needs an armed lease failure")
	}
	n.clock.Set(time.Unix(max(n.clock.Now().Unix(), n.alloc.leased+1), 0))
	if id := n.next(t); id != "" || n.lease.fail {
		t.Fatalf("node %d issued %q past its lease without writing it", n.cfg.Node, id)
	}
	n.restart(t)
}

// TestAllocatorUniqueProperty lets rapid drive several nodes through
// bursts, clock jumps both ways, lease failures and crashes, and checks that
// no id is ever issued twice.
func TestAllocatorUniqueProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		start := time.Unix(rapid.Int64Range(0, 4_000_000_000).Draw(rt, "start"), 0)
		numNodes := rapid.IntRange(1, 4).Draw(rt, "nodes")
		nums := rapid.SliceOfNDistinct(rapid.IntRange(0, MaxNode16), numNodes, numNodes, rapid.ID[int]).Draw(rt, "node numbers")
		nodes := make([]*simNode, numNodes)
		for i, num := range nums {
			n := &simNode{
				clock:  NewManualClock(start.Add(time.Duration(rapid.Int64Range(-10, 10).Draw(rt, "skew")) * time.Second)),
				lease:  &crashLease{},
				maxSeq: rapid.SampledFrom([]uint64{0, 0, 1, 3, 61}).Draw(rt, "maxSeq"),
			}
			n.cfg = AllocatorConfig{
				Node:       num,
				Format:     rapid.SampledFrom([]IDFormat{IDFormatExim16, IDFormatExim23}).Draw(rt, "format"),
				Clock:      n.clock,
				Lease:      n.lease,
				LeaseAhead: time.Duration(rapid.IntRange(0, 5000).Draw(rt, "lease ahead ms")) * time.Millisecond,
			}
			n.restart(rt)
			nodes[i] = n
		}
		seen := make(map[ID]int) // id -> node number
		pick := func(rt *rapid.T) *simNode { return nodes[rapid.IntRange(0, numNodes-1).Draw(rt, "node")] }
		issue := func(rt *rapid.T, n *simNode) bool {
			id := n.next(rt)
			if id == "" {
				return false
			}
			if other, dup := seen[id]; dup {
				rt.Fatalf("node %d issued %q, already issued by node %d", n.cfg.Node, id, other)
			}
			seen[id] = n.cfg.Node
			return true
		}
		rt.Repeat(map[string]func(*rapid.T){
			"burst": func(rt *rapid.T) {
				n := pick(rt)
				for range rapid.IntRange(1, 200).Draw(rt, "burst") {
					issue(rt, n)
				}
			},
			"advance": func(rt *rapid.T) {
				pick(rt).clock.Advance(time.Duration(rapid.Int64Range(0, 10_000).Draw(rt, "ms")) * time.Millisecond)
			},
			"jump forward": func(rt *rapid.T) {
				pick(rt).clock.Advance(time.Duration(rapid.Int64Range(0, 48*3600).Draw(rt, "s")) * time.Second)
			},
			"step back": func(rt *rapid.T) {
				pick(rt).clock.Advance(-time.Duration(rapid.Int64Range(0, 6*3600*1000).Draw(rt, "ms")) * time.Millisecond)
			},
			"crash": func(rt *rapid.T) { pick(rt).restart(rt) },
			"lease error": func(rt *rapid.T) {
				// The next lease write fails; the node carries on.
				n := pick(rt)
				n.lease.fail, n.lease.failLands = true, rapid.Bool().Draw(rt, "lands")
			},
			"crash during lease write": func(rt *rapid.T) {
				// Force a lease write, kill the node in the middle of it
				// (the write may or may not have landed), restart it.
				n := pick(rt)
				n.lease.fail, n.lease.failLands = true, rapid.Bool().Draw(rt, "lands")
				n.crashDuringLeaseWrite(rt)
			},
		})
	})
}

// TestAllocatorTenMillion issues ten million ids from simulated nodes that
// crash, fail lease writes and see their clocks jump both ways, and checks
// them for duplicates by sorting.
func TestAllocatorTenMillion(t *testing.T) {
	total := 10_000_000
	if testing.Short() {
		total = 1_000_000
	}
	const t0 = 1_780_000_000
	rng := rand.New(rand.NewPCG(1, 2))
	nodes := make([]*simNode, 16)
	for i := range nodes {
		n := &simNode{
			clock:  NewManualClock(time.Unix(t0+int64(rng.IntN(5)), 0)),
			lease:  &crashLease{},
			maxSeq: []uint64{0, 0, 3, 500}[i%4],
		}
		n.cfg = AllocatorConfig{
			Node:       i*97 + 5,
			Format:     IDFormat(i % 2),
			Clock:      n.clock,
			Lease:      n.lease,
			LeaseAhead: time.Duration(1+i%3) * time.Second,
		}
		n.restart(t)
		nodes[i] = n
	}
	// An id packs into 64 bits as (sec-t0):28 | seq:24 | node:12; the
	// ranges are checked, so distinct ids give distinct keys.
	keys := make([]uint64, 0, total)
	var restarts, failures, backSteps int
	for len(keys) < total {
		n := nodes[rng.IntN(len(nodes))]
		switch x := rng.IntN(1000); {
		case x < 700:
			wall, node := n.clock.Now().Unix(), uint64(n.cfg.Node)
			for range 1 + rng.IntN(3000) {
				id, sec, seq := n.nextAt(t, wall)
				if id == "" {
					continue
				}
				if sec < t0 || sec-t0 >= 1<<28 || seq >= 1<<24 || node >= 1<<12 {
					t.Fatalf("id %q outside the packing ranges", id)
				}
				keys = append(keys, uint64(sec-t0)<<36|seq<<12|node)
			}
		case x < 850:
			n.clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
		case x < 900:
			n.clock.Advance(time.Duration(rng.IntN(600)) * time.Second)
		case x < 940:
			n.clock.Advance(-time.Duration(rng.Int64N(int64(3 * time.Hour))))
			backSteps++
		case x < 980:
			n.restart(t)
			restarts++
		default:
			n.lease.fail, n.lease.failLands = true, rng.IntN(2) == 0
			failures++
			if rng.IntN(2) == 0 {
				n.crashDuringLeaseWrite(t)
				restarts++
			}
		}
	}
	slices.Sort(keys)
	for i := 1; i < len(keys); i++ {
		if keys[i] == keys[i-1] {
			t.Fatalf("duplicate id: second t0+%d seq %d node %d", keys[i]>>36, keys[i]>>12&(1<<24-1), keys[i]&(1<<12-1))
		}
	}
	t.Logf("%d ids, no duplicates; %d restarts, %d lease failures, %d clock steps back", len(keys), restarts, failures, backSteps)
}

// TestAllocatorConcurrent hammers allocators from many goroutines; run it
// with -race. Each goroutine must see increasing ids, and all ids must be
// distinct.
func TestAllocatorConcurrent(t *testing.T) {
	const goroutines, perG = 16, 5000
	clk := NewManualClock(time.Unix(1_780_000_000, 0))
	allocs := []*Allocator{
		newAllocatorSeq(t, AllocatorConfig{Node: 1, Lease: &MemIDLease{}}, 0),                                          // system clock
		newAllocatorSeq(t, AllocatorConfig{Node: 2, Clock: clk, Lease: &MemIDLease{}}, 0),                              // clock jumping about
		newAllocatorSeq(t, AllocatorConfig{Node: 3, Clock: clk, Lease: &MemIDLease{}, Format: IDFormatExim23}, 2),      // constant carry
		newAllocatorSeq(t, AllocatorConfig{Node: 4, Clock: clk, Lease: &MemIDLease{}, LeaseAhead: time.Nanosecond}, 0), // 1 s lease
	}
	stop := make(chan struct{})
	var stepper sync.WaitGroup
	stepper.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%3 == 2 {
				clk.Advance(-90 * time.Minute)
			} else {
				clk.Advance(time.Hour)
			}
			time.Sleep(50 * time.Microsecond)
		}
	})
	results := make([][]ID, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			a := allocs[g%len(allocs)]
			ids := make([]ID, 0, perG)
			for range perG {
				id, err := a.Next()
				if err != nil {
					t.Errorf("Next: %v", err)
					return
				}
				if len(ids) > 0 && id <= ids[len(ids)-1] {
					t.Errorf("goroutine %d: %q after %q", g, id, ids[len(ids)-1])
					return
				}
				ids = append(ids, id)
			}
			results[g] = ids
		})
	}
	wg.Wait()
	close(stop)
	stepper.Wait()
	seen := make(map[ID]bool, goroutines*perG)
	for _, ids := range results {
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("duplicate id %q", id)
			}
			seen[id] = true
		}
	}
	if len(seen) != goroutines*perG {
		t.Fatalf("%d ids, want %d", len(seen), goroutines*perG)
	}
}

func TestMemIDLease(t *testing.T) {
	var l MemIDLease
	if v, err := l.LoadIDLease(); v != 0 || err != nil {
		t.Fatalf("empty lease = %d, %v", v, err)
	}
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() { _ = l.StoreIDLease(int64(i)) })
	}
	wg.Wait()
	if l.Stores() != 10 {
		t.Fatalf("Stores = %d, want 10", l.Stores())
	}
	if err := l.StoreIDLease(42); err != nil {
		t.Fatal(err)
	}
	if v, _ := l.LoadIDLease(); v != 42 {
		t.Fatalf("lease = %d, want 42", v)
	}
}

// fileLease is an IDLease in a file, fsync'd on every write: what a real
// node pays, for the benchmark.
type fileLease struct{ f *os.File }

func (l fileLease) LoadIDLease() (int64, error) { return 0, nil }

func (l fileLease) StoreIDLease(until int64) error {
	if _, err := l.f.WriteAt(fmt.Appendf(nil, "%020d\n", until), 0); err != nil {
		return err
	}
	return l.f.Sync()
}

func BenchmarkAllocatorNext(b *testing.B) {
	f, err := os.Create(filepath.Join(b.TempDir(), "idlease"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, bc := range []struct {
		name   string
		format IDFormat
		lease  IDLease
	}{
		{"exim16", IDFormatExim16, &MemIDLease{}},
		{"exim23", IDFormatExim23, &MemIDLease{}},
		{"exim16-fsync-lease", IDFormatExim16, fileLease{f}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a := newAllocatorSeq(b, AllocatorConfig{Node: 1, Format: bc.format, Lease: bc.lease}, 0)
			n := 0
			for b.Loop() {
				if _, err := a.Next(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "ids/s")
		})
	}
}

func BenchmarkAllocatorNextParallel(b *testing.B) {
	a := newAllocatorSeq(b, AllocatorConfig{Node: 1, Lease: &MemIDLease{}}, 0)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := a.Next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ids/s")
}
