package replicator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
)

// failMidStream makes node num's PutShard of id fail after the header and
// two chunks (before the trailer of a two-stripe shard), taking the node
// down (unreachable, failed in membership) as it does: a node dying in the
// middle of a put. It first waits until the nodes in stored hold their
// shard of id, so that the put has shards to clean up.
func failMidStream(tc *testCluster, num int, id lazaret.ID, stored ...int) {
	tc.net.SetPutHook(num, func(ctx context.Context, received int) error {
		if received < 3 {
			return nil
		}
		for _, s := range stored {
			for {
				if infos, err := tc.node(s).store.ShardInfos(id); err == nil && len(infos) > 0 {
					break
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(5 * time.Millisecond):
				}
			}
		}
		tc.net.SetDown(num, true)
		return status.Errorf(codes.Unavailable, "node %d died", num)
	})
}

// noShardsBut waits until no node but keep holds a shard of id.
func noShardsBut(t *testing.T, tc *testCluster, id lazaret.ID, keep int) {
	t.Helper()
	waitFor(t, "leftover shards removed", 10*time.Second, func() error {
		for _, tn := range tc.nodes {
			if tn.num == keep {
				continue
			}
			if infos, err := tn.store.ShardInfos(id); err != nil || len(infos) != 0 {
				return fmt.Errorf("node %d holds %d shards of %s (%v)", tn.num, len(infos), id, err)
			}
		}
		return nil
	})
}

// TestClusterQuorumLostMidPut: two of the five nodes a 3+2 put places
// shards on die while the body streams (once the shards of nodes 2 and 3
// are stored), so only 3 shards are stored against a quorum of 4. The put is still acknowledged, with the body whole
// on the origin (under-protected), readable from every alive node and,
// once the two are back, from them too; the shards stored elsewhere are
// removed. In strict mode the put is refused with a temporary error and
// leaves nothing anywhere.
func TestClusterQuorumLostMidPut(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			tc := newTestCluster(t, 5, false, func(c *Config) {
				c.Cluster.Policy = "3+2"
				c.Cluster.Strict = strict
				c.Cluster.AntiEntropy.Disabled = true // no repair racing the checks
			})
			origin := tc.node(1).node
			body := mailBody(rand.New(rand.NewPCG(11, 12)), 1, 1500<<10) // 2 stripes of 3 × 256 KiB
			id, err := origin.AllocateID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			failMidStream(tc, 4, id, 2, 3)
			failMidStream(tc, 5, id, 2, 3)
			m, err := origin.Put(ctx, lazaret.PutRequest{ID: id, Sender: "a@example.org"}, bytes.NewReader(body))
			if strict {
				if !errors.Is(err, lazaret.ErrUnavailable) {
					t.Fatalf("strict put losing its quorum: %+v, %v; want ErrUnavailable", m, err)
				}
				for _, tn := range tc.nodes {
					if _, err := tn.store.Meta(id); !errors.Is(err, lazaret.ErrNotFound) {
						t.Errorf("node %d: metadata of the refused put: %v, want ErrNotFound", tn.num, err)
					}
				}
				noShardsBut(t, tc, id, 0)
				return
			}
			if err != nil {
				t.Fatalf("put losing its quorum mid-stream: %v", err)
			}
			pl := m.Placement
			if pl.K != 1 || pl.M != 0 || !pl.UnderProtected || len(pl.Shards) != 1 || pl.Shards[0].Node != 1 || pl.Shards[0].Index != 0 {
				t.Fatalf("placement %+v, want an under-protected whole copy on node 1", pl)
			}
			if c, _, _ := origin.UnderProtected(); c != 1 {
				t.Errorf("node 1 counts %d under-protected messages, want 1", c)
			}
			infos, err := tc.node(1).store.ShardInfos(id)
			if err != nil || len(infos) != 1 || infos[0].K != 1 || infos[0].M != 0 || infos[0].Size != int64(len(body)) {
				t.Fatalf("node 1 shards: %+v, %v; want the whole copy only", infos, err)
			}
			t0 := time.Now()
			noShardsBut(t, tc, id, 1)
			t.Logf("leftover shards removed in %v", time.Since(t0))

			alive := tc.nodes[:3]
			t0 = time.Now()
			metaEverywhere(t, alive, []lazaret.ID{id})
			t.Logf("metadata on the alive nodes in %v", time.Since(t0))
			for _, tn := range alive {
				if err := readBack(ctx, tn.node, id, body); err != nil {
					t.Fatalf("node %d: %v", tn.num, err)
				}
			}

			// Restore the two. They missed the metadata push; hand it to
			// them as anti-entropy would.
			for _, num := range []int{4, 5} {
				tc.net.SetPutHook(num, nil)
				tc.net.SetDown(num, false)
			}
			stored, err := tc.node(1).store.Meta(id)
			if err != nil {
				t.Fatal(err)
			}
			for _, num := range []int{4, 5} {
				if _, err := tc.node(num).node.PeerHandler().PushMeta(ctx, &pb.PushMetaRequest{Messages: []*pb.Message{wire.MessageToPB(stored)}}); err != nil {
					t.Fatalf("push to node %d: %v", num, err)
				}
			}
			for _, tn := range tc.nodes {
				if err := readBack(ctx, tn.node, id, body); err != nil {
					t.Fatalf("node %d after restore: %v", tn.num, err)
				}
			}
		})
	}
}

