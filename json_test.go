package lazaret_test

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lazaret/lazaret"
)

func TestMetadataJSONRoundTrip(t *testing.T) {
	m := &lazaret.Metadata{
		ID: "1wShJQ-000000-01", Node: 1, Received: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		Sender: "a@example.org", Recipients: []string{"b@example.com"}, Size: 3,
		SHA256:    sha256.Sum256([]byte("abc")),
		Verdict:   lazaret.Verdict{Kind: lazaret.VerdictHighSpam, Score: 20},
		State:     lazaret.StateReleased,
		LearnedAs: lazaret.LearnHam,
		Placement: lazaret.Placement{K: 2, M: 1, Shards: []lazaret.ShardLoc{{Index: 1, Node: 3, Size: 2, SHA256: sha256.Sum256([]byte("x"))}}},
		Version:   lazaret.Version{Wall: 5, Node: 1},
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"sha256":"ba7816bf`, `"state":"released"`, `"kind":"highspam"`, `"learned_as":"ham"`, `"sha256":"2d711642`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	var back lazaret.Metadata
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, &back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if err := json.Unmarshal([]byte(`{"state":"lost"}`), &back); err == nil {
		t.Error("unknown state accepted")
	}
}

// Durations in status JSON are seconds, named so (issue 16).
func TestNodeStatusJSONSeconds(t *testing.T) {
	st := lazaret.NodeStatus{Retention: 30 * 24 * time.Hour, Index: &lazaret.IndexStatus{BacklogAge: 1500 * time.Millisecond}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"retention_seconds":2592000`, `"backlog_age_seconds":1.5`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back lazaret.NodeStatus
	if err := json.Unmarshal(b, &back); err != nil || back.Retention != st.Retention || back.Index.BacklogAge != st.Index.BacklogAge {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}
