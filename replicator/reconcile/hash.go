package reconcile

import (
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
)

// Hash is a 128-bit hash of one item: its key together with a digest of its
// content (see [HashItem]). Two items with the same key and different
// content have different hashes (with probability 1 - 2^-128).
type Hash [16]byte

// Item is one element of a reconciled set: a key, unique within the set,
// and the hash of the key and the item's current content.
type Item struct {
	Key  string
	Hash Hash
}

// short returns the 64-bit hash prefix that id lists carry.
func (h Hash) short() uint64 { return binary.LittleEndian.Uint64(h[:8]) }

// HashItem returns the Hash of the item with key key and content digest
// content: the first 16 bytes of SHA-256(uvarint(len(key)) || key ||
// content). content should itself be a collision-resistant digest of
// everything that can differ between two replicas of the item.
func HashItem(key string, content []byte) Hash {
	h := sha256.New()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(key)))])
	h.Write([]byte(key))
	h.Write(content)
	var sum [sha256.Size]byte
	var out Hash
	copy(out[:], h.Sum(sum[:0]))
	return out
}

// FingerprintSize is the size in bytes of a range fingerprint on the wire.
const FingerprintSize = 16

// Fingerprint summarises the items of a range: see [Sum.Fingerprint].
type Fingerprint [FingerprintSize]byte

// Sum is the additive accumulator behind fingerprints: the sum modulo 2^128
// of item hashes, each read as a little-endian 128-bit integer. Because
// addition is a commutative group, the sum of a range is the difference of
// two prefix sums, and an item's update is a subtraction and an addition.
type Sum struct{ lo, hi uint64 }

func hashSum(h Hash) Sum {
	return Sum{lo: binary.LittleEndian.Uint64(h[:8]), hi: binary.LittleEndian.Uint64(h[8:])}
}

// Add returns s + t mod 2^128.
func (s Sum) Add(t Sum) Sum {
	lo, c := bits.Add64(s.lo, t.lo, 0)
	hi, _ := bits.Add64(s.hi, t.hi, c)
	return Sum{lo, hi}
}

// Sub returns s - t mod 2^128.
func (s Sum) Sub(t Sum) Sum {
	lo, b := bits.Sub64(s.lo, t.lo, 0)
	hi, _ := bits.Sub64(s.hi, t.hi, b)
	return Sum{lo, hi}
}

// AddHash returns s plus item hash h.
func (s Sum) AddHash(h Hash) Sum { return s.Add(hashSum(h)) }

// Fingerprint returns the fingerprint of a range of count items whose hashes
// sum to s: the first FingerprintSize bytes of SHA-256(s as 16 little-endian
// bytes || uvarint(count)). Hashing the sum with the count keeps a forger
// who could make sums cancel from controlling the fingerprint, and makes
// ranges of different sizes differ outright.
func (s Sum) Fingerprint(count int) Fingerprint {
	var b [16 + binary.MaxVarintLen64]byte
	binary.LittleEndian.PutUint64(b[:8], s.lo)
	binary.LittleEndian.PutUint64(b[8:16], s.hi)
	n := 16 + binary.PutUvarint(b[16:], uint64(count))
	full := sha256.Sum256(b[:n])
	var fp Fingerprint
	copy(fp[:], full[:])
	return fp
}

// FingerprintItems returns the fingerprint of items, in any order.
func FingerprintItems(items []Item) Fingerprint {
	var s Sum
	for _, it := range items {
		s = s.AddHash(it.Hash)
	}
	return s.Fingerprint(len(items))
}
