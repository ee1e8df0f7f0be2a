package lazaret

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// simReplica is one node of the merge simulation: its records and clock.
type simReplica struct {
	node    int
	clock   *ManualClock
	hlc     *HLC
	records map[ID]*Metadata
}

// simPacket is a record pushed from one replica to another.
type simPacket struct {
	to  int
	rec *Metadata
}

// simEvent is an event some replica recorded, for the no-loss check.
type simEvent struct {
	id ID
	ev Event
}

type mergeSim struct {
	t        *rapid.T
	replicas []*simReplica
	inflight []simPacket
	events   []simEvent
	all      []*Metadata // every record version ever produced, for the algebra checks
	nextID   int
	nextReq  int
	lossPct  int
}

func (s *mergeSim) ids() []ID {
	var ids []ID
	for i := range s.nextID {
		ids = append(ids, ID(fmt.Sprintf("1wShJQ-%06d-01", i)))
	}
	return ids
}

// apply merges rec into replica r, as a push or a reconciliation does.
func (s *mergeSim) apply(r *simReplica, rec *Metadata) {
	r.hlc.Observe(rec.Version)
	old := r.records[rec.ID]
	w := Merge(old, rec)
	if w != old {
		r.records[rec.ID] = w
		s.all = append(s.all, w)
	}
}

// change applies fn to replica r's live copy of id with a new version, like
// replicator's update, and pushes the result to every other replica.
func (s *mergeSim) change(r *simReplica, id ID, fn func(m *Metadata) bool) {
	old := r.records[id]
	if old == nil || old.State == StateDeleted {
		return
	}
	m := old.Clone()
	n := len(m.History)
	if !fn(m) {
		return
	}
	m.Version = r.hlc.Now()
	for _, e := range m.History[n:] {
		s.events = append(s.events, simEvent{id, e})
	}
	r.records[id] = m
	s.all = append(s.all, m)
	s.push(r, m)
}

func (s *mergeSim) push(from *simReplica, m *Metadata) {
	for _, r := range s.replicas {
		if r != from {
			s.inflight = append(s.inflight, simPacket{to: r.node, rec: m})
		}
	}
}

func (s *mergeSim) event(r *simReplica, action, detail, req string) Event {
	return Event{Time: r.clock.Now().UTC(), Actor: fmt.Sprintf("user%d", r.node), Action: action, Detail: detail, Node: r.node, Request: req}
}

// step performs one random operation or delivery.
func (s *mergeSim) step() {
	t := s.t
	r := s.replicas[rapid.IntRange(0, len(s.replicas)-1).Draw(t, "replica")]
	// Clocks move forward mostly, sometimes back (a step), by whole ms.
	r.clock.Advance(time.Duration(rapid.IntRange(-5, 50).Draw(t, "tick")) * time.Millisecond)
	ids := s.ids()
	pick := func() ID {
		if len(ids) == 0 {
			return ""
		}
		return ids[rapid.IntRange(0, len(ids)-1).Draw(t, "id")]
	}
	switch op := rapid.IntRange(0, 9).Draw(t, "op"); op {
	case 0: // put
		id := ID(fmt.Sprintf("1wShJQ-%06d-01", s.nextID))
		s.nextID++
		m := &Metadata{ID: id, Node: r.node, Received: r.clock.Now().UTC(), Sender: "a@example.com",
			Recipients: []string{"b@example.com"}, Subject: "s", Size: 10}
		m.History = []Event{s.event(r, "quarantine", "", "")}
		m.Version = r.hlc.Now()
		s.events = append(s.events, simEvent{id, m.History[0]})
		r.records[id] = m
		s.all = append(s.all, m)
		s.push(r, m)
	case 1, 2: // learn spam or ham
		kind := LearnSpam
		if op == 2 {
			kind = LearnHam
		}
		s.change(r, pick(), func(m *Metadata) bool {
			m.LearnedAs = kind
			m.History = append(m.History, s.event(r, "learn", kind.String()+" learned 3 tokens", ""))
			return true
		})
	case 3: // release request
		req := fmt.Sprintf("req-%d", s.nextReq)
		s.nextReq++
		s.change(r, pick(), func(m *Metadata) bool {
			m.History = append(m.History, s.event(r, "release-request", "to b@example.com", req))
			return true
		})
	case 4: // release done: only on the node that recorded the request, once
		s.change(r, pick(), func(m *Metadata) bool {
			for _, rid := range pendingRequests(m.History, r.node) {
				m.State = StateReleased
				m.History = append(m.History, s.event(r, "release", "to b@example.com via relay: 250 ok", rid))
				return true
			}
			return false
		})
	case 5: // delete
		s.change(r, pick(), func(m *Metadata) bool {
			m.State = StateDeleted
			m.History = append(m.History, s.event(r, "delete", "", ""))
			return true
		})
	default: // deliver a pushed record: in any order, maybe lost, maybe twice
		if len(s.inflight) == 0 {
			return
		}
		i := rapid.IntRange(0, len(s.inflight)-1).Draw(t, "packet")
		p := s.inflight[i]
		if !rapid.Bool().Draw(t, "keep for a duplicate") {
			s.inflight = slices.Delete(s.inflight, i, i+1)
		}
		if rapid.IntRange(0, 99).Draw(t, "loss") < s.lossPct {
			return
		}
		s.apply(s.replicas[p.to-1], p.rec)
	}
}

