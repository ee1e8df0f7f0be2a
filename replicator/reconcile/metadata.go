package reconcile

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/lazaret/lazaret"
)

// MetadataItem returns the Item that stands for m in a replica's set: its id
// as the key, and the hash of its content in a canonical form, so that two
// replicas holding the same record in different forms (times in other
// zones, an empty list for a missing one, a history in another order)
// agree, and any real difference, in any field, is found.
//
// The content is the JSON encoding of m with every time in UTC, empty
// slices as absent, and the history in the canonical order lazaret.Merge
// keeps; it includes the Version, the state and the whole history. Hashing
// the whole record rather than (id, Version, state) matters: a merge of
// concurrent changes keeps the winner's Version but the union of both
// histories, so two replicas can hold the same Version with different
// content, and only a content hash tells them apart.
func MetadataItem(m *lazaret.Metadata) (Item, error) {
	c := m.Clone()
	c.Received, c.Date = c.Received.UTC(), c.Date.UTC()
	if len(c.Recipients) == 0 {
		c.Recipients = nil
	}
	if len(c.Placement.Shards) == 0 {
		c.Placement.Shards = nil
	}
	if len(c.History) == 0 {
		c.History = nil
	}
	for i := range c.History {
		c.History[i].Time = c.History[i].Time.UTC()
	}
	slices.SortStableFunc(c.History, func(a, b lazaret.Event) int {
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		if a.Time.Equal(b.Time) {
			return slices.Compare(ja, jb)
		}
		return a.Time.Compare(b.Time)
	})
	j, err := json.Marshal(c)
	if err != nil {
		return Item{}, fmt.Errorf("reconcile: encoding %s: %w", m.ID, err)
	}
	sum := sha256.Sum256(j)
	return Item{Key: string(m.ID), Hash: HashItem(string(m.ID), sum[:])}, nil
}
