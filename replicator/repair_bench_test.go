package replicator

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"time"
)

// TestRepairThroughputTable measures how fast repair rebuilds a wiped node
// (3 in-process nodes, fsync'd stores, shards over gRPC on bufconn, no rate
// limit), beside a raw copy of the same number of bytes over a loopback TCP
// connection in the same run. It prints the README table; run with
//
//	LAZARET_REPAIR_TABLE=1 go test -count=1 -run=TestRepairThroughputTable -v ./replicator
func TestRepairThroughputTable(t *testing.T) {
	if os.Getenv("LAZARET_REPAIR_TABLE") == "" {
		t.Skip("set LAZARET_REPAIR_TABLE=1 to measure repair throughput")
	}
	ctx := t.Context()
	fast := func(c *Config) {
		fastAE(c)
		c.Cluster.AntiEntropy.RepairWorkers = 4
	}
	for _, size := range []int{16 << 10, 256 << 10, 1 << 20} {
		tc := newTestCluster(t, 3, true, fast)
		rng := rand.New(rand.NewPCG(uint64(size), 1))
		count := min(2000, (48<<20)/size)
		putN(t, ctx, tc.node(1).node, rng, count, func() int { return size })
		waitFor(t, "metadata everywhere", 60*time.Second, func() error { return sameMeta(tc.nodes) })
		tc.net.SetDown(3, true)
		tn := tc.restart(t, 3, true, fast)
		start := time.Now()
		tc.net.SetDown(3, false)
		waitFor(t, "node 3 rebuilt", 5*time.Minute, func() error {
			if err := sameMeta(tc.nodes); err != nil {
				return err
			}
			if q := tn.node.RepairQueue(); q != 0 {
				return fmt.Errorf("repair queue %d", q)
			}
			return placedHere(tn)
		})
		el := time.Since(start)
		shards, written, _ := tn.node.Repaired()
		base := tcpCopy(t, written)
		t.Logf("| %d KiB | %d | %d | %.1f MB | %.2f s | %.1f MB/s | %.0f MB/s |", size>>10, count, shards,
			float64(written)/1e6, el.Seconds(), float64(written)/1e6/el.Seconds(), float64(written)/1e6/base.Seconds())
		tc.close()
	}
}

// tcpCopy copies n bytes over a loopback TCP connection and returns the time.
func tcpCopy(t *testing.T, n int64) time.Duration {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(io.Discard, c)
		done <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 256<<10)
	start := time.Now()
	for left := n; left > 0; left -= int64(len(buf)) {
		if _, err := c.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}