// pendingRequests returns the request ids that node recorded in h and that
// have no outcome yet.
func pendingRequests(h []Event, node int) []string {
	var out []string
	for _, e := range h {
		if e.Action == "release-request" && e.Node == node {
			done := slices.ContainsFunc(h, func(o Event) bool { return o.Request == e.Request && o.Action == "release" })
			if !done {
				out = append(out, e.Request)
			}
		}
	}
	return out
}

func recordJSON(t failer, m *Metadata) string {
	j, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(j)
}

// TestMergeConvergesProperty: random puts, learns, release requests,
// releases and deletes on 3-5 replicas, pushed to each other in random
// order with duplicates and losses, then fully reconciled (every replica
// merges every other's records): all replicas end identical, equal to the
// merge of everything, with no event lost, no release delivered twice and
// every release delivered by the node that recorded its request.
func TestMergeConvergesProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(3, 5).Draw(t, "replicas")
		start := time.Date(2026, 5, 28, 20, 26, 40, 0, time.UTC)
		s := &mergeSim{t: t, lossPct: rapid.IntRange(0, 60).Draw(t, "loss percent")}
		for i := range n {
			c := NewManualClock(start.Add(time.Duration(rapid.IntRange(-100, 100).Draw(t, "skew")) * time.Millisecond))
			s.replicas = append(s.replicas, &simReplica{node: i + 1, clock: c, hlc: NewHLC(c, i+1), records: map[ID]*Metadata{}})
		}
		steps := rapid.IntRange(1, 120).Draw(t, "steps")
		for range steps {
			s.step()
		}

		// The expected result: every version of every record merged, in a
		// random order.
		want := map[ID]*Metadata{}
		for _, i := range rapid.Permutation(seq(len(s.all))).Draw(t, "fold order") {
			m := s.all[i]
			want[m.ID] = Merge(want[m.ID], m)
		}

		// Full reconciliation, in a random order of pairs, twice over.
		pairs := [][2]int{}
		for i := range n {
			for j := range n {
				if i != j {
					pairs = append(pairs, [2]int{i, j})
				}
			}
		}
		for range 2 {
			for _, p := range rapid.Permutation(pairs).Draw(t, "pairs") {
				dst, src := s.replicas[p[0]], s.replicas[p[1]]
				for _, id := range sortedIDs(src.records) {
					s.apply(dst, src.records[id])
				}
			}
		}

		for _, r := range s.replicas {
			if len(r.records) != len(want) {
				t.Fatalf("replica %d holds %d records, want %d", r.node, len(r.records), len(want))
			}
			for id, w := range want {
				if got, exp := recordJSON(t, r.records[id]), recordJSON(t, w); got != exp {
					t.Fatalf("replica %d, %s:\n got %s\nwant %s", r.node, id, got, exp)
				}
			}
		}
		for _, e := range s.events {
			if !slices.ContainsFunc(want[e.id].History, func(h Event) bool { return compareEvents(h, e.ev) == 0 }) {
				t.Fatalf("%s: event %+v lost", e.id, e.ev)
			}
		}
		for id, m := range want {
			reqNode := map[string]int{}
			delivered := map[string]int{}
			for _, e := range m.History {
				if e.Action == "release-request" {
					reqNode[e.Request] = e.Node
				}
			}
			for _, e := range m.History {
				switch e.Action {
				case "release":
					delivered[e.Request]++
					if reqNode[e.Request] != e.Node {
						t.Fatalf("%s: request %s delivered by node %d, recorded by node %d", id, e.Request, e.Node, reqNode[e.Request])
					}
				}
			}
			for rid, k := range delivered {
				if k > 1 {
					t.Fatalf("%s: request %s delivered %d times", id, rid, k)
				}
			}
			if m.State == StateReleased && len(delivered) == 0 {
				t.Fatalf("%s: released without a release event", id)
			}
		}
	})
}

