package test

// Fault tests with network namespaces (issue #4 §5): a partition, a wiped
// node, and a node killed in the middle of its repair. Each runs a 5-node
// cluster (policy 3+2) in its own namespaces on a bridge (see
// netns_harness_test.go) and skips only where namespaces are not permitted.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// netnsSize draws a body size: mostly small mail (replicated whole below
// 32 KiB), some erasure-coded, and large% of 0.3-1.5 MB, which take a
// while to repair.
func netnsSize(r *rand.Rand, large int) int {
	switch p := r.IntN(100); {
	case p < large:
		return 300000 + r.IntN(1200000)
	case p < large+25:
		return 40000 + r.IntN(160000)
	default:
		return 2000 + r.IntN(18000)
	}
}

// netnsPolicyM is the parity count of the tests' 3+2 policy.
const netnsPolicyM = 2

// TestNetnsPartition cuts one node's link for 60 s while clients write on
// both sides, restores it, and checks that the cluster converges by itself:
// identical metadata on every node, every message fully protected (3+2 on
// distinct nodes, no node reporting under-protected messages), and every
// acknowledged message readable byte-identical from every node.
func TestNetnsPartition(t *testing.T) {
	testStart := time.Now()
	c := newNetCluster(t, 5)
	c.bootstrap("3+2")
	acks := &ackLog{}

	// Before the cut: messages taken in by every node.
	pre := make([]*netMsg, 0, 30)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := range 30 {
		nd := c.node(i%5 + 1)
		cl := nd.client()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		m, err := acks.put(ctx, cl, nd, netnsSize(r, 10))
		cancel()
		cl.Close()
		if err != nil {
			t.Fatalf("put on node %d before the cut: %v\n%s", nd.k, err, c.dump())
		}
		pre = append(pre, m)
	}

	const iso = 3
	writers := []int{iso, 1, 4} // the isolated side and the majority side
	const cutFor = 60 * time.Second
	c.cut(iso)
	cutAt := time.Now()
	t.Logf("cut node %d's link at +%v", iso, cutAt.Sub(testStart).Round(time.Second))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	fails := map[int]*atomic.Int64{}
	lastErr := map[int]*atomic.Value{}
	for _, k := range writers {
		fails[k], lastErr[k] = &atomic.Int64{}, &atomic.Value{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			nd := c.node(k)
			cl, err := rpcDial(nd)
			if err != nil {
				lastErr[k].Store(err.Error())
				return
			}
			defer cl.Close()
			r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(k)))
			for range 100000 {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				_, err := acks.put(ctx, cl, nd, netnsSize(r, 3))
				cancel()
				if err != nil {
					fails[k].Add(1)
					lastErr[k].Store(err.Error())
					time.Sleep(500 * time.Millisecond)
				} else {
					time.Sleep(400 * time.Millisecond)
				}
			}
		}()
	}
	stopWriters := func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}
	t.Cleanup(stopWriters)

	// Half-way through, delete messages on both sides of the cut.
	time.Sleep(time.Until(cutAt.Add(cutFor / 2)))
	for i, k := range []int{iso, iso, iso, 1, 1, 1} {
		m := pre[i]
		cl := c.node(k).client()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := cl.Delete(ctx, m.id, "netns-test")
		cancel()
		cl.Close()
		if err != nil {
			t.Errorf("delete %s (put on node %d) on node %d during the partition: %v", m.id, m.node, k, err)
			continue
		}
		m.deleted = true
	}

	// Shortly before the end: the isolated node shows what it holds alone.
	time.Sleep(time.Until(cutAt.Add(cutFor - 5*time.Second)))
	if st := c.node(iso).status(10 * time.Second); st == nil {
		t.Errorf("the isolated node answers no status")
	} else if m := member(st, c.node(iso).number); m == nil || m.UnderProtected == 0 {
		t.Errorf("the isolated node's status shows no under-protected messages of its own: %+v", m)
	} else {
		t.Logf("isolated node's status: %d under-protected messages (%d bytes), oldest %v", m.UnderProtected, m.UnderProtectedBytes, m.OldestUnderProtected)
	}
	if st := c.node(1).status(10 * time.Second); st != nil {
		if m := member(st, c.node(iso).number); m != nil && m.State == "alive" {
			t.Errorf("node 1 still sees the isolated node alive after %v", time.Since(cutAt).Round(time.Second))
		}
	}

	time.Sleep(time.Until(cutAt.Add(cutFor)))
	stopWriters()
	c.restore(iso)
	restoredAt := time.Now()
	t.Logf("restored node %d's link after %v", iso, restoredAt.Sub(cutAt).Round(time.Second))

	// Both sides kept taking mail, also once the cut was detected.
	acked := acks.all()
	late := cutAt.Add(cutFor / 2)
	for _, k := range writers {
		var during, after int
		for _, m := range acked {
			if m.node == k && m.at.After(cutAt) {
				during++
				if m.at.After(late) {
					after++
				}
			}
		}
		e, _ := lastErr[k].Load().(string)
		t.Logf("writer on node %d: %d puts acknowledged during the cut (%d in its second half), %d failed (last error: %s)", k, during, after, fails[k].Load(), netClip(e, 300))
		if after == 0 {
			t.Errorf("node %d acknowledged no put in the second half of the partition (%d failed; last error: %s)", k, fails[k].Load(), e)
		}
	}
	if t.Failed() {
		t.Logf("state at restore:\n%s", c.dump())
	}

	deleted := 0
	for _, m := range acked {
		if m.deleted {
			deleted++
		}
	}
	took, _ := c.waitConverged(acked, netnsPolicyM, nil, 150*time.Second)
	t.Logf("CONVERGED %v after the link was restored (%d acknowledged messages, %d deleted during the partition)", took.Round(100*time.Millisecond), len(acked), deleted)

	readStart := time.Now()
	if err := c.readAll(acked, []int{1, 2, 3, 4, 5}); err != nil {
		t.Fatalf("after convergence: %v\n%s", err, c.dump())
	}
	t.Logf("every acknowledged message read back byte-identical from all 5 nodes in %v", time.Since(readStart).Round(time.Millisecond))

	// What an operator sees: `lazaret status --json` on every node.
	for _, nd := range c.nodes {
		st, err := clusterStatus(t, nd.socket())
		if err != nil {
			t.Fatalf("node %d: %v", nd.k, err)
		}
		for _, m := range st.Members {
			if m.State != "alive" || m.UnderProtected != 0 {
				t.Errorf("lazaret status on node %d: member %d %s with %d under-protected", nd.k, m.Node, m.State, m.UnderProtected)
			}
		}
	}
	t.Logf("partition test took %v", time.Since(testStart).Round(time.Second))
}

