package sim

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/lazaret/lazaret/replicator/reconcile"
)

// Session is what one anti-entropy session between two nodes costs.
type Session struct {
	Bytes      float64 // both directions
	RoundTrips float64 // messages / 2, rounded up
	Found      int     // differences found (real runs only)
}

// items returns n set items with real ids over span seconds and hashes of
// random content.
func items(r *rand.Rand, n int, span int64) []reconcile.Item {
	keys := ids(n, span, 5)
	out := make([]reconcile.Item, n)
	var c [8]byte
	for i, k := range keys {
		binary.LittleEndian.PutUint64(c[:], r.Uint64())
		out[i] = reconcile.Item{Key: k, Hash: reconcile.HashItem(k, c[:])}
	}
	return out
}

// diverge returns the two replicas of base with d differences at random
// positions: half changed on one side, a quarter missing on each side.
func diverge(r *rand.Rand, base []reconcile.Item, d int) (a, b []reconcile.Item) {
	d = min(d, len(base))
	pos := r.Perm(len(base))[:d]
	kind := make(map[int]int, d)
	for i, p := range pos {
		kind[p] = i % 4
	}
	for i, it := range base {
		switch k, ok := kind[i]; {
		case !ok:
			a, b = append(a, it), append(b, it)
		case k <= 1:
			c := it
			c.Hash = reconcile.HashItem(it.Key, it.Hash[:])
			a, b = append(a, it), append(b, c)
		case k == 2:
			b = append(b, it)
		default:
			a = append(a, it)
		}
	}
	return a, b
}

// RunSession runs a real reconcile session between two replicas to its end,
// counting the encoded bytes of every message.
func RunSession(a, b reconcile.Set, cfg reconcile.Config) (Session, error) {
	sa, err := reconcile.NewSession(a, cfg)
	if err != nil {
		return Session{}, err
	}
	sb, err := reconcile.NewSession(b, cfg)
	if err != nil {
		return Session{}, err
	}
	step, err := sa.Initiate()
	if err != nil {
		return Session{}, err
	}
	var s Session
	found := map[string]bool{}
	recv := [2]*reconcile.Session{sb, sa}
	msgs := 0
	for turn := 0; step.Reply != nil; turn = 1 - turn {
		wire, err := step.Reply.MarshalBinary()
		if err != nil {
			return Session{}, err
		}
		s.Bytes += float64(len(wire))
		if msgs++; msgs > 1000 {
			return Session{}, fmt.Errorf("sim: session did not end after %d messages", msgs)
		}
		var m reconcile.Message
		if err := m.UnmarshalBinary(wire); err != nil {
			return Session{}, err
		}
		if step, err = recv[turn].Handle(&m); err != nil {
			return Session{}, err
		}
		if turn == 0 { // b's view: Have and Need together are the difference
			for _, k := range append(step.Have, step.Need...) {
				found[k] = true
			}
		}
	}
	s.RoundTrips = math.Ceil(float64(msgs) / 2)
	s.Found = len(found)
	return s, nil
}

// fingerprintRangeBytes is what one fingerprint range costs on the wire:
// mode and bound varints, a short key suffix and the 16-byte fingerprint.
const fingerprintRangeBytes = 21

// Estimate returns the cost of a session over m items with d differences,
// running the real session on a sample of at most sample items. Above the
// sample it keeps the density of differences (d·sample/m, at least one, at
// the sample), scales the bytes by the ratio of differences, and adds the
// tree levels the sample lacks: log_Branch(m/sample) more messages, each
// level splitting at most min(Branch^level, d) differing ranges into Branch
// fingerprints.
func Estimate(r *rand.Rand, m, d, sample int, cfg reconcile.Config) (Session, error) {
	n := min(m, sample)
	ds := d
	if n < m && d > 0 {
		ds = max(1, int(math.Round(float64(d)*float64(n)/float64(m))))
	}
	ds = min(ds, n/2)
	base := items(r, n, 30*86400)
	a, b := diverge(r, base, ds)
	s, err := RunSession(reconcile.NewMemSet(a), reconcile.NewMemSet(b), cfg)
	if err != nil || n == m {
		return s, err
	}
	if ds > 0 {
		s.Bytes *= float64(d) / float64(ds)
	}
	levels := math.Ceil(math.Log(float64(m)/float64(n)) / math.Log(float64(cfg.Branch)))
	if d > 0 {
		for l := range int(levels) {
			s.Bytes += math.Min(math.Pow(float64(cfg.Branch), float64(l)), float64(d)) * float64(cfg.Branch) * fingerprintRangeBytes
		}
		s.RoundTrips += math.Ceil(levels / 2)
	}
	s.Found = 0
	return s, nil
}