// TestMergeAlgebraProperty checks the laws on records the simulation makes:
// commutative, associative, idempotent, and nil as the identity.
func TestMergeAlgebraProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		start := time.Date(2026, 5, 28, 20, 26, 40, 0, time.UTC)
		s := &mergeSim{t: t}
		for i := range 3 {
			c := NewManualClock(start)
			s.replicas = append(s.replicas, &simReplica{node: i + 1, clock: c, hlc: NewHLC(c, i+1), records: map[ID]*Metadata{}})
		}
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			s.step()
		}
		byID := map[ID][]*Metadata{}
		for _, m := range s.all {
			byID[m.ID] = append(byID[m.ID], m)
		}
		for _, id := range sortedIDs(byID) {
			vs := byID[id]
			pick := func(name string) *Metadata { return vs[rapid.IntRange(0, len(vs)-1).Draw(t, name)] }
			a, b, c := pick("a"), pick("b"), pick("c")
			// Records as stored are canonical once merged; normalise a, b, c
			// (their histories were appended to) the way Merge does.
			a, b, c = Merge(a, a), Merge(b, b), Merge(c, c)
			eq := func(what string, x, y *Metadata) {
				if recordJSON(t, x) != recordJSON(t, y) {
					t.Fatalf("%s: %s differs:\n%s\n%s", id, what, recordJSON(t, x), recordJSON(t, y))
				}
			}
			eq("Merge(a,b) vs Merge(b,a)", Merge(a, b), Merge(b, a))
			eq("Merge(Merge(a,b),c) vs Merge(a,Merge(b,c))", Merge(Merge(a, b), c), Merge(a, Merge(b, c)))
			if Merge(a, a) != a {
				t.Fatalf("%s: Merge(a, a) of a canonical record is not a itself", id)
			}
			if ab := Merge(a, b); Merge(ab, b) != ab || Merge(ab, a) != ab {
				t.Fatalf("%s: merging a part again changed the result", id)
			}
			if Merge(nil, a) != a || Merge(a, nil) != a {
				t.Fatalf("%s: nil is not the identity", id)
			}
		}
	})
}

// TestMergeConcurrentLearns: two nodes learning the same message at once
// keep both events; the later one decides LearnedAs, whichever arrives first.
func TestMergeConcurrentLearns(t *testing.T) {
	t0 := time.Date(2026, 5, 28, 20, 26, 40, 0, time.UTC)
	base := &Metadata{ID: "1wShJQ-000000-01", History: []Event{{Time: t0, Action: "quarantine", Node: 1}}, Version: Version{Wall: 1, Node: 1}}
	a := base.Clone()
	a.LearnedAs = LearnSpam
	a.History = append(a.History, Event{Time: t0.Add(time.Second), Action: "learn", Detail: "spam ok", Node: 1})
	a.Version = Version{Wall: 5, Node: 1}
	b := base.Clone()
	b.LearnedAs = LearnHam
	b.History = append(b.History, Event{Time: t0.Add(2 * time.Second), Action: "learn", Detail: "ham ok", Node: 2})
	b.Version = Version{Wall: 3, Node: 2} // older version, later event
	for _, m := range []*Metadata{Merge(a, b), Merge(b, a)} {
		if len(m.History) != 3 {
			t.Fatalf("history %+v, want 3 events", m.History)
		}
		if m.LearnedAs != LearnHam {
			t.Fatalf("LearnedAs %v, want ham (the later learn)", m.LearnedAs)
		}
		if m.Version != a.Version {
			t.Fatalf("Version %v, want the winner's %v", m.Version, a.Version)
		}
	}
	// A release on one node and a delete on another: deleted wins, and the
	// release stays in the history.
	r := base.Clone()
	r.State = StateReleased
	r.History = append(r.History, Event{Time: t0.Add(time.Second), Action: "release", Node: 1, Request: "x"})
	r.Version = Version{Wall: 9, Node: 1}
	d := base.Clone()
	d.State = StateDeleted
	d.History = append(d.History, Event{Time: t0.Add(time.Second), Action: "delete", Node: 2})
	d.Version = Version{Wall: 2, Node: 2}
	m := Merge(r, d)
	if m.State != StateDeleted || len(m.History) != 3 || !strings.Contains(recordJSON(t, m), `"request":"x"`) {
		t.Fatalf("release vs delete: %s", recordJSON(t, m))
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func sortedIDs[V any](m map[ID]V) []ID {
	ids := make([]ID, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
