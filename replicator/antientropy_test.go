package replicator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/member"
)

// fastAE is an anti-entropy configuration for tests: rounds every
// 150-300 ms, membership polled every 20 ms, quick retries.
func fastAE(c *Config) {
	c.Cluster.AntiEntropy = AntiEntropyConfig{
		Interval: 300 * time.Millisecond, MembershipPoll: 20 * time.Millisecond,
		SessionTimeout: 20 * time.Second, RepairRetry: 200 * time.Millisecond,
		CleanupDelay: 100 * time.Millisecond, RepairRate: -1,
	}
}

// restart stops node num and starts it again with the same number and
// name: on the same store, or on a new empty one (wipe), as a node whose
// disk was replaced. edit adjusts the new node's config.
func (tc *testCluster) restart(t *testing.T, num int, wipe bool, edit func(*Config)) *testNode {
	t.Helper()
	old := tc.node(num)
	old.node.Close()
	tc.net.Stop(num)
	store := old.store
	if wipe {
		if err := store.Close(); err != nil {
			t.Fatalf("closing store %d: %v", num, err)
		}
		store = openTestStore(t, t.TempDir(), false)
	}
	tn := tc.startNode(t, num, store, edit)
	tc.nodes[num-1] = tn
	return tn
}

// allMeta returns every record of a store as canonical JSON, by id.
func allMeta(t *testing.T, s *objstore.Store) map[lazaret.ID]string {
	t.Helper()
	out := map[lazaret.ID]string{}
	var after lazaret.ID
	for {
		page, err := s.MetaPage(context.Background(), after, 500)
		if err != nil {
			t.Fatalf("MetaPage: %v", err)
		}
		if len(page) == 0 {
			return out
		}
		for _, m := range page {
			m = lazaret.Merge(m, m) // canonical history order
			c := m.Clone()
			c.Received, c.Date = c.Received.UTC(), c.Date.UTC()
			for i := range c.History {
				c.History[i].Time = c.History[i].Time.UTC()
			}
			j, _ := json.Marshal(c)
			out[m.ID] = string(j)
		}
		after = page[len(page)-1].ID
	}
}

// sameMeta fails unless every node holds the same records as the first.
func sameMeta(nodes []*testNode) error {
	fp0, n0 := nodes[0].node.Fingerprint()
	for _, tn := range nodes[1:] {
		fp, n := tn.node.Fingerprint()
		if fp != fp0 || n != n0 {
			return fmt.Errorf("node %d: %d records, fingerprint %x; node %d: %d records, %x", tn.num, n, fp[:4], nodes[0].num, n0, fp0[:4])
		}
	}
	return nil
}

// putN puts count messages on n and returns their bodies by id.
func putN(t *testing.T, ctx context.Context, n *Node, rng *rand.Rand, count int, size func() int) map[lazaret.ID][]byte {
	t.Helper()
	out := map[lazaret.ID][]byte{}
	for i := range count {
		body := mailBody(rng, i, size())
		m, err := n.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.com"}}, bytes.NewReader(body))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		out[m.ID] = body
	}
	return out
}

// placedHere checks that node tn holds every shard the placements put on it.
func placedHere(tn *testNode) error {
	var after lazaret.ID
	for {
		page, err := tn.store.MetaPage(context.Background(), after, 500)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, m := range page {
			if m.State == lazaret.StateDeleted {
				continue
			}
			infos, err := tn.store.ShardInfos(m.ID)
			if err != nil {
				return err
			}
			for _, s := range bodyPlacement(m).Shards {
				if s.Node == tn.num && !hasShard(infos, s) {
					return fmt.Errorf("node %d lacks shard %d of %s", tn.num, s.Index, m.ID)
				}
			}
		}
		after = page[len(page)-1].ID
	}
}

