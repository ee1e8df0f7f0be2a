package reconcile

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"pgregory.net/rapid"
)

// TestMemSetProperty: after random puts, updates and deletes, a MemSet
// agrees with a sorted slice on Len, Seek, Items and every Fingerprint.
func TestMemSetProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := NewMemSet(nil)
		model := map[string]Item{}
		for range rapid.IntRange(0, 3000).Draw(t, "ops") {
			k := rapid.IntRange(0, 2000).Draw(t, "key")
			if rapid.IntRange(0, 3).Draw(t, "op") == 0 {
				delete(model, testKey(k))
				s.Delete(testKey(k))
				continue
			}
			it := testItem(k, rapid.IntRange(0, 3).Draw(t, "version"))
			model[it.Key] = it
			s.Put(it)
		}
		want := make([]Item, 0, len(model))
		for _, it := range model {
			want = append(want, it)
		}
		slices.SortFunc(want, func(a, b Item) int { return cmpStr(a.Key, b.Key) })
		if s.Len() != len(want) || !slices.Equal(s.All(), want) {
			t.Fatalf("MemSet holds %d items, model %d", s.Len(), len(want))
		}
		for range 50 {
			lo := rapid.IntRange(0, len(want)).Draw(t, "lo")
			hi := rapid.IntRange(lo, len(want)).Draw(t, "hi")
			if got, exp := s.Fingerprint(lo, hi), FingerprintItems(want[lo:hi]); got != exp {
				t.Fatalf("Fingerprint(%d, %d) differs from the model", lo, hi)
			}
			if !slices.Equal(s.Items(lo, hi, nil), want[lo:hi]) {
				t.Fatalf("Items(%d, %d) differs from the model", lo, hi)
			}
			k := testKey(rapid.IntRange(0, 2001).Draw(t, "seek"))
			exp, _ := slices.BinarySearchFunc(want, k, func(it Item, k string) int { return cmpStr(it.Key, k) })
			if got := s.Seek(k); got != exp {
				t.Fatalf("Seek(%q) = %d, want %d", k, got, exp)
			}
		}
		if other := NewMemSet(want); !slices.Equal(other.All(), want) || other.Fingerprint(0, other.Len()) != s.Fingerprint(0, s.Len()) {
			t.Fatal("NewMemSet disagrees with the incrementally built set")
		}
	})
}

// TestMemSetIncremental times updates on a large set: 10^5 items, or 10^6
// when LAZARET_RECONCILE_TABLE is set (make bench).
func TestMemSetIncremental(t *testing.T) {
	n := 100_000
	if os.Getenv("LAZARET_RECONCILE_TABLE") != "" {
		n = 1_000_000
	}
	items := realisticItems(n, 9)
	start := time.Now()
	s := NewMemSet(items)
	built := time.Since(start)
	// 10,000 updates at random places, each followed by a whole-set query,
	// as a live node between sessions.
	r := splitmix(3)
	start = time.Now()
	for i := range 10_000 {
		it := items[r.next()%uint64(len(items))]
		it.Hash[0] ^= byte(i) | 1
		s.Put(it)
		_ = s.Fingerprint(0, s.Len()/2)
	}
	upd := time.Since(start)
	t.Logf("%d items: built in %v; 10,000 updates each followed by a fingerprint in %v", n, built, upd)
	if upd > 10*time.Second {
		t.Fatalf("10,000 updates took %v", upd)
	}
}

func TestMetadataItem(t *testing.T) {
	t0 := time.Date(2026, 5, 28, 20, 26, 40, 0, time.UTC)
	m := &lazaret.Metadata{ID: "1wShJQ-000000-01", Received: t0, Recipients: []string{}, Version: lazaret.Version{Wall: 1, Node: 1},
		History: []lazaret.Event{{Time: t0, Action: "quarantine", Node: 1}, {Time: t0.Add(time.Second), Action: "learn", Detail: "spam", Node: 2}}}
	same := m.Clone()
	same.Received = t0.In(time.FixedZone("CEST", 7200))
	same.Recipients = nil
	same.History[0], same.History[1] = same.History[1], same.History[0]
	a, err := MetadataItem(m)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := MetadataItem(same)
	if a != b {
		t.Fatal("the same record in two forms hashes differently")
	}
	// Same Version and state, one more event (a merge of concurrent
	// changes): the hash must differ.
	more := m.Clone()
	more.History = append(more.History, lazaret.Event{Time: t0.Add(2 * time.Second), Action: "learn", Detail: "ham", Node: 3})
	c, _ := MetadataItem(more)
	if c.Hash == a.Hash || c.Key != a.Key {
		t.Fatal("a record with another history hashes the same")
	}
}
