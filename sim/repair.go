package sim

import (
	"slices"
	"strconv"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator/erasure"
)

// Repair is what rebuilding a dead node's shards costs.
type Repair struct {
	Affected   float64 // messages that had a shard on the dead node
	Traffic    float64 // bytes over the network: K shards read per lost shard
	MaxNodeIn  float64 // bytes the busiest rebuilding node receives
	MaxNodeOut float64 // bytes the busiest source node sends
}

// repairSample places sample ids on nodes with the real rendezvous placement,
// kills node 1, and for each message that had a shard there picks the new
// holder as repair does (the next-ranked live node outside the placement)
// and K sources among the surviving holders. Counts scale by m/sample.
func repairSample(nodes, m, sample int, msgBytes float64) Repair {
	code := erasure.DefaultCode(nodes)
	all := make([]int, nodes)
	for i := range all {
		all[i] = i + 1
	}
	name := strconv.Itoa
	in := make([]float64, nodes+1)
	out := make([]float64, nodes+1)
	var rep Repair
	n := min(m, sample)
	shard := msgBytes / float64(code.K)
	for _, id := range ids(n, 30*86400, nodes) {
		holders := erasure.Place(lazaret.ID(id), all, code.Shards(), name, func(int) bool { return true })
		if !slices.Contains(holders, 1) {
			continue
		}
		rep.Affected++
		var target int
		for _, c := range erasure.Rank(lazaret.ID(id), all, name) {
			if c != 1 && !slices.Contains(holders, c) {
				target = c
				break
			}
		}
		// target 0: every node already holds a shard (N = K+M); the
		// shard is rebuilt onto a replacement node.
		src := 0
		for _, h := range holders {
			if h != 1 && src < code.K {
				out[h] += shard
				src++
			}
		}
		in[target] += float64(code.K) * shard
		rep.Traffic += float64(code.K) * shard
	}
	scale := float64(m) / float64(n)
	rep.Affected *= scale
	rep.Traffic *= scale
	rep.MaxNodeIn = slices.Max(in) * scale
	rep.MaxNodeOut = slices.Max(out) * scale
	return rep
}