// TestReconcileConverges: two nodes change their metadata while they
// cannot reach each other (puts, learns, deletes on both sides); one
// session makes them identical, a second finds nothing, and tombstones
// drop the shards they name.
func TestReconcileConverges(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tc := newTestCluster(t, 2, false, func(c *Config) { c.Cluster.AntiEntropy.Disabled = true })
	n1, n2 := tc.node(1).node, tc.node(2).node
	rng := rand.New(rand.NewPCG(3, 4))
	small := func() int { return 2000 + rng.IntN(30000) }
	base := putN(t, ctx, n1, rng, 20, small)
	var ids []lazaret.ID
	for id := range base {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	metaEverywhere(t, tc.nodes, ids)
	waitFor(t, "pushes settled", 10*time.Second, func() error { return sameMeta(tc.nodes) })

	// Partition: each side sees the other failed, and the dialer refuses.
	tc.net.SetDown(1, true)
	tc.net.SetDown(2, true)
	more1 := putN(t, ctx, n1, rng, 8, small)
	more2 := putN(t, ctx, n2, rng, 6, small)
	for i, id := range ids[:10] {
		var err error
		switch i % 5 {
		case 0:
			_, err = n1.Learn(ctx, id, lazaret.LearnSpam, "alice")
		case 1:
			_, err = n2.Learn(ctx, id, lazaret.LearnHam, "bob")
		case 2:
			_, err = n1.Delete(ctx, id, "alice")
		case 3:
			_, err = n2.Delete(ctx, id, "bob")
		case 4: // both act on it
			if _, err = n1.Learn(ctx, id, lazaret.LearnHam, "alice"); err == nil {
				_, err = n2.Delete(ctx, id, "bob")
			}
		}
		if err != nil {
			t.Fatalf("change %d on %s: %v", i, id, err)
		}
	}
	if err := sameMeta(tc.nodes); err == nil {
		t.Fatal("metadata identical after diverging changes")
	}
	if _, err := n1.Reconcile(ctx, 2); err == nil {
		t.Fatal("reconcile across a partition succeeded")
	}
	if ps := n1.PeerSyncs(); len(ps) != 1 || ps[0].LastError == "" || !ps[0].LastSuccess.IsZero() {
		t.Fatalf("peer syncs after a failed session: %+v", ps)
	}

	tc.net.SetDown(1, false)
	tc.net.SetDown(2, false)
	ps, err := n1.Reconcile(ctx, 2)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	// 8 + 6 new, 10 changed on one or both sides.
	if ps.Differences != 24 || ps.Bytes == 0 || ps.LastSuccess.IsZero() {
		t.Fatalf("first session: %+v, want 24 differences", ps)
	}
	t.Logf("first session: %d differences, %d bytes", ps.Differences, ps.Bytes)
	if err := sameMeta(tc.nodes); err != nil {
		t.Fatalf("after reconciliation: %v", err)
	}
	m1, m2 := allMeta(t, tc.node(1).store), allMeta(t, tc.node(2).store)
	if len(m1) != 20+8+6 || len(m1) != len(m2) {
		t.Fatalf("records: node 1 %d, node 2 %d, want %d", len(m1), len(m2), 34)
	}
	for id, j := range m1 {
		if m2[id] != j {
			t.Fatalf("%s differs:\nnode 1 %s\nnode 2 %s", id, j, m2[id])
		}
	}
	ps, err = n2.Reconcile(ctx, 1)
	if err != nil || ps.Differences != 0 || ps.Bytes > 100 {
		t.Fatalf("second session: %+v, %v; want no differences in a few bytes", ps, err)
	}
	// Tombstones reached the other side and dropped its shards; the
	// state machine held: a delete beats a concurrent learn.
	for i, id := range ids[:10] {
		m, _ := tc.node(1).store.Meta(id)
		wantDeleted := i%5 >= 2
		if (m.State == lazaret.StateDeleted) != wantDeleted {
			t.Fatalf("%s: state %v after change %d", id, m.State, i)
		}
		for _, tn := range tc.nodes {
			infos, _ := tn.store.ShardInfos(id)
			if wantDeleted && len(infos) > 0 {
				t.Fatalf("node %d keeps %d shards of deleted %s", tn.num, len(infos), id)
			}
		}
	}
	for _, set := range []map[lazaret.ID][]byte{more1, more2} {
		for id, body := range set {
			for _, tn := range tc.nodes {
				if err := readBack(ctx, tn.node, id, body); err != nil {
					t.Fatalf("node %d: %v", tn.num, err)
				}
			}
		}
	}
	// The responder recorded the sessions too.
	if ps := n2.PeerSyncs(); len(ps) != 1 || ps[0].Rounds != 2 {
		t.Fatalf("node 2 peer syncs: %+v", ps)
	}
}

// TestWipedNodeRebuilt: a node whose disk is replaced comes back with the
// same number and name and an empty store; anti-entropy brings its
// metadata back and repair its shards, by itself; everything then reads
// from it even with another node down.
func TestWipedNodeRebuilt(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	tc := newTestCluster(t, 3, false, fastAE)
	rng := rand.New(rand.NewPCG(5, 6))
	bodies := map[lazaret.ID][]byte{}
	for i := 1; i <= 3; i++ {
		for id, b := range putN(t, ctx, tc.node(i).node, rng, 10, func() int { return mixSize(rng) }) {
			bodies[id] = b
		}
	}
	waitFor(t, "metadata everywhere", 20*time.Second, func() error { return sameMeta(tc.nodes) })
	placed := 0
	for id := range bodies {
		m, _ := tc.node(1).store.Meta(id)
		for _, s := range m.Placement.Shards {
			if s.Node == 3 {
				placed++
			}
		}
	}

	tc.net.SetDown(3, true)
	tn := tc.restart(t, 3, true, fastAE)
	if _, n := tn.node.Fingerprint(); n != 0 {
		t.Fatalf("wiped node holds %d records", n)
	}
	start := time.Now()
	tc.net.SetDown(3, false)
	waitFor(t, "node 3 rebuilt", 60*time.Second, func() error {
		if err := sameMeta(tc.nodes); err != nil {
			return err
		}
		if err := placedHere(tn); err != nil {
			return err
		}
		if q := tn.node.RepairQueue(); q != 0 {
			return fmt.Errorf("repair queue %d", q)
		}
		return nil
	})
	shards, rbytes, _ := tn.node.Repaired()
	t.Logf("node 3 rebuilt in %v: %d records, %d shards (%d bytes) repaired", time.Since(start).Round(time.Millisecond), len(bodies), shards, rbytes)
	if shards != int64(placed) {
		t.Fatalf("repaired %d shards, %d were placed on node 3", shards, placed)
	}
	lag := tn.node.ReplicationLag()
	if len(lag.Peers) == 0 || lag.Peers[0].LastSuccess.IsZero() || lag.RepairedBytes != rbytes {
		t.Fatalf("lag figures: %+v", lag)
	}
	// Node 3's shards carry the data: with node 1 down, 2+1 and 1+2
	// messages read from nodes 2 and 3 alone.
	tc.net.SetDown(1, true)
	for id, body := range bodies {
		if err := readBack(ctx, tn.node, id, body); err != nil {
			t.Fatalf("node 3 with node 1 down: %v", err)
		}
	}
}

// TestUnderProtectedSpread: messages taken in while their origin was
// alone are whole copies marked under-protected; once the others return
// they are erasure-coded onto distinct nodes, the flag clears, and they
// read with the origin down.
func TestUnderProtectedSpread(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	tc := newTestCluster(t, 3, false, fastAE)
	tc.net.SetDown(2, true)
	tc.net.SetDown(3, true)
	n1 := tc.node(1).node
	rng := rand.New(rand.NewPCG(7, 8))
	bodies := putN(t, ctx, n1, rng, 6, func() int { return mixSize(rng) })
	if c, b, oldest := n1.UnderProtected(); c != 6 || b == 0 || oldest.IsZero() {
		t.Fatalf("under-protected: %d messages, %d bytes, oldest %v; want 6", c, b, oldest)
	}
	if lag := n1.ReplicationLag(); lag.UnderProtected != 6 {
		t.Fatalf("lag: %+v", lag)
	}
	tc.net.SetDown(2, false)
	tc.net.SetDown(3, false)
	waitFor(t, "spread", 30*time.Second, func() error {
		if c, _, _ := n1.UnderProtected(); c != 0 {
			return fmt.Errorf("%d still under-protected", c)
		}
		for id := range bodies {
			for _, tn := range tc.nodes {
				m, err := tn.store.Meta(id)
				if err != nil {
					return err
				}
				// 2+1, or 1+1 for bodies below the small-message threshold.
				want := erasure.Code{K: 2, M: 1}
				if int64(len(bodies[id])) < DefaultSmallMessageThreshold {
					want = erasure.Code{K: 1, M: 1}
				}
				if m.Placement.UnderProtected || len(m.Placement.Shards) != want.Shards() || (erasure.Code{K: m.Placement.K, M: m.Placement.M}) != want {
					return fmt.Errorf("node %d: %s placement %+v", tn.num, id, m.Placement)
				}
			}
			// No whole copy left behind on the origin.
			infos, _ := tc.node(1).store.ShardInfos(id)
			for _, in := range infos {
				if in.K == 1 && in.M == 0 {
					return fmt.Errorf("whole copy of %s still on node 1", id)
				}
			}
		}
		return nil
	})
	tc.net.SetDown(1, true)
	for id, body := range bodies {
		if err := readBack(ctx, tc.node(2).node, id, body); err != nil {
			t.Fatalf("node 2 with the origin down: %v", err)
		}
	}
}

// TestNodeRemove: a dead node is retired; every shard it held is rebuilt
// on another node, the retirement reaches every member, and everything
// reads with the retired node gone and one more node down.
func TestNodeRemove(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	policy := func(c *Config) { fastAE(c); c.Cluster.Policy = "2+1" }
	tc := newTestCluster(t, 4, false, policy)
	rng := rand.New(rand.NewPCG(9, 10))
	bodies := putN(t, ctx, tc.node(1).node, rng, 24, func() int { return mixSize(rng) })
	waitFor(t, "metadata everywhere", 20*time.Second, func() error { return sameMeta(tc.nodes) })
	on4 := 0
	for id := range bodies {
		m, _ := tc.node(1).store.Meta(id)
		for _, s := range m.Placement.Shards {
			if s.Node == 4 {
				on4++
			}
		}
	}
	if on4 == 0 {
		t.Fatal("no shard on node 4")
	}
	if _, err := tc.node(1).node.RemoveNode(ctx, 4); !errors.Is(err, lazaret.ErrConflict) {
		t.Fatalf("removing an alive node: %v, want ErrConflict", err)
	}
	if _, err := tc.node(1).node.RemoveNode(ctx, 1); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Fatalf("removing itself: %v, want ErrInvalidArgument", err)
	}
	tc.net.SetDown(4, true)
	list, err := tc.node(1).node.RemoveNode(ctx, 4)
	if err != nil || len(list) != 1 || list[0].Number != 4 || list[0].Name != "node4" {
		t.Fatalf("remove node 4: %+v, %v", list, err)
	}
	live := tc.nodes[:3]
	waitFor(t, "shards re-placed", 40*time.Second, func() error {
		for _, tn := range live {
			if r := tn.node.RemovedNodes(); len(r) != 1 {
				return fmt.Errorf("node %d knows %d retired nodes", tn.num, len(r))
			}
			if q := tn.node.RepairQueue(); q != 0 {
				return fmt.Errorf("node %d: repair queue %d", tn.num, q)
			}
			if err := placedHere(tn); err != nil {
				return err
			}
		}
		if err := sameMeta(live); err != nil {
			return err
		}
		for id := range bodies {
			m, _ := tc.node(1).store.Meta(id)
			for _, s := range m.Placement.Shards {
				if s.Node == 4 {
					return fmt.Errorf("%s: shard %d still on node 4", id, s.Index)
				}
			}
			if m.Placement.UnderProtected || len(m.Placement.Shards) != m.Placement.K+m.Placement.M {
				return fmt.Errorf("%s: placement %+v", id, m.Placement)
			}
		}
		return nil
	})
	var repaired int64
	for _, tn := range live {
		s, _, _ := tn.node.Repaired()
		repaired += s
	}
	// At least every shard of node 4 (shards a put could not store are
	// filled too).
	if repaired < int64(on4) {
		t.Fatalf("%d shards rebuilt, %d were on node 4", repaired, on4)
	}
	t.Logf("%d shards rebuilt, %d were on node 4", repaired, on4)
	// The retirement is durable: a restarted member still knows it.
	tc.restart(t, 2, false, policy)
	if r := tc.node(2).node.RemovedNodes(); len(r) != 1 || r[0].Number != 4 {
		t.Fatalf("after restart node 2 knows %+v", r)
	}
	for _, down := range []int{1, 2, 3} {
		tc.net.SetDown(down, true)
		reader := tc.nodes[down%3]
		for id, body := range bodies {
			if err := readBack(ctx, reader.node, id, body); err != nil {
				t.Fatalf("node %d with nodes 4 and %d down: %v", reader.num, down, err)
			}
		}
		tc.net.SetDown(down, false)
	}
}

