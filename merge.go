package lazaret

import (
	"bytes"
	"cmp"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Merge returns the replica of one message's metadata that results when a
// node holding a learns of b (or b of a). nil stands for "no record" and
// loses to any record. When a or b already is the result, Merge returns it
// itself (so a caller can tell that nothing changed by comparing pointers);
// otherwise it returns a new record and modifies neither.
//
// Merge is deterministic, commutative, associative and idempotent on
// records whose histories are in canonical order (every record Merge
// returns is): replicas that receive the same records in any order, with
// duplicates, end with the same record. The state machine and the reasons
// are in docs/merge.md. In short:
//
//  1. The winner is the record with the further state (quarantined <
//     released < deleted; deleted is final), then the higher Version (hybrid
//     logical clock), then, for equal Versions that differ (a bug or
//     corruption), the larger canonical JSON encoding. Every field except
//     History, LearnedAs and Placement is the winner's, Version included.
//  2. History is the union of both histories: events are the same event
//     when their time, node, action, actor, detail and request id are
//     equal; the union is sorted by those fields in that order (times in
//     UTC). No event recorded on any node is ever lost, so a release request
//     stays recorded wherever its record travels.
//  3. LearnedAs is the kind named by the last "learn" event of the merged
//     history (its Detail starts with "spam" or "ham"), else the winner's.
//     Two nodes learning at once both keep their event; the later one sets
//     LearnedAs.
//  4. Placement is the one with the higher Placement.Version (ties: the
//     larger canonical JSON), whichever record wins rule 1: where the shards
//     are is changed only by repair, independently of what users do to the
//     message, and an older placement may name shards that no longer exist.
func Merge(a, b *Metadata) *Metadata {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	w := a
	if mergeWins(b, a) {
		w = b
	}
	hist := mergeHistory(a.History, b.History)
	learned := learnedFrom(hist, w.LearnedAs)
	pl := a
	if placementWins(b.Placement, a.Placement) {
		pl = b
	}
	if learned == w.LearnedAs && slices.EqualFunc(hist, w.History, sameEvent) && isCanonicalHistory(w.History) &&
		(pl == w || samePlacement(pl.Placement, w.Placement)) {
		return w
	}
	m := w.Clone()
	m.History = hist
	m.LearnedAs = learned
	m.Placement = pl.Clone().Placement
	return m
}

// placementWins reports whether placement a wins over b by rule 4 of Merge.
func placementWins(a, b Placement) bool {
	if c := a.Version.Compare(b.Version); c != 0 {
		return c > 0
	}
	return bytes.Compare(placementKey(a), placementKey(b)) > 0
}

func samePlacement(a, b Placement) bool { return bytes.Equal(placementKey(a), placementKey(b)) }

// placementKey is the canonical JSON encoding of a placement.
func placementKey(p Placement) []byte {
	if len(p.Shards) == 0 {
		p.Shards = nil
	}
	j, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	return j
}

// mergeWins reports whether a wins over b by rule 1 of Merge.
func mergeWins(a, b *Metadata) bool {
	if a.State != b.State {
		return a.State > b.State
	}
	if c := a.Version.Compare(b.Version); c != 0 {
		return c > 0
	}
	return bytes.Compare(mergeKey(a), mergeKey(b)) > 0
}

// mergeKey is the JSON encoding of m without the fields Merge combines.
func mergeKey(m *Metadata) []byte {
	c := *m
	c.History, c.LearnedAs, c.Placement = nil, LearnNone, Placement{}
	c.Received, c.Date = c.Received.UTC(), c.Date.UTC()
	j, err := json.Marshal(&c)
	if err != nil {
		// Metadata holds nothing json cannot encode; a failure here would
		// make every such record tie, and the first argument win.
		return nil
	}
	return j
}

// compareEvents orders events canonically: by time, node, action, actor,
// detail and request id.
func compareEvents(a, b Event) int {
	if c := a.Time.Compare(b.Time); c != 0 {
		return c
	}
	return cmp.Or(
		cmp.Compare(a.Node, b.Node),
		strings.Compare(a.Action, b.Action),
		strings.Compare(a.Actor, b.Actor),
		strings.Compare(a.Detail, b.Detail),
		strings.Compare(a.Request, b.Request),
	)
}

// sameEvent reports whether a and b are the same event, in the same form.
func sameEvent(a, b Event) bool {
	return compareEvents(a, b) == 0 && a.Time.Location() == b.Time.Location()
}

// isCanonicalHistory reports whether h is strictly ascending in canonical
// order with times in UTC, as mergeHistory returns it.
func isCanonicalHistory(h []Event) bool {
	for i, e := range h {
		if e.Time.Location() != time.UTC || (i > 0 && compareEvents(h[i-1], e) >= 0) {
			return false
		}
	}
	return true
}

// mergeHistory returns the union of a and b in canonical order, times in UTC,
// without duplicates.
func mergeHistory(a, b []Event) []Event {
	if len(a) == 0 && len(b) == 0 {
		return nil
	}
	out := make([]Event, 0, len(a)+len(b))
	for _, e := range a {
		e.Time = e.Time.UTC()
		out = append(out, e)
	}
	for _, e := range b {
		e.Time = e.Time.UTC()
		out = append(out, e)
	}
	slices.SortFunc(out, compareEvents)
	return slices.CompactFunc(out, func(x, y Event) bool { return compareEvents(x, y) == 0 })
}

// learnedFrom returns the kind named by the last "learn" event of h, or
// fallback if there is none.
func learnedFrom(h []Event, fallback LearnKind) LearnKind {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Action != "learn" {
			continue
		}
		word, _, _ := strings.Cut(h[i].Detail, " ")
		switch word {
		case LearnSpam.String():
			return LearnSpam
		case LearnHam.String():
			return LearnHam
		}
	}
	return fallback
}
