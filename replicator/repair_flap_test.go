package replicator

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator/member"
)

// TestRepairFillUnderFlappingMembership: messages the isolated node 3 took
// in with only its own shard are filled by the others while membership
// flaps (members suspected and back, connections fine); once it settles,
// every replica holds one complete placement and no node fills the same
// index twice over.
func TestRepairFillUnderFlappingMembership(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tc := newTestCluster(t, 5, false, fastAE)
	// Cut node 3's link; membership still shows it alive.
	tc.net.SetDown(3, true)
	tc.net.SetState(3, member.Alive)
	n1, n3 := tc.node(1).node, tc.node(3).node
	rng := rand.New(rand.NewPCG(3, 5))
	bodies := putN(t, ctx, n3, rng, 20, func() int { return 2000 + rng.IntN(2000) })
	for id, b := range putN(t, ctx, n1, rng, 20, func() int { return 2000 + rng.IntN(60000) }) {
		bodies[id] = b
	}
	c3, _, _ := n3.UnderProtected()
	c1, _, _ := n1.UnderProtected()
	t.Logf("under-protected during the cut: node 3 %d, node 1 %d", c3, c1)
	tc.net.SetDown(3, false)
	flapEnd := time.Now().Add(3 * time.Second)
	for time.Now().Before(flapEnd) {
		n := 1 + rng.IntN(5)
		if n == 3 {
			continue
		}
		tc.net.SetState(n, member.Suspect)
		time.Sleep(time.Duration(5+rng.IntN(30)) * time.Millisecond)
		tc.net.SetState(n, member.Alive)
		time.Sleep(time.Duration(rng.IntN(10)) * time.Millisecond)
	}
	start := time.Now()
	waitFor(t, "fill", 20*time.Second, func() error {
		for _, tn := range tc.nodes {
			if c, _, _ := tn.node.UnderProtected(); c != 0 {
				return fmt.Errorf("node %d: %d still under-protected", tn.num, c)
			}
		}
		for id := range bodies {
			for _, tn := range tc.nodes {
				m, err := tn.store.Meta(id)
				if err != nil {
					return err
				}
				if m.Placement.UnderProtected || !fullyPlaced(m.Placement, func(int) bool { return false }) {
					return fmt.Errorf("node %d: %s placement %+v", tn.num, id, m.Placement)
				}
			}
		}
		return sameMeta(tc.nodes)
	})
	t.Logf("converged %v after the flapping stopped", time.Since(start))
	var fills int64
	for _, tn := range tc.nodes {
		fills += tn.node.cl.ae.rep.repaired.Load()
	}
	var placed int
	for id := range bodies {
		m, err := tc.node(1).store.Meta(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range m.History {
			if e.Action == "repair" {
				placed++
			}
		}
	}
	t.Logf("shards rebuilt: %d; placements recorded by fills: %d; for %d messages", fills, placed, len(bodies))
}

// cutLink makes node number unreachable (and unable to reach anyone) while
// membership still shows it alive, as a lossy link under a gossip view
// that has not caught up.
func (tc *testCluster) cutLink(number int, cut bool) {
	tc.net.SetDown(number, cut)
	tc.net.SetState(number, member.Alive)
}

// waitPushed waits until every change node tn queued for pushing was tried.
func waitPushed(t *testing.T, tn *testNode) {
	t.Helper()
	p := tn.node.cl.push
	waitFor(t, fmt.Sprintf("node %d pushes", tn.num), 10*time.Second, func() error {
		if q, d := p.queued.Load(), p.done.Load(); q != d {
			return fmt.Errorf("%d of %d pushes tried", d, q)
		}
		return nil
	})
}

// TestRepairFillNoLostPlacement: two unplaced indices of a message whose
// fill targets cannot push to each other (a flapping, lossy cluster) must
// not undo each other's placement. Before the fix, each target filled its
// own index on the record it had and the newer placement (lazaret.Merge
// rule 4) dropped the other's shard, which was then filled again, and
// again while the link stayed lossy; the origin kept counting the message
// under-protected. Anti-entropy is off: the test runs the repair checks
// and the record exchange itself, in a fixed order.
func TestRepairFillNoLostPlacement(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tc := newTestCluster(t, 5, false, func(c *Config) { c.Cluster.AntiEntropy.Disabled = true })
	// Node 3 takes a small message in while its link is cut: it keeps its
	// own shard of the 1+2 code; the two others are unplaced.
	tc.cutLink(3, true)
	n3 := tc.node(3)
	rng := rand.New(rand.NewPCG(11, 12))
	// Node 3 keeps a shard of a 1+2 message when it is one of the
	// message's targets, else a whole copy: put until one is the former.
	var id lazaret.ID
	var pl lazaret.Placement
	for range 20 {
		for i := range putN(t, ctx, n3.node, rng, 1, func() int { return 3000 }) {
			r, err := n3.store.Meta(i)
			if err != nil {
				t.Fatal(err)
			}
			if r.Placement.M > 0 {
				id, pl = i, r.Placement
			}
		}
		if id != "" {
			break
		}
	}
	waitPushed(t, n3)
	tc.cutLink(3, false)
	if pl.K != 1 || pl.M != 2 || len(pl.Shards) != 1 || !pl.UnderProtected {
		t.Fatalf("placement after the cut: %+v; want 1+2 with one shard, under-protected", pl)
	}
	_, alive, _ := n3.node.cl.liveMembers()
	targets := fillTargets(id, pl, alive, func(int) bool { return false })
	var idx []int
	for i := range targets {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	if len(idx) != 2 {
		t.Fatalf("fill targets %v; want two", targets)
	}
	a, b := tc.node(targets[idx[0]].Number), tc.node(targets[idx[1]].Number)
	t.Logf("%s: shard %d on node 3; fill targets: shard %d node %d, shard %d node %d", id, pl.Shards[0].Index, idx[0], a.num, idx[1], b.num)

	// sync gives every node the merge of every node's record, as a full
	// anti-entropy round would.
	sync := func() *lazaret.Metadata {
		var all *lazaret.Metadata
		for _, tn := range tc.nodes {
			if m, err := tn.store.Meta(id); err == nil {
				all = lazaret.Merge(all, m)
			}
		}
		for _, tn := range tc.nodes {
			if _, err := tn.node.applyPushed(ctx, []*lazaret.Metadata{all}); err != nil {
				t.Fatalf("node %d: %v", tn.num, err)
			}
		}
		return all
	}
	sync()
	// Each round, each target checks the message while the other's link
	// is cut (so its placement update reaches everyone but the other),
	// then the records are exchanged.
	var final *lazaret.Metadata
	for round := 1; round <= 4 && final == nil; round++ {
		for _, pair := range [][2]*testNode{{a, b}, {b, a}} {
			me, other := pair[0], pair[1]
			tc.cutLink(other.num, true)
			if err := me.node.cl.ae.rep.check(ctx, id, false); err != nil {
				t.Logf("round %d: node %d: %v", round, me.num, err)
			}
			waitPushed(t, me)
			tc.cutLink(other.num, false)
		}
		if m := sync(); !m.Placement.UnderProtected {
			final = m
			t.Logf("fully placed after round %d: %+v", round, m.Placement.Shards)
		}
	}
	if final == nil {
		t.Fatalf("still under-protected after 4 rounds")
	}
	var fills []string
	for _, e := range final.History {
		if e.Action == "repair" {
			fills = append(fills, fmt.Sprintf("node %d: %s", e.Node, e.Detail))
		}
	}
	if len(fills) != 2 || !fullyPlaced(final.Placement, func(int) bool { return false }) {
		t.Errorf("shards placed %d times for 2 unplaced indices (a placement update was lost and redone): %q; placement %+v", len(fills), fills, final.Placement)
	}
	if m, _ := n3.store.Meta(id); m == nil || m.Placement.UnderProtected {
		t.Errorf("node 3's record still under-protected")
	}
}
