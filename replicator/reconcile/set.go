package reconcile

import (
	"cmp"
	"slices"
	"sort"
)

// Set is what a [Session] needs of one replica: its items in ascending key
// order (bytewise, as Go compares strings), addressed by position.
//
// A Set may change between the steps of a session; the session then
// reports the differences as it saw them at each step, and the next session
// finds whatever changed meanwhile.
type Set interface {
	// Len returns the number of items.
	Len() int
	// Seek returns the position of the first item whose key is >= key,
	// or Len() if there is none.
	Seek(key string) int
	// Fingerprint returns the fingerprint of the items at positions
	// [lo, hi), as [Sum.Fingerprint] defines it.
	Fingerprint(lo, hi int) Fingerprint
	// Items appends the items at positions [lo, hi) to dst and returns it.
	Items(lo, hi int, dst []Item) []Item
}

// Bucket sizes of a MemSet: a bucket splits in two when it grows past
// maxBucket items.
const (
	maxBucket = 512
	minBucket = maxBucket / 2
)

// MemSet is an in-memory [Set] for millions of items. Items live in sorted
// buckets of at most 512; each bucket keeps the [Sum] of its hashes and the
// set keeps prefix counts and sums over the buckets, rebuilt lazily from the
// first bucket that changed. Put and Delete cost O(log n + 512) plus, before
// the next query, O(buckets after the change) — next to nothing for new
// keys, which sort last. Seek and Fingerprint cost O(log n + 512).
//
// A MemSet is not safe for concurrent use; its owner serialises access.
type MemSet struct {
	buckets []*bucket
	n       int
	// valid is the number of buckets whose prefix entries are current.
	valid  int
	preN   []int // items before bucket i
	preSum []Sum // sum of the hashes before bucket i
}

type bucket struct {
	items []Item
	sum   Sum
}

var _ Set = (*MemSet)(nil)

// NewMemSet returns a MemSet holding items. Items need not be sorted; of
// two items with the same key the later one wins. NewMemSet keeps no
// reference to items.
func NewMemSet(items []Item) *MemSet {
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b Item) int { return cmp.Compare(a.Key, b.Key) })
	// Keep the last of equal keys.
	out := sorted[:0]
	for i, it := range sorted {
		if i+1 < len(sorted) && sorted[i+1].Key == it.Key {
			continue
		}
		out = append(out, it)
	}
	s := &MemSet{}
	for len(out) > 0 {
		k := min(len(out), (minBucket+maxBucket)/2)
		b := &bucket{items: slices.Clone(out[:k])}
		for _, it := range b.items {
			b.sum = b.sum.AddHash(it.Hash)
		}
		s.buckets = append(s.buckets, b)
		s.n += k
		out = out[k:]
	}
	return s
}

// Len returns the number of items.
func (s *MemSet) Len() int { return s.n }

// find returns the bucket a key belongs in (the first whose last key is >=
// key, else the last bucket) and the key's position in it.
func (s *MemSet) find(key string) (b, i int, found bool) {
	if len(s.buckets) == 0 {
		return 0, 0, false
	}
	b = sort.Search(len(s.buckets), func(j int) bool {
		its := s.buckets[j].items
		return its[len(its)-1].Key >= key
	})
	if b == len(s.buckets) {
		b--
	}
	i, found = slices.BinarySearchFunc(s.buckets[b].items, key, func(it Item, k string) int { return cmp.Compare(it.Key, k) })
	return b, i, found
}

// Get returns the item with key key.
func (s *MemSet) Get(key string) (Item, bool) {
	b, i, found := s.find(key)
	if !found {
		return Item{}, false
	}
	return s.buckets[b].items[i], true
}

// Put inserts it, or replaces the item with the same key.
func (s *MemSet) Put(it Item) {
	if len(s.buckets) == 0 {
		s.buckets = append(s.buckets, &bucket{items: []Item{it}, sum: hashSum(it.Hash)})
		s.n, s.valid = 1, 0
		return
	}
	b, i, found := s.find(it.Key)
	bk := s.buckets[b]
	if found {
		bk.sum = bk.sum.Sub(hashSum(bk.items[i].Hash)).AddHash(it.Hash)
		bk.items[i] = it
	} else {
		bk.items = slices.Insert(bk.items, i, it)
		bk.sum = bk.sum.AddHash(it.Hash)
		s.n++
	}
	s.valid = min(s.valid, b+1)
	if len(bk.items) > maxBucket {
		half := len(bk.items) / 2
		nb := &bucket{items: slices.Clone(bk.items[half:])}
		for _, x := range nb.items {
			nb.sum = nb.sum.AddHash(x.Hash)
		}
		clear(bk.items[half:])
		bk.items = bk.items[:half:half]
		bk.sum = bk.sum.Sub(nb.sum)
		s.buckets = slices.Insert(s.buckets, b+1, nb)
	}
}

