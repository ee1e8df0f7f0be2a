package daemon

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/internal/metricstest"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
	"github.com/lazaret/lazaret/replicator/member"
)

// The monitoring endpoint's readers (internal/metricstest).
var (
	httpGet       = metricstest.Get
	scrape        = metricstest.Scrape
	promtoolCheck = metricstest.Promtool
	wantSample    = metricstest.WantSample
)

// fakeStore and fakeReplica stand in for the store and the replicator in
// the threshold tests.
type fakeStore struct{ err error }

func (f fakeStore) Stats() (objstore.Stats, error) { return objstore.Stats{Messages: 7}, nil }
func (f fakeStore) LoadIDLease() (int64, error)    { return 0, f.err }
func (f fakeStore) Dir() string                    { return os.TempDir() }
func (f fakeStore) Space() objstore.SpaceStatus    { return objstore.SpaceStatus{Free: -1} }

type fakeReplica struct {
	under   int64
	oldest  time.Time
	corrupt int64
	syncs   []replicator.PeerSync
}

func (f fakeReplica) UnderProtected() (int64, int64, time.Time) {
	return f.under, f.under * 100, f.oldest
}
func (f fakeReplica) CorruptShards() int64             { return f.corrupt }
func (f fakeReplica) ShortMetadataPuts() int64         { return 0 }
func (f fakeReplica) PushBacklog() (int, int64)        { return 2, 1 }
func (f fakeReplica) RepairQueue() int                 { return 4 }
func (f fakeReplica) Repaired() (int64, int64, int64)  { return 5, 5000, 6 }
func (f fakeReplica) PeerSyncs() []replicator.PeerSync { return f.syncs }

