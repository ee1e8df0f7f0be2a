package replicator

import (
	"context"
	"fmt"
	"github.com/lazaret/lazaret/replicator/erasure"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
)

// placedShardsStored checks that every shard id's placement (as node
// `from` records it) names is stored on its holder with the placed size
// and SHA-256.
func placedShardsStored(tc *testCluster, from int, id lazaret.ID) error {
	m, err := tc.node(from).store.Meta(id)
	if err != nil {
		return err
	}
	for _, loc := range m.Placement.Shards {
		infos, err := tc.node(loc.Node).store.ShardInfos(id)
		if err != nil {
			return err
		}
		if !hasShard(infos, loc) {
			return fmt.Errorf("%s: shard %d placed on node %d is not stored there (it holds %d shards)", id, loc.Index, loc.Node, len(infos))
		}
	}
	return nil
}

// TestSpreadTwiceKeepsShards: a second repair check of an under-protected
// message, queued while the first one's spread streams (a membership
// change or a record change queues every degraded message again), must
// not remove the shards the other published. Before the fix two workers
// spread the same message at once; the one that lost the race to publish
// its placement aborted its shard streams, and aborting asked each peer to
// delete every shard of the message, the winner's placed shards included.
// One crash of the origin then lost an acknowledged message (issue 10).
func TestSpreadTwiceKeepsShards(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tc := newTestCluster(t, 5, false, fastAE)
	tc.net.SetDown(4, true)
	tc.net.SetDown(5, true)
	n1 := tc.node(1)
	rng := rand.New(rand.NewPCG(21, 22))
	bodies := putN(t, ctx, n1.node, rng, 1, func() int { return 300_000 })
	var id lazaret.ID
	for i := range bodies {
		id = i
	}
	if m, err := n1.store.Meta(id); err != nil || !m.Placement.UnderProtected || m.Placement.K != 1 || m.Placement.M != 0 {
		t.Fatalf("after the put with two nodes down: %+v, %v; want an under-protected whole copy", m, err)
	}
	// Node 2 holds the first spread's shard stream (after its header)
	// until release; later streams pass.
	var streams atomic.Int32
	var held atomic.Value // the first stream's context
	release := make(chan struct{})
	first := make(chan struct{})
	tc.net.SetPutHook(2, func(ctx context.Context, received int) error {
		if received == 0 {
			if streams.Add(1) == 1 {
				held.Store(ctx)
				close(first)
			}
			return nil
		}
		if received == 1 && held.Load() == ctx {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	tc.net.SetDown(4, false)
	tc.net.SetDown(5, false)
	select {
	case <-first:
	case <-ctx.Done():
		t.Fatal("no spread started")
	}
	// The check is queued again while the first spread runs.
	n1.node.cl.ae.rep.enqueue(id, false)
	// Give a second worker time to spread and publish.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := n1.store.Meta(id); m != nil && !m.Placement.UnderProtected {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(release)
	waitFor(t, "spread settled", 30*time.Second, func() error {
		if c, _, _ := n1.node.UnderProtected(); c != 0 {
			return fmt.Errorf("%d under-protected", c)
		}
		if q := n1.node.RepairQueue(); q != 0 {
			return fmt.Errorf("repair queue %d", q)
		}
		return nil
	})
	// The checks are over, their clean-up (abort) included.
	waitPushed(t, n1)
	if err := placedShardsStored(tc, 1, id); err != nil {
		t.Fatal(err)
	}
	tc.net.SetDown(1, true)
	if err := readBack(ctx, tc.node(2).node, id, bodies[id]); err != nil {
		t.Fatalf("origin down after the spread: %v", err)
	}
}

// TestRemoteAbortTakesBackOnlyItsWrite: aborting a shard streamed to a
// peer removes that write and nothing else there: not another shard of the
// message, nor a shard another writer stored since under the same index.
// Before the fix abort asked the peer to delete every shard of the
// message (a put's straggler aborted after a spread had placed its shard
// on the same node removed the placed one).
func TestRemoteAbortTakesBackOnlyItsWrite(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tc := newTestCluster(t, 3, false, func(c *Config) { c.Cluster.AntiEntropy.Disabled = true })
	n1 := tc.node(1).node
	id, err := n1.alloc.Next()
	if err != nil {
		t.Fatal(err)
	}
	code := erasure.Code{K: 2, M: 1}
	body := []byte("a piece of a shard, long enough to be a few bytes")
	send := func(index int) (shardSink, lazaret.ShardLoc) {
		t.Helper()
		s, err := n1.newRemoteSink(ctx, id, code, index, 1024, 2)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.write(body); err != nil {
			t.Fatal(err)
		}
		loc, err := s.finish(int64(2 * len(body)))
		if err != nil {
			t.Fatal(err)
		}
		return s, loc
	}
	held := func() []int {
		infos, err := tc.node(2).store.ShardInfos(id)
		if err != nil {
			t.Fatal(err)
		}
		var idx []int
		for _, in := range infos {
			idx = append(idx, in.Index)
		}
		return idx
	}
	a, _ := send(0)
	send(1) // another shard of the message on the same node
	a.abort()
	if got := held(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("after aborting shard 0: node 2 holds shards %v; want [1]", got)
	}
	b, _ := send(1) // shard 1 written again; then the second write stored it again
	send(1)
	b.abort()
	if got := held(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("after aborting a write replaced since: node 2 holds shards %v; want [1]", got)
	}
}

// TestSpreadHolderFailsCommit: a holder that fails a spread's shard (the
// stream breaks before it is committed) is not named by the placement the
// spread publishes; the origin, once it gives up its whole copy, leaves a
// message every placed holder can serve, and fill completes it later.
func TestSpreadHolderFailsCommit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tc := newTestCluster(t, 5, false, fastAE)
	tc.net.SetDown(4, true)
	tc.net.SetDown(5, true)
	n1 := tc.node(1)
	rng := rand.New(rand.NewPCG(23, 24))
	bodies := putN(t, ctx, n1.node, rng, 1, func() int { return 400_000 })
	var id lazaret.ID
	for i := range bodies {
		id = i
	}
	var failed atomic.Bool
	tc.net.SetPutHook(3, func(ctx context.Context, received int) error {
		if received >= 2 && failed.CompareAndSwap(false, true) {
			return status.Errorf(codes.Unavailable, "node 3: disk error")
		}
		return nil
	})
	tc.net.SetDown(4, false)
	tc.net.SetDown(5, false)
	waitFor(t, "spread and fill", 30*time.Second, func() error {
		if err := placedShardsStored(tc, 1, id); err != nil {
			return err
		}
		m, _ := n1.store.Meta(id)
		if m.Placement.K != 3 || m.Placement.UnderProtected {
			return fmt.Errorf("placement %+v", m.Placement)
		}
		return nil
	})
	if !failed.Load() {
		t.Fatal("node 3's shard never failed")
	}
	for _, tn := range tc.nodes {
		waitPushed(t, tn)
	}
	m, _ := n1.store.Meta(id)
	for _, e := range m.History {
		if e.Action == "protect" && strings.Contains(e.Detail, ",3") {
			t.Errorf("the spread named node 3, whose shard failed: %q", e.Detail)
		}
	}
	tc.net.SetDown(1, true)
	tc.net.SetDown(2, true)
	if err := readBack(ctx, tc.node(3).node, id, bodies[id]); err != nil {
		t.Fatalf("origin and node 2 down: %v", err)
	}
}