// Delete removes the item with key key and reports whether there was one.
func (s *MemSet) Delete(key string) bool {
	b, i, found := s.find(key)
	if !found {
		return false
	}
	bk := s.buckets[b]
	bk.sum = bk.sum.Sub(hashSum(bk.items[i].Hash))
	bk.items = slices.Delete(bk.items, i, i+1)
	s.n--
	if len(bk.items) == 0 {
		s.buckets = slices.Delete(s.buckets, b, b+1)
		s.valid = min(s.valid, b)
	} else {
		s.valid = min(s.valid, b+1)
	}
	return true
}

// index brings the prefix arrays up to date.
func (s *MemSet) index() {
	nb := len(s.buckets)
	if s.valid >= nb && len(s.preN) == nb {
		return
	}
	if len(s.preN) < nb {
		s.preN = slices.Grow(s.preN, nb-len(s.preN))
		s.preSum = slices.Grow(s.preSum, nb-len(s.preSum))
	}
	s.preN, s.preSum = s.preN[:nb], s.preSum[:nb]
	start := min(s.valid, nb)
	for i := start; i < nb; i++ {
		if i == 0 {
			s.preN[0], s.preSum[0] = 0, Sum{}
			continue
		}
		p := s.buckets[i-1]
		s.preN[i] = s.preN[i-1] + len(p.items)
		s.preSum[i] = s.preSum[i-1].Add(p.sum)
	}
	s.valid = nb
}

// locate returns the bucket holding position pos (0 <= pos < n) and the
// offset in it. The prefix arrays must be current.
func (s *MemSet) locate(pos int) (b, off int) {
	b = sort.Search(len(s.preN), func(j int) bool { return s.preN[j] > pos }) - 1
	return b, pos - s.preN[b]
}

// Seek returns the position of the first item whose key is >= key.
func (s *MemSet) Seek(key string) int {
	b, i, _ := s.find(key)
	if len(s.buckets) == 0 {
		return 0
	}
	s.index()
	return s.preN[b] + i
}

// prefix returns the sum of the hashes of the items before position pos.
func (s *MemSet) prefix(pos int) Sum {
	if pos <= 0 || len(s.buckets) == 0 {
		return Sum{}
	}
	s.index()
	if pos >= s.n {
		last := len(s.buckets) - 1
		return s.preSum[last].Add(s.buckets[last].sum)
	}
	b, off := s.locate(pos)
	bk := s.buckets[b]
	sum := s.preSum[b]
	if off <= len(bk.items)/2 {
		for _, it := range bk.items[:off] {
			sum = sum.AddHash(it.Hash)
		}
		return sum
	}
	sum = sum.Add(bk.sum)
	for _, it := range bk.items[off:] {
		sum = sum.Sub(hashSum(it.Hash))
	}
	return sum
}

// Fingerprint returns the fingerprint of the items at positions [lo, hi).
func (s *MemSet) Fingerprint(lo, hi int) Fingerprint {
	lo, hi = max(lo, 0), min(hi, s.n)
	if hi <= lo {
		return Sum{}.Fingerprint(0)
	}
	return s.prefix(hi).Sub(s.prefix(lo)).Fingerprint(hi - lo)
}

// Items appends the items at positions [lo, hi) to dst.
func (s *MemSet) Items(lo, hi int, dst []Item) []Item {
	lo, hi = max(lo, 0), min(hi, s.n)
	if hi <= lo {
		return dst
	}
	s.index()
	b, off := s.locate(lo)
	for n := hi - lo; n > 0; b, off = b+1, 0 {
		its := s.buckets[b].items[off:]
		k := min(n, len(its))
		dst = append(dst, its[:k]...)
		n -= k
	}
	return dst
}

// All returns every item in key order.
func (s *MemSet) All() []Item { return s.Items(0, s.n, make([]Item, 0, s.n)) }
