package reconcile

import (
	"encoding/binary"
	"fmt"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// failer is what the helpers need of a *testing.T, *testing.B or *rapid.T.
type failer interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// exchange is the outcome of running a session between two sets in process.
type exchange struct {
	aHave, aNeed, bHave, bNeed []string
	bytesAB, bytesBA           int // encoded bytes each way
	messages                   int
}

// roundTrips counts request/answer pairs; a last message that needs no
// answer counts as half of one.
func (x exchange) roundTrips() float64 { return float64(x.messages) / 2 }

// run reconciles a (initiator) with b (responder), carrying every message
// as bytes through MarshalBinary and UnmarshalBinary.
func run(tb failer, a, b Set, cfg Config) exchange {
	tb.Helper()
	sa, err := NewSession(a, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	sb, err := NewSession(b, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var x exchange
	step, err := sa.Initiate()
	if err != nil {
		tb.Fatal(err)
	}
	sessions := [2]*Session{sb, sa} // who receives the next message
	turn := 0
	for step.Reply != nil {
		wire, err := step.Reply.MarshalBinary()
		if err != nil {
			tb.Fatalf("message %d: %v", x.messages, err)
		}
		x.messages++
		if turn == 0 {
			x.bytesAB += len(wire)
		} else {
			x.bytesBA += len(wire)
		}
		if x.messages > 200 {
			tb.Fatal("session did not end after 200 messages")
		}
		var m Message
		if err := m.UnmarshalBinary(wire); err != nil {
			tb.Fatalf("message %d: %v", x.messages, err)
		}
		sender := sessions[1-turn]
		if step.Done != sender.Done() {
			tb.Fatalf("Step.Done %v but Session.Done %v", step.Done, sender.Done())
		}
		step, err = sessions[turn].Handle(&m)
		if err != nil {
			tb.Fatalf("message %d: %v", x.messages, err)
		}
		if turn == 0 {
			x.bHave, x.bNeed = append(x.bHave, step.Have...), append(x.bNeed, step.Need...)
		} else {
			x.aHave, x.aNeed = append(x.aHave, step.Have...), append(x.aNeed, step.Need...)
		}
		turn = 1 - turn
	}
	if !sa.Done() || !sb.Done() {
		tb.Fatalf("session ended with initiator done=%v, responder done=%v", sa.Done(), sb.Done())
	}
	for _, l := range []*[]string{&x.aHave, &x.aNeed, &x.bHave, &x.bNeed} {
		slices.Sort(*l)
	}
	return x
}

// diff returns the keys a holds that b lacks or holds differently, and the
// reverse, sorted.
func diff(a, b []Item) (aOnly, bOnly []string) {
	am := map[string]Hash{}
	for _, it := range a {
		am[it.Key] = it.Hash
	}
	bm := map[string]Hash{}
	for _, it := range b {
		bm[it.Key] = it.Hash
	}
	for k, h := range am {
		if bh, ok := bm[k]; !ok || bh != h {
			aOnly = append(aOnly, k)
		}
	}
	for k, h := range bm {
		if ah, ok := am[k]; !ok || ah != h {
			bOnly = append(bOnly, k)
		}
	}
	slices.Sort(aOnly)
	slices.Sort(bOnly)
	return aOnly, bOnly
}

func checkExact(t failer, a, b []Item, x exchange) {
	t.Helper()
	aOnly, bOnly := diff(a, b)
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"initiator Have", x.aHave, aOnly},
		{"initiator Need", x.aNeed, bOnly},
		{"responder Have", x.bHave, bOnly},
		{"responder Need", x.bNeed, aOnly},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Fatalf("%s = %d keys %.10q, want %d keys %.10q", c.name, len(c.got), c.got, len(c.want), c.want)
		}
	}
}

// testKey makes an id-shaped key from a number.
func testKey(i int) string { return fmt.Sprintf("1w%04X-%06d-01", i>>20, i&0xfffff) }

func testItem(i, version int) Item {
	var v [8]byte
	binary.LittleEndian.PutUint64(v[:], uint64(version))
	k := testKey(i)
	return Item{Key: k, Hash: HashItem(k, v[:])}
}

func TestSessionSmall(t *testing.T) {
	cfg := DefaultConfig()
	items := func(ids ...int) []Item {
		var out []Item
		for _, i := range ids {
			out = append(out, testItem(i, 0))
		}
		return out
	}
	cases := []struct {
		name string
		a, b []Item
	}{
		{"both empty", nil, nil},
		{"initiator empty", nil, items(1, 2, 3)},
		{"responder empty", items(1, 2, 3), nil},
		{"identical", items(1, 2, 3), items(1, 2, 3)},
		{"disjoint", items(1, 3, 5), items(2, 4, 6)},
		{"one differs", items(1, 2, 3), append(items(1, 3), testItem(2, 1))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x := run(t, NewMemSet(c.a), NewMemSet(c.b), cfg)
			checkExact(t, c.a, c.b, x)
			if x.messages > 3 {
				t.Errorf("%d messages for sets of at most %d items, want at most 3", x.messages, cfg.ListMax)
			}
		})
	}
}

