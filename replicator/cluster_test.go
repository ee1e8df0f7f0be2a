package replicator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator/erasure"
)

// mailBody returns a body of about size bytes: a small header, then random
// bytes (incompressible, so every shard differs).
func mailBody(rng *rand.Rand, i, size int) []byte {
	hdr := fmt.Sprintf("From: a%d@example.org\r\nTo: b@example.com\r\nSubject: message %d\r\n\r\n", i, i)
	b := make([]byte, max(size, len(hdr)+1))
	copy(b, hdr)
	var seed [32]byte
	for j := range seed {
		seed[j] = byte(rng.Uint32())
	}
	_, _ = rand.NewChaCha8(seed).Read(b[len(hdr):])
	return b
}

// mixSize draws from the documented size mix, scaled down for a fast test:
// 60% 2-20 KB, 30% 20-200 KB, 10% 0.2-1 MB (the full mix goes to 5 MB).
func mixSize(rng *rand.Rand) int {
	switch p := rng.IntN(10); {
	case p < 6:
		return 2000 + rng.IntN(18000)
	case p < 9:
		return 20000 + rng.IntN(180000)
	default:
		return 200000 + rng.IntN(800000)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readBack reads id on node and compares it with want.
func readBack(ctx context.Context, n *Node, id lazaret.ID, want []byte) error {
	_, rc, err := n.Open(ctx, id)
	if err != nil {
		return err
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%s: read %d bytes that differ from the %d put", id, len(got), len(want))
	}
	return nil
}

// metaEverywhere waits until every listed node has metadata for ids.
func metaEverywhere(t *testing.T, nodes []*testNode, ids []lazaret.ID) {
	t.Helper()
	waitFor(t, "metadata on every node", 20*time.Second, func() error {
		for _, tn := range nodes {
			for _, id := range ids {
				if _, err := tn.store.Meta(id); err != nil {
					return fmt.Errorf("node %d: %w", tn.num, err)
				}
			}
		}
		return nil
	})
}

func TestCluster5NodesOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	tc := newTestCluster(t, 5, false, func(c *Config) { c.Cluster.Policy = "3+2" })
	rng := rand.New(rand.NewPCG(1, 2))

	const count = 200
	start := time.Now()
	bodies := map[lazaret.ID][]byte{}
	var ids []lazaret.ID
	for i := range count {
		body := mailBody(rng, i, mixSize(rng))
		n := tc.nodes[i%5].node
		m, err := n.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.com"}}, bytes.NewReader(body))
		if err != nil {
			t.Fatalf("put %d (%d bytes): %v", i, len(body), err)
		}
		want := erasure.Code{K: 3, M: 2}
		if int64(len(body)) < DefaultSmallMessageThreshold {
			want = erasure.Code{K: 1, M: 2}
		}
		if (erasure.Code{K: m.Placement.K, M: m.Placement.M}) != want || len(m.Placement.Shards) != want.Shards() || m.Placement.UnderProtected {
			t.Fatalf("put %d (%d bytes): placement %+v, want %v", i, len(body), m.Placement, want)
		}
		seen := map[int]bool{}
		for _, s := range m.Placement.Shards {
			seen[s.Node] = true
		}
		if len(seen) != want.Shards() {
			t.Fatalf("put %d: shards on %d distinct nodes, want %d", i, len(seen), want.Shards())
		}
		bodies[m.ID] = body
		ids = append(ids, m.ID)
	}
	t.Logf("%d puts: %v", count, time.Since(start))
	metaEverywhere(t, tc.nodes, ids)
	t.Logf("metadata everywhere: %v", time.Since(start))

	// Learn on a node other than the origin; the change reaches the origin.
	if _, err := tc.node(2).node.Learn(ctx, ids[0], lazaret.LearnSpam, "test"); err != nil {
		t.Fatalf("learn on node 2: %v", err)
	}
	waitFor(t, "learn pushed to node 1", 10*time.Second, func() error {
		m, err := tc.node(1).store.Meta(ids[0])
		if err != nil || m.LearnedAs != lazaret.LearnSpam {
			return fmt.Errorf("node 1 has %v, %v", m, err)
		}
		return nil
	})

	// Kill two nodes: every message reads back from each survivor.
	tc.net.SetDown(4, true)
	tc.net.SetDown(5, true)
	survivors := tc.nodes[:3]
	for _, tn := range survivors {
		for _, id := range ids {
			if err := readBack(ctx, tn.node, id, bodies[id]); err != nil {
				t.Fatalf("node %d with 4 and 5 down: %v", tn.num, err)
			}
		}
	}

	t.Logf("%d puts and reads from 3 survivors: %v", count, time.Since(start))

	// Puts during the outage: small bodies are replicated 1+2 on the 3 alive
	// nodes (fully protected); for 3+2, 3 alive < quorum 4, so larger
	// bodies are kept whole and under-protected.
	var outage []lazaret.ID
	wantUnder := 0
	for i := range 12 {
		body := mailBody(rng, 1000+i, mixSize(rng))
		tn := survivors[i%3]
		m, err := tn.node.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.com"}}, bytes.NewReader(body))
		if err != nil {
			t.Fatalf("put during outage on node %d: %v", tn.num, err)
		}
		if int64(len(body)) < DefaultSmallMessageThreshold {
			if m.Placement.UnderProtected || m.Placement.K != 1 || m.Placement.M != 2 || len(m.Placement.Shards) != 3 {
				t.Fatalf("small put during outage: placement %+v, want 3 copies", m.Placement)
			}
		} else {
			wantUnder++
			if !m.Placement.UnderProtected || m.Placement.K != 1 || m.Placement.M != 0 || len(m.Placement.Shards) != 1 || m.Placement.Shards[0].Node != tn.num {
				t.Fatalf("put during outage: placement %+v, want an under-protected whole copy on node %d", m.Placement, tn.num)
			}
		}
		bodies[m.ID] = body
		outage = append(outage, m.ID)
	}
	metaEverywhere(t, survivors, outage)
	var under int64
	for _, tn := range survivors {
		st, err := tn.node.PeerHandler().NodeStatus(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		under += st.UnderProtected
		if st.UnderProtected > 0 && st.OldestUnderProtected == nil {
			t.Errorf("node %d: under-protected without an oldest time", tn.num)
		}
	}
	if under != int64(wantUnder) || wantUnder == 0 {
		t.Errorf("survivors report %d under-protected messages, want %d (> 0)", under, wantUnder)
	}
	for _, tn := range survivors {
		for _, id := range outage {
			if err := readBack(ctx, tn.node, id, bodies[id]); err != nil {
				t.Fatalf("node %d, message put during the outage: %v", tn.num, err)
			}
		}
	}

	// Restore: everything reads back. The restored nodes missed the
	// outage's metadata pushes (anti-entropy's job), so they read what was
	// put before it.
	// Each message is read on one node, in turn, to keep the test fast.
	tc.net.SetDown(4, false)
	tc.net.SetDown(5, false)
	for i, id := range append(slices.Clone(ids), outage...) {
		tn := tc.nodes[i%5]
		if slices.Contains(outage, id) && tn.num > 3 {
			tn = tc.nodes[i%3]
		}
		if err := readBack(ctx, tn.node, id, bodies[id]); err != nil {
			t.Fatalf("node %d after restore: %v", tn.num, err)
		}
	}

	// Delete on node 3 removes the shards everywhere and leaves tombstones.
	victim := ids[7]
	if _, err := tc.node(3).node.Delete(ctx, victim, "test"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	waitFor(t, "delete everywhere", 10*time.Second, func() error {
		for _, tn := range tc.nodes {
			infos, err := tn.store.ShardInfos(victim)
			if err != nil || len(infos) != 0 {
				return fmt.Errorf("node %d still holds %d shards (%v)", tn.num, len(infos), err)
			}
			m, err := tn.store.Meta(victim)
			if err != nil || m.State != lazaret.StateDeleted {
				return fmt.Errorf("node %d: no tombstone (%v)", tn.num, err)
			}
		}
		return nil
	})
	for _, tn := range tc.nodes {
		if _, _, err := tn.node.Open(ctx, victim); !errors.Is(err, lazaret.ErrNotFound) {
			t.Errorf("node %d: open of deleted message: %v, want ErrNotFound", tn.num, err)
		}
	}
}

// TestClusterCorruptShard replaces a stored shard's bytes through objstore
// (its chunk CRCs are valid, but it is not the shard the placement names):
// reads on every node stay correct, and the corruption is counted and
// reported in Status. (A flipped byte on disk fails the chunk's CRC32C in
// objstore's reader; the stripe reader treats both alike, see
// TestErasureRoundTrip.)
func TestClusterCorruptShard(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tc := newTestCluster(t, 5, false, func(c *Config) { c.Cluster.Policy = "3+2" })
	rng := rand.New(rand.NewPCG(3, 4))
	body := mailBody(rng, 1, 700<<10) // 2 stripes of 3 × 256 KiB... and a bit
	m, err := tc.node(1).node.Put(ctx, lazaret.PutRequest{Sender: "a@example.org"}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	metaEverywhere(t, tc.nodes, []lazaret.ID{m.ID})

	// Replace data shard 0 on its node with different bytes.
	loc := m.Placement.Shards[0]
	holder := tc.node(loc.Node)
	w, err := holder.store.NewShardWriter(m.ID, objstore.ShardSpec{K: 3, M: 2, Index: 0, BodySize: m.Size})
	if err != nil {
		t.Fatal(err)
	}
	bad := make([]byte, loc.Size)
	if _, err := w.Write(bad); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Finish(); err != nil {
		t.Fatal(err)
	}
	if err := holder.store.CommitShards(ctx, w); err != nil {
		t.Fatal(err)
	}
	var before int64
	for _, tn := range tc.nodes {
		before += tn.node.CorruptShards()
	}
	for _, tn := range tc.nodes {
		if err := readBack(ctx, tn.node, m.ID, body); err != nil {
			t.Fatalf("node %d with shard 0 replaced: %v", tn.num, err)
		}
	}
	var after int64
	for _, tn := range tc.nodes {
		after += tn.node.CorruptShards()
	}
	if after <= before {
		t.Fatalf("corruption not counted: %d before, %d after", before, after)
	}
	st, err := holder.node.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lag == nil || st.Lag.CorruptShards == 0 { // the health line is the daemon's (daemon/health.go)
		t.Errorf("node %d status does not report the corrupt shard: %+v", holder.num, st)
	}
}

// TestClusterStrictAndMirror: a 2-node cluster mirrors (1+1); with one node
// down a put keeps the body whole and under-protected, or is refused in
// strict mode with a temporary error.
func TestClusterStrictAndMirror(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for _, strict := range []bool{false, true} {
		t.Run(fmt.Sprintf("strict=%v", strict), func(t *testing.T) {
			tc := newTestCluster(t, 2, false, func(c *Config) { c.Cluster.Strict = strict })
			body := mailBody(rand.New(rand.NewPCG(5, 6)), 1, 100<<10)
			m, err := tc.node(1).node.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if m.Placement.K != 1 || m.Placement.M != 1 || len(m.Placement.Shards) != 2 {
				t.Fatalf("2 nodes: placement %+v, want a 1+1 mirror", m.Placement)
			}
			tc.net.SetDown(2, true)
			m2, err := tc.node(1).node.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(body))
			if strict {
				if !errors.Is(err, lazaret.ErrUnavailable) {
					t.Fatalf("strict put with a node down: %v, want ErrUnavailable", err)
				}
				return
			}
			if err != nil || !m2.Placement.UnderProtected {
				t.Fatalf("put with a node down: %+v, %v; want under-protected", m2, err)
			}
			if c, _, _ := tc.node(1).node.UnderProtected(); c != 1 {
				t.Errorf("under-protected count %d, want 1", c)
			}
			for _, id := range []lazaret.ID{m.ID, m2.ID} {
				if err := readBack(ctx, tc.node(1).node, id, body); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestClusterSingleMember: a cluster of one stores whole copies (1+0), not
// under-protected.
func TestClusterSingleMember(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	tc := newTestCluster(t, 1, false, nil)
	body := mailBody(rand.New(rand.NewPCG(7, 8)), 1, 300<<10)
	m, err := tc.node(1).node.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.Placement.K != 1 || m.Placement.M != 0 || m.Placement.UnderProtected {
		t.Fatalf("placement %+v, want a whole copy", m.Placement)
	}
	if err := readBack(ctx, tc.node(1).node, m.ID, body); err != nil {
		t.Fatal(err)
	}
	// A retried put of the same id and body returns the stored message.
	again, err := tc.node(1).node.Put(ctx, lazaret.PutRequest{ID: m.ID}, bytes.NewReader(body))
	if err != nil || again.Version != m.Version {
		t.Fatalf("retried put: %+v, %v", again, err)
	}
	if _, err := tc.node(1).node.Put(ctx, lazaret.PutRequest{ID: m.ID}, bytes.NewReader(body[1:])); !errors.Is(err, lazaret.ErrConflict) {
		t.Fatalf("put of another body under a stored id: %v, want ErrConflict", err)
	}
}
