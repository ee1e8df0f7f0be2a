package replicator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// BenchmarkSmallMessage measures what a put costs when the body is
// erasure-coded 3+2 (5 shards of size/3) versus replicated whole 1+2 (3
// copies), for sizes 1 KiB..1 MiB: 5 in-process nodes, fsync'd stores,
// shards over gRPC (bufconn). It picks DefaultSmallMessageThreshold.
//
//	go test -run '^$' -bench BenchmarkSmallMessage -benchtime 200x ./replicator/
func BenchmarkSmallMessage(b *testing.B) {
	for _, size := range []int{1 << 10, 4 << 10, 16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 1 << 20} {
		for _, mode := range []string{"ec3+2", "copy1+2"} {
			b.Run(fmt.Sprintf("size=%dKiB/%s", size>>10, mode), func(b *testing.B) {
				tc := newTestCluster(b, 5, true, func(c *Config) {
					c.Cluster.Policy = "3+2"
					if mode == "ec3+2" {
						c.Cluster.SmallMessageThreshold = -1
					} else {
						c.Cluster.SmallMessageThreshold = 64 << 20
					}
				})
				body := mailBody(rand.New(rand.NewPCG(1, 1)), 0, size)
				ctx := context.Background()
				var next atomic.Int64
				b.SetBytes(int64(size))
				b.SetParallelism(4)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						n := tc.nodes[next.Add(1)%5].node
						if _, err := n.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(body)); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkClusterPut and BenchmarkClusterGet measure puts and gets of the
// size mix on 5 in-process nodes with policy 3+2 and fsync'd stores.
//
//	go test -run '^$' -bench 'BenchmarkCluster(Put|Get)' -benchtime 200x ./replicator/
func BenchmarkClusterPut(b *testing.B) {
	tc := newTestCluster(b, 5, true, func(c *Config) { c.Cluster.Policy = "3+2" })
	rng := rand.New(rand.NewPCG(9, 9))
	bodies := make([][]byte, 64)
	var total int64
	for i := range bodies {
		bodies[i] = mailBody(rng, i, benchMixSize(rng))
		total += int64(len(bodies[i]))
	}
	ctx := context.Background()
	var next atomic.Int64
	b.SetBytes(total / int64(len(bodies)))
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if _, err := tc.nodes[i%5].node.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(bodies[i%int64(len(bodies))])); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkClusterGet(b *testing.B) {
	for _, down := range []int{0, 2} {
		b.Run(fmt.Sprintf("down=%d", down), func(b *testing.B) {
			tc := newTestCluster(b, 5, true, func(c *Config) { c.Cluster.Policy = "3+2" })
			rng := rand.New(rand.NewPCG(9, 9))
			ctx := context.Background()
			var ids []lazaret.ID
			var total int64
			for i := range 64 {
				body := mailBody(rng, i, benchMixSize(rng))
				m, err := tc.nodes[i%5].node.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, m.ID)
				total += int64(len(body))
			}
			for _, tn := range tc.nodes { // metadata is pushed asynchronously
				for _, id := range ids {
					for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
						if _, err := tn.store.Meta(id); err == nil {
							break
						} else if time.Now().After(deadline) {
							b.Fatal(err)
						}
					}
				}
			}
			for i := range down {
				tc.net.SetDown(5-i, true)
			}
			var next atomic.Int64
			b.SetBytes(total / int64(len(ids)))
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					n := tc.nodes[i%int64(5-down)].node
					_, rc, err := n.Open(ctx, ids[i%int64(len(ids))])
					if err == nil {
						_, err = io.Copy(io.Discard, rc)
						rc.Close()
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchMixSize draws from the documented size mix: 60% 2-20 KB, 30%
// 20-200 KB, 10% 0.2-5 MB.
func benchMixSize(rng *rand.Rand) int {
	switch p := rng.IntN(10); {
	case p < 6:
		return 2000 + rng.IntN(18000)
	case p < 9:
		return 20000 + rng.IntN(180000)
	default:
		return 200000 + rng.IntN(4800000)
	}
}