// Each threshold is named when crossed, and only then.
func TestHealthProblems(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	members := []member.Member{
		{Number: 1, Name: "mx1", State: member.Alive}, {Number: 2, Name: "mx2", State: member.Failed},
		{Number: 3, Name: "mx3", State: member.Alive}, {Number: 4, Name: "mx4", State: member.Left},
		{Number: 5, Name: "mx5", State: member.Alive},
	}
	base := func() HealthConfig {
		c := DefaultHealthConfig()
		c.MinFreeDisk = 0
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  func(*HealthConfig)
		src  sources
		want []string
	}{
		{"healthy", nil, sources{store: fakeStore{}, node: fakeReplica{}}, nil},
		{"store", nil, sources{store: fakeStore{err: lazaret.ErrUnavailable}, node: fakeReplica{}},
			[]string{"store unavailable: temporarily unavailable"}},
		{"under count", func(c *HealthConfig) { c.MaxUnderProtected = 0 },
			sources{store: fakeStore{}, node: fakeReplica{under: 12, oldest: now.Add(-30 * time.Second)}},
			[]string{"under-protected messages: 12 (threshold 0)"}},
		{"under at the limit", func(c *HealthConfig) { c.MaxUnderProtected = 12 },
			sources{store: fakeStore{}, node: fakeReplica{under: 12, oldest: now.Add(-30 * time.Second)}}, nil},
		{"under within limits", nil,
			sources{store: fakeStore{}, node: fakeReplica{under: 12, oldest: now.Add(-30 * time.Second)}}, nil},
		{"under age", func(c *HealthConfig) { c.MaxUnderProtectedAge = 300 * time.Second },
			sources{store: fakeStore{}, node: fakeReplica{under: 12, oldest: now.Add(-340 * time.Second)}},
			[]string{"under-protected messages: 12 (oldest 340s, threshold 300s)"}},
		{"under off", func(c *HealthConfig) { c.MaxUnderProtected, c.MaxUnderProtectedAge = -1, 0 },
			sources{store: fakeStore{}, node: fakeReplica{under: 1e6, oldest: now.Add(-time.Hour)}}, nil},
		{"corrupt", nil, sources{store: fakeStore{}, node: fakeReplica{corrupt: 1}},
			[]string{"corrupt shards since start: 1 (threshold 0)"}},
		{"index", func(c *HealthConfig) { c.MaxIndexBacklog = 1000 },
			sources{store: fakeStore{}, node: fakeReplica{}, index: func() *lazaret.IndexStatus {
				return &lazaret.IndexStatus{Backlog: 1500, BacklogAge: 400 * time.Second}
			}},
			[]string{"postgres outbox: 1500 changes (threshold 1000)", "postgres outbox: oldest change waiting 400s (threshold 300s)"}},
		{"members", nil, sources{store: fakeStore{}, node: fakeReplica{}, members: func() []member.Member { return members }},
			[]string{"cluster: 1 of 5 members failed: 2 (mx2) (threshold 0)"}},
		{"members tolerated", func(c *HealthConfig) { c.MaxFailedMembers = 1 },
			sources{store: fakeStore{}, node: fakeReplica{}, members: func() []member.Member { return members }}, nil},
		{"reconciled", nil, sources{store: fakeStore{}, node: fakeReplica{syncs: []replicator.PeerSync{{Node: 3, LastSuccess: now.Add(-400 * time.Second)}, {Node: 5, LastSuccess: now.Add(-20 * time.Second)}}},
			members: func() []member.Member { return append(members[:1:1], members[2]) }, started: now.Add(-time.Hour)}, nil},
		{"reconcile old", nil, sources{store: fakeStore{}, node: fakeReplica{syncs: []replicator.PeerSync{{Node: 3, LastSuccess: now.Add(-400 * time.Second)}}},
			members: func() []member.Member { return append(members[:1:1], members[2]) }, started: now.Add(-time.Hour)},
			[]string{"last metadata reconciliation 400s ago (threshold 300s)"}},
		{"reconcile never", nil, sources{store: fakeStore{}, node: fakeReplica{},
			members: func() []member.Member { return append(members[:1:1], members[2]) }, started: now.Add(-time.Hour)},
			[]string{"no metadata reconciliation with any peer since start 3600s ago (threshold 300s)"}},
		{"reconcile grace", nil, sources{store: fakeStore{}, node: fakeReplica{},
			members: func() []member.Member { return append(members[:1:1], members[2]) }, started: now.Add(-time.Minute)}, nil},
		{"reconcile alone", nil, sources{store: fakeStore{}, node: fakeReplica{},
			members: func() []member.Member { return members[:1:1] }, started: now.Add(-time.Hour)}, nil},
		{"disk", func(c *HealthConfig) { c.MinFreeDisk = 1 << 62 }, sources{store: fakeStore{}, node: fakeReplica{}},
			[]string{"free disk: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			got := c.problems(tc.src.read(now))
			wantPrefixes(t, "problems", got, tc.want)
		})
	}
}