// TestRepairRateLimit: the token bucket holds repair to its rate (an
// injected clock), and a rebuild throttled to 1 MB/s takes as long as its
// bytes say.
func TestRepairRateLimit(t *testing.T) {
	clock := lazaret.NewManualClock(time.Unix(1_800_000_000, 0))
	var slept time.Duration
	b := newTokenBucket(1_000_000, 64<<10, clock, func(_ context.Context, d time.Duration) error {
		slept += d
		clock.Advance(d)
		return nil
	})
	total := 0
	for total < 10_000_000 {
		if err := b.wait(context.Background(), 100_000); err != nil {
			t.Fatal(err)
		}
		total += 100_000
	}
	// 10 MB at 1 MB/s, less the 64 KiB burst.
	want := time.Duration(float64(total-64<<10) / 1e6 * float64(time.Second))
	if d := slept - want; d < -time.Millisecond || d > time.Millisecond {
		t.Fatalf("slept %v for %d bytes at 1 MB/s, want %v", slept, total, want)
	}
	if err := newTokenBucket(-1, 0, clock, nil).wait(context.Background(), 1<<30); err != nil {
		t.Fatalf("unlimited bucket: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const rate = 1_000_000
	slow := func(c *Config) {
		fastAE(c)
		c.Cluster.AntiEntropy.RepairRate = rate
		c.Cluster.AntiEntropy.RepairBurst = 64 << 10
	}
	tc := newTestCluster(t, 3, false, slow)
	rng := rand.New(rand.NewPCG(11, 12))
	bodies := putN(t, ctx, tc.node(1).node, rng, 6, func() int { return 300_000 })
	waitFor(t, "metadata everywhere", 20*time.Second, func() error { return sameMeta(tc.nodes) })
	tc.net.SetDown(3, true)
	tn := tc.restart(t, 3, true, slow)
	start := time.Now()
	tc.net.SetDown(3, false)
	waitFor(t, "node 3 rebuilt", 40*time.Second, func() error {
		if err := sameMeta(tc.nodes); err != nil {
			return err
		}
		if err := placedHere(tn); err != nil {
			return err
		}
		if q := tn.node.RepairQueue(); q != 0 {
			return fmt.Errorf("repair queue %d", q)
		}
		return nil
	})
	el := time.Since(start)
	_, written, _ := tn.node.Repaired()
	// Every shard written was also read (K shards' worth of body bytes
	// for each): at least twice the written bytes went through the bucket.
	minTime := time.Duration(float64(2*written-64<<10) / rate * float64(time.Second))
	t.Logf("rebuilt %d shard bytes of %d messages in %v at %d B/s (at least %v by the limit)", written, len(bodies), el.Round(time.Millisecond), rate, minTime.Round(time.Millisecond))
	if written == 0 || el < minTime {
		t.Fatalf("rebuilt %d bytes in %v: faster than the %d B/s limit allows (%v)", written, el, rate, minTime)
	}
}

// TestRepairResumes: a rebuild stopped half-way (the node closes: its
// repair context is cancelled) finishes after the node starts again, from
// what the metadata and the local shards say, not from memory.
func TestRepairResumes(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	slow := func(c *Config) {
		fastAE(c)
		c.Cluster.AntiEntropy.RepairRate = 2_000_000
		c.Cluster.AntiEntropy.RepairBurst = 64 << 10
		c.Cluster.AntiEntropy.RepairWorkers = 1
	}
	tc := newTestCluster(t, 3, false, slow)
	rng := rand.New(rand.NewPCG(13, 14))
	bodies := putN(t, ctx, tc.node(1).node, rng, 12, func() int { return 200_000 })
	waitFor(t, "metadata everywhere", 20*time.Second, func() error { return sameMeta(tc.nodes) })
	tc.net.SetDown(3, true)
	tn := tc.restart(t, 3, true, slow)
	tc.net.SetDown(3, false)
	waitFor(t, "repair under way", 30*time.Second, func() error {
		if s, _, _ := tn.node.Repaired(); s < 2 {
			return fmt.Errorf("%d shards repaired", s)
		}
		return nil
	})
	tc.net.SetDown(3, true) // stop it mid-way, as a crash would
	before, _, _ := tn.node.Repaired()
	tn = tc.restart(t, 3, false, slow)
	if err := placedHere(tn); err == nil {
		t.Fatalf("repair finished before the restart (%d shards): the test proves nothing", before)
	}
	tc.net.SetDown(3, false)
	waitFor(t, "repair resumed and finished", 40*time.Second, func() error {
		if err := placedHere(tn); err != nil {
			return err
		}
		if q := tn.node.RepairQueue(); q != 0 {
			return fmt.Errorf("repair queue %d", q)
		}
		return nil
	})
	after, _, _ := tn.node.Repaired()
	t.Logf("%d shards repaired before the restart, %d after", before, after)
	tc.net.SetDown(1, true)
	for id, body := range bodies {
		if err := readBack(ctx, tn.node, id, body); err != nil {
			t.Fatalf("node 3 with node 1 down: %v", err)
		}
	}
}

func TestFillTargets(t *testing.T) {
	members := []member.Member{{Name: "a", Number: 1}, {Name: "b", Number: 2}, {Name: "c", Number: 3}, {Name: "d", Number: 4}, {Name: "e", Number: 5}}
	id := lazaret.ID("1wShJQ-000000-01")
	ranked := rankMembers(id, members)
	pl := lazaret.Placement{K: 2, M: 1, Shards: []lazaret.ShardLoc{{Index: 0, Node: ranked[0].Number}, {Index: 1, Node: ranked[1].Number}, {Index: 2, Node: ranked[2].Number}}}
	none := func(int) bool { return false }
	if got := fillTargets(id, pl, members, none); len(got) != 0 {
		t.Fatalf("full placement: targets %v", got)
	}
	gone := ranked[1].Number
	removed := func(n int) bool { return n == gone }
	got := fillTargets(id, pl, members, removed)
	if len(got) != 1 || got[1].Number != ranked[3].Number {
		t.Fatalf("shard 1 on retired node %d: targets %v, want node %d", gone, got, ranked[3].Number)
	}
	pl.Shards = pl.Shards[:1] // two unplaced indices
	got = fillTargets(id, pl, members, none)
	if len(got) != 2 || got[1].Number != ranked[1].Number || got[2].Number != ranked[2].Number {
		t.Fatalf("unplaced shards: targets %v", got)
	}
	if !fullyPlaced(lazaret.Placement{K: 1, M: 1, Shards: []lazaret.ShardLoc{{Index: 0, Node: 1}, {Index: 1, Node: 2}}}, none) {
		t.Fatal("a full 1+1 placement is not fully placed")
	}
	if fullyPlaced(lazaret.Placement{K: 1, M: 1, Shards: []lazaret.ShardLoc{{Index: 0, Node: 1}, {Index: 1, Node: 1}}}, none) {
		t.Fatal("two shards on one node count as fully placed")
	}
	if p := idTimePrefix(time.Unix(1_780_000_000, 0)); p != "1wShJQ" {
		t.Fatalf("idTimePrefix = %q, want 1wShJQ", p)
	}
}