// hangPutShard makes node num's PutShard handler block before reading
// anything until release is closed (then carry on normally) or the stream
// is cancelled.
func hangPutShard(tc *testCluster, num int, release <-chan struct{}) {
	tc.net.SetPutHook(num, func(ctx context.Context, received int) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
}

// TestClusterHungPeer: a node whose PutShard hangs delays a put by about
// the straggler grace, not PeerTimeout. For a body that fits in the
// stream's flow-control window the hang shows when the put waits for the
// shard's acknowledgement: the put is acknowledged with 4 of 5 shards, and
// when the node wakes up its shard joins the placement. For a larger body
// the stream stalls while the body is sent, and the node is given up.
func TestClusterHungPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const grace = 300 * time.Millisecond
	tc := newTestCluster(t, 5, false, func(c *Config) {
		c.Cluster.Policy = "3+2"
		c.Cluster.StragglerGrace = grace
		c.Cluster.PeerTimeout = 30 * time.Second
		c.Cluster.AntiEntropy.Disabled = true // the late shard, not repair, fills the gap
	}, grpc.InitialWindowSize(64<<10), grpc.InitialConnWindowSize(4<<20))
	rng := rand.New(rand.NewPCG(13, 14))
	const hung = 5

	put := func(t *testing.T, body []byte) *lazaret.Metadata {
		t.Helper()
		start := time.Now()
		m, err := tc.node(1).node.Put(ctx, lazaret.PutRequest{Sender: "a@example.org"}, bytes.NewReader(body))
		took := time.Since(start)
		if err != nil {
			t.Fatalf("put with node %d hung: %v", hung, err)
		}
		t.Logf("%d-byte put with a hung node acknowledged in %v", len(body), took)
		if took > 20*grace { // generous for loaded machines; PeerTimeout is 100 times grace
			t.Errorf("put took %v with a hung node; want about the grace period (%v), far from PeerTimeout", took, grace)
		}
		pl := m.Placement
		if pl.K != 3 || pl.M != 2 || len(pl.Shards) != 4 || !pl.UnderProtected {
			t.Fatalf("placement %+v, want 4 shards of 3+2, under-protected", pl)
		}
		for _, s := range pl.Shards {
			if s.Node == hung {
				t.Fatalf("placement %+v names the hung node", pl)
			}
		}
		for _, tn := range tc.nodes[:4] {
			if err := readBack(ctx, tn.node, m.ID, body); err != nil {
				t.Fatalf("node %d: %v", tn.num, err)
			}
		}
		return m
	}

	t.Run("small", func(t *testing.T) {
		release := make(chan struct{})
		released := false
		defer func() {
			if !released {
				close(release)
			}
		}()
		hangPutShard(tc, hung, release)
		body := mailBody(rng, 1, 100<<10) // shards of 34 KiB
		m := put(t, body)
		tc.net.SetPutHook(hung, nil)

		// The hung node wakes up: its shard is stored and added to the
		// placement, which is pushed.
		close(release)
		released = true
		for _, num := range []int{1, 2} {
			waitFor(t, fmt.Sprintf("late shard in node %d's placement", num), 10*time.Second, func() error {
				got, err := tc.node(num).store.Meta(m.ID)
				if err != nil {
					return err
				}
				if pl := got.Placement; len(pl.Shards) != 5 || pl.UnderProtected {
					return fmt.Errorf("placement %+v", pl)
				}
				return nil
			})
		}
		if c, _, _ := tc.node(1).node.UnderProtected(); c != 0 {
			t.Errorf("node 1 still counts %d under-protected messages", c)
		}
		metaEverywhere(t, tc.nodes, []lazaret.ID{m.ID})
		if err := readBack(ctx, tc.node(hung).node, m.ID, body); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("large", func(t *testing.T) {
		release := make(chan struct{})
		defer close(release)
		hangPutShard(tc, hung, release)
		defer tc.net.SetPutHook(hung, nil)
		put(t, mailBody(rng, 2, 2<<20)) // shards of 700 KiB, past the 64 KiB window
	})
}

// TestClusterOriginLostAfterAck: as soon as a put is acknowledged, the
// nodes holding its shards know the message, so losing the origin right
// after the acknowledgement loses nothing: they Stat and read it.
func TestClusterOriginLostAfterAck(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tc := newTestCluster(t, 5, false, func(c *Config) {
		c.Cluster.Policy = "3+2"
		// Generous, so that a loaded machine does not make the synchronous
		// push miss its bound; healthy pushes take milliseconds.
		c.Cluster.StragglerGrace = 20 * time.Second
		c.Cluster.AntiEntropy.Disabled = true // only the put's own pushes
	})
	rng := rand.New(rand.NewPCG(15, 16))
	for i, size := range []int{300 << 10, 10 << 10} { // 3+2 erasure-coded, 1+2 copies
		origin := tc.nodes[i]
		body := mailBody(rng, i, size)
		m, err := origin.node.Put(ctx, lazaret.PutRequest{Sender: "a@example.org"}, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		tc.net.SetDown(origin.num, true)
		holders := 0
		for num := range placementNodes(m) {
			if num == origin.num {
				continue
			}
			holders++
			tn := tc.node(num)
			if _, err := tn.node.Stat(ctx, m.ID); err != nil {
				t.Errorf("%d-byte message: node %d, holding a shard, right after the ack with the origin down: %v", size, num, err)
				continue
			}
			if err := readBack(ctx, tn.node, m.ID, body); err != nil {
				t.Errorf("%d-byte message: node %d with the origin down: %v", size, num, err)
			}
		}
		if len(m.Placement.Shards) != m.Placement.K+m.Placement.M || holders < 2 {
			t.Errorf("%d-byte message: placement %+v, %d holders besides the origin", size, m.Placement, holders)
		}
		tc.net.SetDown(origin.num, false)
	}
}