// The cluster metrics of a clustered node pass promtool and carry the
// figures the replicator and membership report.
func TestNodeCollectorCluster(t *testing.T) {
	now := time.Now()
	synced := time.Unix(1_800_000_000, 0)
	src := &sources{store: fakeStore{}, self: 1, started: now,
		node: fakeReplica{under: 3, oldest: now.Add(-90 * time.Second), corrupt: 2,
			syncs: []replicator.PeerSync{{Node: 3, LastSuccess: synced, Differences: 7, Bytes: 900, Rounds: 11}, {Node: 2, Rounds: 0}}},
		members: func() []member.Member {
			return []member.Member{{Number: 1, State: member.Alive}, {Number: 2, State: member.Failed}, {Number: 3, State: member.Alive}}
		}}
	cfg := DefaultConfig(t.TempDir(), "")
	cfg.Health.MinFreeDisk = 0
	m := newMonitor(cfg, slog.New(slog.DiscardHandler), lazaret.SystemClock{})
	m.src.p.Store(src)
	srv := httptest.NewServer(m.handler(nil))
	defer srv.Close()
	text, s := scrape(t, strings.TrimPrefix(srv.URL, "http://"))
	promtoolCheck(t, text)
	wantSample(t, s, `lazaret_under_protected_messages`, 3)
	wantSample(t, s, `lazaret_under_protected_bytes`, 300)
	wantSample(t, s, `lazaret_corrupt_shards_total`, 2)
	wantSample(t, s, `lazaret_metadata_push_queue_length`, 2)
	wantSample(t, s, `lazaret_metadata_push_dropped_total`, 1)
	wantSample(t, s, `lazaret_cluster_members{state="alive"}`, 2)
	wantSample(t, s, `lazaret_cluster_members{state="failed"}`, 1)
	wantSample(t, s, `lazaret_cluster_member_up{peer="2"}`, 0)
	wantSample(t, s, `lazaret_cluster_member_up{peer="3"}`, 1)
	wantSample(t, s, `lazaret_health_problems`, 2) // corrupt shards, failed member
	wantSample(t, s, `lazaret_repair_queue_length`, 4)
	wantSample(t, s, `lazaret_repaired_shards_total`, 5)
	wantSample(t, s, `lazaret_repaired_bytes_total`, 5000)
	wantSample(t, s, `lazaret_repair_failures_total`, 6)
	wantSample(t, s, `lazaret_reconcile_last_success_timestamp_seconds{peer="3"}`, 1.8e9)
	wantSample(t, s, `lazaret_reconcile_last_differences{peer="3"}`, 7)
	wantSample(t, s, `lazaret_reconcile_last_bytes{peer="3"}`, 900)
	wantSample(t, s, `lazaret_reconcile_sessions_total{peer="3"}`, 11)
	wantSample(t, s, `lazaret_reconcile_sessions_total{peer="2"}`, 0)
	if _, ok := s[`lazaret_reconcile_last_success_timestamp_seconds{peer="2"}`]; ok {
		t.Errorf("a peer never reconciled with has a last-success time")
	}
	if age := s[`lazaret_under_protected_oldest_age_seconds`]; age < 89 || age > 120 {
		t.Errorf("oldest under-protected age %v, want about 90", age)
	}
	if _, ok := s[`lazaret_cluster_member_up{peer="1"}`]; ok {
		t.Errorf("the node lists itself as a peer")
	}
	code, b := httpGet(t, srv.URL+"/health")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(b), "cluster: 1 of 3 members failed") {
		t.Fatalf("/health: %d %s", code, b)
	}
}

// Status lists each condition once: as a problem when it crosses its
// threshold, else as a note; a node on its own has no notes.
func TestStatusHealthOnceEach(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	two := func() []member.Member {
		return []member.Member{{Number: 1, State: member.Alive}, {Number: 2, State: member.Alive}}
	}
	c := DefaultHealthConfig()
	c.MinFreeDisk, c.MaxReconcileAge = 0, 0
	for _, tc := range []struct {
		name string
		src  sources
		want []string
	}{
		{"corrupt over threshold", sources{store: fakeStore{}, node: fakeReplica{corrupt: 1}, members: two},
			[]string{"corrupt shards since start: 1 (threshold 0): shards that failed their checksum", "1 metadata pushes dropped", "4 messages wait for repair"}},
		{"under below threshold", sources{store: fakeStore{}, node: fakeReplica{under: 3, oldest: now.Add(-time.Second)}, members: two},
			[]string{"3 under-protected messages (300 bytes)", "1 metadata pushes dropped", "4 messages wait for repair"}},
		{"alone", sources{store: fakeStore{}, node: fakeReplica{corrupt: 1}},
			[]string{"corrupt shards since start: 1 (threshold 0)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sn := tc.src.read(now)
			got := append(c.problems(sn), c.notes(sn)...)
			wantPrefixes(t, "status health", got, tc.want)
		})
	}
}

// wantPrefixes checks that each line of got starts with the same line of
// want, and that there are as many.
func wantPrefixes(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s %q, want %q", what, got, want)
	}
	for i := range got {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Fatalf("%s %q, want %q", what, got, want)
		}
	}
}
