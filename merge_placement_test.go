package lazaret_test

import (
	"testing"

	"github.com/lazaret/lazaret"
)

// A repair that moves a shard (newer placement) and a learn made elsewhere at
// the same time (newer record) must both survive the merge, in either order:
// otherwise the learn's copy would carry a placement naming a shard that no
// longer exists.
func TestMergeKeepsNewestPlacement(t *testing.T) {
	base := &lazaret.Metadata{
		ID: "1wShJQ-000000-01", Node: 1, Version: lazaret.Version{Wall: 10, Node: 1},
		Placement: lazaret.Placement{K: 2, M: 1, Shards: []lazaret.ShardLoc{{Index: 0, Node: 1}, {Index: 1, Node: 2}, {Index: 2, Node: 3}}},
	}
	repaired := base.Clone()
	repaired.Version = lazaret.Version{Wall: 20, Node: 4}
	repaired.Placement.Shards[2].Node = 4
	repaired.Placement.Version = repaired.Version

	learned := base.Clone()
	learned.Version = lazaret.Version{Wall: 30, Node: 2}
	learned.LearnedAs = lazaret.LearnSpam
	learned.History = []lazaret.Event{{Action: "learn", Detail: "spam", Node: 2}}

	for _, m := range []*lazaret.Metadata{lazaret.Merge(repaired, learned), lazaret.Merge(learned, repaired)} {
		if m.Version != learned.Version || m.LearnedAs != lazaret.LearnSpam {
			t.Errorf("the learn was lost: version %v learned %v", m.Version, m.LearnedAs)
		}
		if got := m.Placement.Shards[2].Node; got != 4 {
			t.Errorf("shard 2 on node %d after merge, want 4 (the repaired placement)", got)
		}
	}
	// Idempotent: merging the result again changes nothing.
	m := lazaret.Merge(repaired, learned)
	if again := lazaret.Merge(m, repaired); again != m {
		t.Error("merging an already merged record again produced a new record")
	}
}
