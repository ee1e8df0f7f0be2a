package erasure

import (
	"cmp"
	"slices"

	"github.com/lazaret/lazaret"
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

// Rank returns items ordered by decreasing weight of name(item) for id
// (ties, which need a 64-bit collision, by name). It does not filter.
func Rank[T any](id lazaret.ID, items []T, name func(T) string) []T {
	type ranked struct {
		w    uint64
		name string
		item T
	}
	r := make([]ranked, len(items))
	for i, it := range items {
		n := name(it)
		r[i] = ranked{rendezvousWeight(id, n), n, it}
	}
	slices.SortFunc(r, func(a, b ranked) int {
		if c := cmp.Compare(b.w, a.w); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]T, len(r))
	for i, x := range r {
		out[i] = x.item
	}
	return out
}

// Place returns the holders of the shards of message id: the n alive items
// with the highest weights, shard i on the i-th. Fewer are returned when
// fewer than n are alive. Items with the same name count once.
func Place[T any](id lazaret.ID, items []T, n int, name func(T) string, alive func(T) bool) []T {
	live := make([]T, 0, len(items))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if nm := name(it); alive(it) && !seen[nm] {
			seen[nm] = true
			live = append(live, it)
		}
	}
	ranked := Rank(id, live, name)
	return ranked[:min(n, len(ranked))]
}