func TestSessionInSyncOneRound(t *testing.T) {
	var items []Item
	for i := range 100_000 {
		items = append(items, testItem(i, 0))
	}
	x := run(t, NewMemSet(items), NewMemSet(items), DefaultConfig())
	checkExact(t, items, items, x)
	if x.messages != 2 || x.bytesAB+x.bytesBA > 64 {
		t.Fatalf("in sync: %d messages, %d+%d bytes; want 2 messages under 64 bytes", x.messages, x.bytesAB, x.bytesBA)
	}
}

func TestSessionOneDifference(t *testing.T) {
	var a []Item
	for i := range 100_000 {
		a = append(a, testItem(i, 0))
	}
	b := slices.Clone(a)
	b[54321] = testItem(54321, 7)
	x := run(t, NewMemSet(a), NewMemSet(b), DefaultConfig())
	checkExact(t, a, b, x)
	if !slices.Equal(x.aHave, []string{testKey(54321)}) {
		t.Fatalf("Have = %q", x.aHave)
	}
	if total := x.bytesAB + x.bytesBA; total > 2048 {
		t.Fatalf("one difference among 100,000 cost %d bytes, want under 2 KB", total)
	}
}

// TestSessionProperty: for random pairs of sets (empty, identical, all
// different, random differences of both kinds, either side larger) both sides
// of a session end knowing exactly the symmetric difference.
func TestSessionProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{Branch: rapid.IntRange(2, 20).Draw(t, "branch")}
		cfg.ListMax = rapid.IntRange(cfg.Branch, 3*cfg.Branch).Draw(t, "listmax")
		n := rapid.IntRange(0, 3000).Draw(t, "n")
		pDiff := rapid.SampledFrom([]float64{0, 0.001, 0.01, 0.3, 1}).Draw(t, "pdiff")
		seed := rapid.Uint64().Draw(t, "seed")
		r := splitmix(seed)
		var a, b []Item
		for i := range n {
			if r.float() >= pDiff {
				a = append(a, testItem(i, 0))
				b = append(b, testItem(i, 0))
				continue
			}
			switch r.next() % 3 {
			case 0:
				a = append(a, testItem(i, 0))
			case 1:
				b = append(b, testItem(i, 0))
			default:
				a = append(a, testItem(i, 1))
				b = append(b, testItem(i, 2))
			}
		}
		sa, sb := NewMemSet(a), NewMemSet(b)
		// Build one side by Put and Delete, to exercise them too.
		if rapid.Bool().Draw(t, "incremental") {
			sb = NewMemSet(nil)
			for _, it := range a {
				sb.Put(it)
			}
			for _, it := range b {
				sb.Put(it)
			}
			for _, it := range a {
				if _, ok := slices.BinarySearchFunc(b, it.Key, func(x Item, k string) int { return cmpStr(x.Key, k) }); !ok {
					sb.Delete(it.Key)
				}
			}
		}
		x := run(t, sa, sb, cfg)
		checkExact(t, a, b, x)
	})
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// splitmix is a tiny deterministic generator for test data.
type splitmixState struct{ s uint64 }

func splitmix(seed uint64) *splitmixState { return &splitmixState{seed} }

func (r *splitmixState) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *splitmixState) float() float64 { return float64(r.next()>>11) / (1 << 53) }

func TestHandleRejectsProtocolErrors(t *testing.T) {
	set := NewMemSet([]Item{testItem(1, 0), testItem(2, 0)})
	// An id reply for a range this side never listed.
	s, _ := NewSession(set, DefaultConfig())
	_, err := s.Handle(&Message{Ranges: []Range{{Upper: Bound{Infinite: true}, Mode: ModeIDReply}}})
	if err == nil {
		t.Fatal("unsolicited id reply accepted")
	}
	if _, err := s.Handle(&Message{}); err != ErrSessionDone {
		t.Fatalf("Handle after an error: %v, want ErrSessionDone", err)
	}
	// An id list left unanswered.
	s, _ = NewSession(set, DefaultConfig())
	if _, err := s.Initiate(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Handle(&Message{}); err == nil {
		t.Fatal("reply that ignores our id list accepted")
	}
	// Wrong number of codes.
	s, _ = NewSession(set, DefaultConfig())
	if _, err := s.Initiate(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Handle(&Message{Ranges: []Range{{Upper: Bound{Infinite: true}, Mode: ModeIDReply, Match: []bool{true}}}}); err == nil {
		t.Fatal("id reply with 1 code for 2 items accepted")
	}
}
