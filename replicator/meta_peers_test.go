package replicator

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// TestMissingRecordAsksPeers: a node that was down while a message was put
// (anti-entropy has not caught up; here it is off) answers Stat, Open,
// Learn and Delete of it by asking its peers, never with a permanent not
// found (issue 16 item 5). An id no node holds is not found; one it cannot
// confirm because the peers are unreachable is a temporary error.
func TestMissingRecordAsksPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tc := newTestCluster(t, 3, false, func(c *Config) { c.Cluster.AntiEntropy.Disabled = true })
	tc.net.SetDown(3, true)
	rng := rand.New(rand.NewPCG(31, 32))
	bodies := putN(t, ctx, tc.node(1).node, rng, 4, func() int { return mixSize(rng) })
	waitPushed(t, tc.node(1))
	tc.net.SetDown(3, false)
	n3 := tc.node(3)
	var ids []lazaret.ID
	for id := range bodies {
		ids = append(ids, id)
		if _, err := n3.store.Meta(id); !errors.Is(err, lazaret.ErrNotFound) {
			t.Fatalf("node 3 holds a record of %s before the test: %v", id, err)
		}
	}
	if m, err := n3.node.Stat(ctx, ids[0]); err != nil || m.ID != ids[0] {
		t.Fatalf("stat on node 3: %v, %v", m, err)
	}
	if err := readBack(ctx, n3.node, ids[1], bodies[ids[1]]); err != nil {
		t.Fatalf("get on node 3: %v", err)
	}
	if _, err := n3.node.Learn(ctx, ids[2], lazaret.LearnSpam, "test"); err != nil {
		t.Fatalf("learn on node 3: %v", err)
	}
	if m, err := n3.node.Delete(ctx, ids[3], "test"); err != nil || m.State != lazaret.StateDeleted {
		t.Fatalf("delete on node 3: %v, %v", m, err)
	}
	waitFor(t, "delete reaches nodes 1 and 2", 10*time.Second, func() error {
		for _, num := range []int{1, 2} {
			if _, err := tc.node(num).node.Stat(ctx, ids[3]); !errors.Is(err, lazaret.ErrNotFound) {
				return fmt.Errorf("node %d: stat of the deleted message: %v", num, err)
			}
		}
		return nil
	})
	// An id no node ever stored.
	unknown, err := tc.node(1).node.AllocateID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n3.node.Stat(ctx, unknown); !errors.Is(err, lazaret.ErrNotFound) || errors.Is(err, lazaret.ErrUnavailable) {
		t.Fatalf("stat of an id nobody stored: %v, want not found", err)
	}
	if _, err := n3.node.Delete(ctx, unknown, "test"); !errors.Is(err, lazaret.ErrNotFound) {
		t.Fatalf("delete of an id nobody stored: %v, want not found", err)
	}
	// Node 3 cut off (the others still look alive to it): it cannot
	// confirm, so the answer is temporary.
	tc.cutLink(3, true)
	if _, err := n3.node.Stat(ctx, unknown); !errors.Is(err, lazaret.ErrUnavailable) || errors.Is(err, lazaret.ErrNotFound) {
		t.Fatalf("stat on a cut-off node: %v, want a temporary error", err)
	}
}

// TestReadByNewerPlacement: a node whose record still has the placement
// from before a spread (the spread's push has not reached it) reads the
// message by the newer placement a peer holds, instead of failing (and
// counting the origin's new shard as corrupt).
func TestReadByNewerPlacement(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tc := newTestCluster(t, 5, false, fastAE)
	tc.net.SetDown(4, true)
	tc.net.SetDown(5, true)
	rng := rand.New(rand.NewPCG(41, 42))
	bodies := putN(t, ctx, tc.node(1).node, rng, 1, func() int { return 300_000 })
	var id lazaret.ID
	for i := range bodies {
		id = i
	}
	waitPushed(t, tc.node(1))
	old, err := tc.node(2).store.Meta(id)
	if err != nil || old.Placement.K != 1 || old.Placement.M != 0 {
		t.Fatalf("node 2's record before the spread: %+v, %v", old, err)
	}
	tc.net.SetDown(4, false)
	tc.net.SetDown(5, false)
	waitFor(t, "spread", 30*time.Second, func() error {
		if c, _, _ := tc.node(1).node.UnderProtected(); c != 0 {
			return errors.New("still under-protected")
		}
		return nil
	})
	waitPushed(t, tc.node(1))
	// Node 2 as if the spread's push were still on its way.
	if err := tc.node(2).store.PutMeta(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := readBack(ctx, tc.node(2).node, id, bodies[id]); err != nil {
		t.Fatalf("read on node 2 by the placement from before the spread: %v", err)
	}
	if m, _ := tc.node(2).store.Meta(id); m == nil || m.Placement.K != 3 {
		t.Fatalf("node 2 kept the old placement: %+v", m)
	}
}
