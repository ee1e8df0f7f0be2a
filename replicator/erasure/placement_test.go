package erasure

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator/member"
)

// The adapters package replicator uses (replicator/placement.go).
func placeShards(id lazaret.ID, ms []member.Member, n int) []member.Member {
	return Place(id, ms, n, func(m member.Member) string { return m.Name }, func(m member.Member) bool { return m.State == member.Alive })
}

func clusterCode(policy Code, ms []member.Member) Code {
	n := 0
	for _, m := range ms {
		if m.State != member.Left {
			n++
		}
	}
	return ClusterCode(policy, n)
}

func genMembers(t *rapid.T, min, max int) []member.Member {
	n := rapid.IntRange(min, max).Draw(t, "members")
	ms := make([]member.Member, n)
	for i := range ms {
		ms[i] = member.Member{Name: fmt.Sprintf("node-%d", i+1), Number: i + 1, State: member.Alive}
	}
	return ms
}

func genID(t *rapid.T) lazaret.ID {
	return lazaret.ID(rapid.StringMatching(`[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}`).Draw(t, "id"))
}

func names(ms []member.Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Name
	}
	return out
}

// TestPlacementProperties: shards go to distinct alive members; the
// placement is a function of (id, members) only; members that leave or
// join move only the shards they held or now take.
func TestPlacementProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := genMembers(t, 1, 16)
		for i := range ms {
			if rapid.IntRange(0, 4).Draw(t, "down") == 0 {
				ms[i].State = member.Failed
			}
		}
		id := genID(t)
		n := rapid.IntRange(1, 12).Draw(t, "n")
		got := placeShards(id, ms, n)
		alive := 0
		for _, m := range ms {
			if m.State == member.Alive {
				alive++
			}
		}
		if len(got) != min(n, alive) {
			t.Fatalf("%d nodes placed, want min(%d, %d alive)", len(got), n, alive)
		}
		seen := map[string]bool{}
		for _, m := range got {
			if seen[m.Name] || m.State != member.Alive {
				t.Fatalf("placement %v: repeated or not alive member %s", names(got), m.Name)
			}
			seen[m.Name] = true
		}
		// Deterministic, whatever the order members are listed in.
		shuffled := slices.Clone(ms)
		rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		if again := placeShards(id, shuffled, n); !slices.Equal(names(again), names(got)) {
			t.Fatalf("placement depends on member order: %v vs %v", names(got), names(again))
		}
		// A member failing moves only its own shard: the others keep their
		// relative order, and the rest of the ranking fills in at the end.
		if len(got) > 0 {
			victim := got[rapid.IntRange(0, len(got)-1).Draw(t, "victim")].Name
			after := slices.Clone(ms)
			for i := range after {
				if after[i].Name == victim {
					after[i].State = member.Failed
				}
			}
			moved := placeShards(id, after, n)
			var kept []string
			for _, nm := range names(got) {
				if nm != victim {
					kept = append(kept, nm)
				}
			}
			if !slices.Equal(names(moved)[:len(kept)], kept) {
				t.Fatalf("losing %s reshuffled other shards: %v -> %v", victim, names(got), names(moved))
			}
		}
		// A new member either takes no shard or pushes out only the last.
		joined := append(slices.Clone(ms), member.Member{Name: "newcomer", Number: 99, State: member.Alive})
		after := placeShards(id, joined, n)
		var lost []string
		for _, nm := range names(got) {
			if !slices.Contains(names(after), nm) {
				lost = append(lost, nm)
			}
		}
		if len(lost) > 1 || (len(lost) == 1 && lost[0] != got[len(got)-1].Name) {
			t.Fatalf("a joining member displaced %v from %v -> %v", lost, names(got), names(after))
		}
	})
}

// TestPlacementBalance: over many ids each of 10 members gets its share of
// 5 shards, within 5%.
func TestPlacementBalance(t *testing.T) {
	var ms []member.Member
	for i := 1; i <= 10; i++ {
		ms = append(ms, member.Member{Name: fmt.Sprintf("lazaret%d", i), Number: i, State: member.Alive})
	}
	const ids = 20000
	counts := map[string]int{}
	first := map[string]int{}
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range ids {
		id := lazaret.ID(fmt.Sprintf("%06X-%06X-%02d", rng.Uint32()&0xffffff, i, i%100))
		p := placeShards(id, ms, 5)
		first[p[0].Name]++
		for _, m := range p {
			counts[m.Name]++
		}
	}
	want := float64(ids) * 5 / 10
	for name, c := range counts {
		if d := float64(c)/want - 1; d > 0.05 || d < -0.05 {
			t.Errorf("%s holds %d shards, want %.0f ± 5%%", name, c, want)
		}
		if d := float64(first[name])/(ids/10) - 1; d > 0.1 || d < -0.1 {
			t.Errorf("%s holds shard 0 of %d messages, want %d ± 10%%", name, first[name], ids/10)
		}
	}
}

func TestPolicy(t *testing.T) {
	for s, want := range map[string]Code{"": {}, "auto": {}, "4+2": {4, 2}, " 8 + 3 ": {8, 3}, "1+0": {1, 0}} {
		got, err := ParsePolicy(s)
		if err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"4", "0+2", "4+-1", "a+b", "200+100", "4+2+1"} {
		if _, err := ParsePolicy(s); err == nil {
			t.Errorf("ParsePolicy(%q) accepted", s)
		}
	}
	for n, want := range map[int]Code{1: {1, 0}, 2: {1, 1}, 3: {2, 1}, 4: {2, 2}, 5: {3, 2}, 6: {4, 2}, 12: {4, 2}} {
		if got := DefaultCode(n); got != want {
			t.Errorf("DefaultCode(%d) = %v, want %v", n, got, want)
		}
	}
	// The size counts failed members, not those that left.
	ms := []member.Member{{State: member.Alive}, {State: member.Failed}, {State: member.Left}, {State: member.Alive}, {State: member.Alive}}
	if got := clusterCode(Code{}, ms); got != (Code{2, 2}) {
		t.Errorf("4 members (one failed) and one left: %v, want 2+2", got)
	}
	for _, c := range []struct{ conf, want int }{{0, 4}, {5, 5}, {9, 5}, {1, 3}} {
		if got := WriteQuorum(c.conf, Code{3, 2}); got != c.want {
			t.Errorf("WriteQuorum(%d, 3+2) = %d, want %d", c.conf, got, c.want)
		}
	}
}