// TestNetnsWipeRebuild stops a node, wipes its data directory and starts it
// again with the same identity: it gets its metadata and shards back, and
// reads succeed while two other nodes are stopped (so its shards are
// needed). Then another node is wiped the same way and killed with SIGKILL
// while its repair is under way: restarted, the repair resumes and
// completes.
func TestNetnsWipeRebuild(t *testing.T) {
	testStart := time.Now()
	c := newNetCluster(t, 5)
	c.bootstrap("3+2")
	acks := &ackLog{}

	const total = 120
	loadStart := time.Now()
	err := parallel(total, 4, func(i int) error {
		nd := c.node(i%5 + 1)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		cl, err := rpcDial(nd)
		if err != nil {
			return err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err = acks.put(ctx, cl, nd, netnsSize(r, 10))
		return err
	})
	if err != nil {
		t.Fatalf("loading: %v\n%s", err, c.dump())
	}
	var bytesPut int64
	for _, m := range acks.all() {
		bytesPut += int64(m.size)
	}
	t.Logf("put %d messages (%.1f MB) in %v", total, float64(bytesPut)/1e6, time.Since(loadStart).Round(time.Millisecond))
	_, ref := c.waitConverged(acks.all(), netnsPolicyM, nil, 60*time.Second)

	// phase runs f as a subtest with the cluster reporting to it.
	phase := func(name string, f func(t *testing.T)) bool {
		return t.Run(name, func(st *testing.T) {
			prev := c.t
			c.t = st
			defer func() { c.t = prev }()
			f(st)
		})
	}

	ok := phase("wipe", func(t *testing.T) {
		const victim = 2
		nd := c.node(victim)
		want := assignedShards(ref, nd.number)
		before := member(nd.status(10*time.Second), nd.number)
		t.Logf("node %d before the wipe: %d messages, %d shards (%d bytes); the placement assigns it %d shards", victim, before.Messages, before.Shards, before.ShardBytes, want)
		nd.stop()
		nd.wipe()
		nd.start()
		restarted := time.Now()

		// Mail flow goes on at the wiped node at once.
		cl := nd.client()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := acks.put(ctx, cl, nd, 5000)
		cancel()
		cl.Close()
		if err != nil {
			t.Fatalf("put on the wiped node right after its restart: %v", err)
		}

		took := waitRebuilt(t, c, acks, nd, restarted, 120*time.Second)
		t.Logf("REBUILT node %d in %v after its restart", victim, took.Round(100*time.Millisecond))

		// Its shards are needed: stop two others and read everything.
		c.node(4).stop()
		c.node(5).stop()
		c.waitAllAlive([]int{4, 5}, 30*time.Second)
		if err := c.readAll(acks.all(), []int{victim, 1}); err != nil {
			t.Fatalf("with nodes 4 and 5 stopped: %v\n%s", err, c.dump())
		}
		t.Logf("every message read back from nodes %d and 1 with nodes 4 and 5 stopped", victim)
		c.node(4).start()
		c.node(5).start()
		c.waitAllAlive(nil, 60*time.Second)
	})
	if !ok {
		t.Logf("skipping the kill-during-repair phase: the wipe phase failed")
		return
	}

	phase("kill -9 during repair", func(t *testing.T) {
		const victim = 3
		nd := c.node(victim)
		_, ref := c.waitConverged(acks.all(), netnsPolicyM, nil, 60*time.Second)
		want := assignedShards(ref, nd.number)
		nd.stop()
		nd.wipe()
		nd.start()
		restarted := time.Now()

		// Kill it once its shard count starts rising, before it is done.
		var seen []int64
		deadline := time.Now().Add(90 * time.Second)
		for {
			var shards int64 = -1
			if st := nd.status(2 * time.Second); st != nil {
				if m := member(st, nd.number); m != nil {
					shards = m.Shards
				}
			}
			if len(seen) == 0 || seen[len(seen)-1] != shards {
				seen = append(seen, shards)
			}
			if shards > 0 && shards < want {
				nd.kill()
				t.Logf("killed node %d (SIGKILL) %v after its restart, holding %d of its %d shards", victim, time.Since(restarted).Round(time.Millisecond), shards, want)
				break
			}
			if shards >= want {
				t.Fatalf("node %d's repair of %d shards finished before it could be interrupted (shard counts seen: %v)", victim, want, seen)
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d's shard count did not start rising within 90s of its restart (seen: %v)\n%s", victim, seen, c.dump())
			}
			time.Sleep(20 * time.Millisecond)
		}
		nd.start()
		restarted = time.Now()
		took := waitRebuilt(t, c, acks, nd, restarted, 120*time.Second)
		t.Logf("REBUILT node %d in %v after its restart following the kill", victim, took.Round(100*time.Millisecond))

		c.node(1).stop()
		c.node(2).stop()
		c.waitAllAlive([]int{1, 2}, 30*time.Second)
		if err := c.readAll(acks.all(), []int{victim, 4}); err != nil {
			t.Fatalf("with nodes 1 and 2 stopped: %v\n%s", err, c.dump())
		}
		t.Logf("every message read back from nodes %d and 4 with nodes 1 and 2 stopped", victim)
	})
	t.Logf("wipe test took %v", time.Since(testStart).Round(time.Second))
}

// waitRebuilt waits until the cluster has converged and nd holds every
// shard the placement assigns to it (and at least one), logging its
// progress; it returns the time since since.
func waitRebuilt(t *testing.T, c *netCluster, acks *ackLog, nd *netNode, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		why, ref := c.checkConverged(ctx, acks.all(), netnsPolicyM, nil)
		cancel()
		if why == "" {
			want := assignedShards(ref, nd.number)
			m := member(nd.status(5*time.Second), nd.number)
			switch {
			case m == nil:
				why = fmt.Sprintf("node %d does not list itself", nd.k)
			case want == 0:
				why = fmt.Sprintf("the placement assigns node %d no shard", nd.k)
			case m.Shards != want:
				why = fmt.Sprintf("node %d holds %d shards, the placement assigns it %d", nd.k, m.Shards, want)
			case m.Messages != int64(countLive(ref)):
				why = fmt.Sprintf("node %d reports %d messages, the cluster holds %d", nd.k, m.Messages, countLive(ref))
			default:
				return time.Since(since)
			}
		}
		if why != last {
			t.Logf("+%v not rebuilt: %s", time.Since(since).Round(time.Second), netClip(why, 400))
			last = why
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d not rebuilt within %v: %s\n%s", nd.k, timeout, why, c.dump())
		}
		time.Sleep(time.Second)
	}
}

// countLive counts the records that are not deleted.
func countLive(ref map[lazaret.ID]*lazaret.Metadata) int {
	n := 0
	for _, m := range ref {
		if m.State != lazaret.StateDeleted {
			n++
		}
	}
	return n
}
