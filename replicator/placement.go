package replicator

import (
	"cmp"
	"slices"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator/member"
)

// Placement by rendezvous (highest-random-weight) hashing: every member gets
// a pseudo-random weight for a message, weight(id, member name), and the
// message's shards go to the members with the highest weights, shard i to
// the i-th. The weights of a message on two members do not depend on any
// other member, so adding or losing a member moves only the shards that
// member held or would now hold; everything else stays put. The hash is a
// fixed function (FNV-1a, then a 64-bit finaliser), identical on every node
// and in every version, since placement must be recomputable anywhere.

// rendezvousWeight returns the weight of member name for message id.
func rendezvousWeight(id lazaret.ID, name string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint64(id[i])) * prime
	}
	h = (h ^ 0xff) * prime // separator: ids never contain 0xff
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * prime
	}
	// splitmix64 finaliser: FNV's low bits mix poorly on their own.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}

// rankMembers returns the members ordered by decreasing weight for id (ties,
// which need a 64-bit collision, by name). It does not filter by state.
func rankMembers(id lazaret.ID, members []member.Member) []member.Member {
	type ranked struct {
		w uint64
		m member.Member
	}
	r := make([]ranked, len(members))
	for i, m := range members {
		r[i] = ranked{rendezvousWeight(id, m.Name), m}
	}
	slices.SortFunc(r, func(a, b ranked) int {
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		return cmp.Compare(a.m.Name, b.m.Name)
	})
	out := make([]member.Member, len(r))
	for i, x := range r {
		out[i] = x.m
	}
	return out
}

// placeShards returns the nodes for the shards of message id: the n alive
// members with the highest weights, shard i on the i-th. Fewer are returned
// when fewer than n are alive. Duplicate names count once.
func placeShards(id lazaret.ID, members []member.Member, n int) []member.Member {
	alive := make([]member.Member, 0, len(members))
	seen := make(map[string]bool, len(members))
	for _, m := range members {
		if m.State == member.Alive && !seen[m.Name] {
			seen[m.Name] = true
			alive = append(alive, m)
		}
	}
	ranked := rankMembers(id, alive)
	return ranked[:min(n, len(ranked))]
}
