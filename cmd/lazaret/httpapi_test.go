package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
)

// httpAddr waits for serve to print where its HTTP endpoint listens.
func httpAddr(t *testing.T, n *node) string {
	t.Helper()
	re := regexp.MustCompile(`metrics and health on http://([^/\s]+)/metrics`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(n.out.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not print its HTTP address:\n%s", n.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// smtpAddr waits for serve to print where its SMTP filter listens.
func smtpAddr(t *testing.T, n *node) string {
	t.Helper()
	re := regexp.MustCompile(`smtp filter on (\S+),`)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(n.out.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not print its SMTP address:\n%s", n.out)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// httpGet fetches url and returns the status code and body.
func httpGet(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := httpClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, b
}

// health fetches /health and decodes it.
func health(t *testing.T, addr string) (int, healthBody) {
	t.Helper()
	code, b := httpGet(t, "http://"+addr+"/health")
	var h healthBody
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("/health: %v: %q", err, b)
	}
	return code, h
}

// scrape fetches /metrics and returns its text and the value of each
// sample, keyed by the sample's text up to the value (`name{labels}`).
func scrape(t *testing.T, addr string) (string, map[string]float64) {
	t.Helper()
	code, b := httpGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, b)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics: bad sample %q", line)
		}
		samples[line[:i]] = v
	}
	return string(b), samples
}

// promtoolCheck runs `promtool check metrics` on text. promtool comes with
// Debian's prometheus package (test/deps.sh installs it); only a test run
// that could not install it (not root) skips the check.
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getuid() == 0 {
			t.Fatalf("promtool not found: run test/deps.sh (Debian package prometheus)")
		}
		t.Logf("promtool not found and not root: skipping promtool check metrics")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

func wantSample(t *testing.T, samples map[string]float64, key string, v float64) {
	t.Helper()
	got, ok := samples[key]
	if !ok {
		t.Errorf("/metrics has no %s", key)
	} else if got != v {
		t.Errorf("%s = %v, want %v", key, got, v)
	}
}

// /metrics passes promtool and its figures follow puts and gets by API and
// SMTP; /health and /ready answer 200 on a healthy node and 503 once it
// stops.
func TestHTTPMetricsAndHealth(t *testing.T) {
	dir := shortDir(t)
	cfg := writeConfig(t, `
[http]
listen = "127.0.0.1:0"
[health]
min_free_disk = "0"
`)
	socket := filepath.Join(dir, "s")
	n := startServe(t, filepath.Join(dir, "data"), socket, "--config", cfg, "--smtp", "127.0.0.1:0", "--relay", "127.0.0.1:1")
	addr := httpAddr(t, n)
	env := map[string]string{"LAZARET_SOCKET": socket}

	if code, h := health(t, addr); code != 200 || h.Status != "ok" || len(h.Problems) != 0 || h.Node != 1 {
		t.Fatalf("/health of a fresh node: %d %+v", code, h)
	}
	if code, b := httpGet(t, "http://"+addr+"/ready"); code != 200 || !strings.Contains(string(b), `"status":"ready"`) {
		t.Fatalf("/ready: %d %s", code, b)
	}
	text, s := scrape(t, addr)
	promtoolCheck(t, text)
	wantSample(t, s, `lazaret_requests_total{op="put",result="ok",source="api"}`, 0)
	wantSample(t, s, `lazaret_store_up`, 1)
	wantSample(t, s, `lazaret_store_messages`, 0)
	wantSample(t, s, `lazaret_health_problems`, 0)
	if s[`go_goroutines`] == 0 || s[`process_resident_memory_bytes`] == 0 {
		t.Errorf("Go and process collectors missing")
	}

	// Three puts and a refused one by API, one get, one put by SMTP.
	var ids []string
	var putBytes int
	for i := range 3 {
		body := fmt.Appendf(nil, "Subject: m%d\r\nFrom: a@example.org\r\n\r\n%s\r\n", i, strings.Repeat("x", 1000*(i+1)))
		putBytes += len(body)
		ids = append(ids, strings.TrimSpace(ok(t, env, body, "put", "--from", "a@example.org", "--to", "b@example.com")))
	}
	if r := lz(t, env, nil, "put", "--from", "a@example.org", "--to", "b@example.com"); r.code == 0 {
		t.Fatalf("an empty put was accepted")
	}
	got := ok(t, env, nil, "get", ids[1])
	sa := smtpAddr(t, n)
	msg := "From: s@example.org\r\nTo: r@example.com\r\nSubject: by smtp\r\nX-Spam-Flag: YES\r\n\r\nhello\r\n"
	if err := smtp.SendMail(sa, nil, "s@example.org", []string{"r@example.com"}, []byte(msg)); err != nil {
		t.Fatalf("smtp: %v", err)
	}

	text, s = scrape(t, addr)
	promtoolCheck(t, text)
	wantSample(t, s, `lazaret_requests_total{op="put",result="ok",source="api"}`, 3)
	wantSample(t, s, `lazaret_requests_total{op="put",result="invalid",source="api"}`, 1)
	wantSample(t, s, `lazaret_requests_total{op="get",result="ok",source="api"}`, 1)
	wantSample(t, s, `lazaret_requests_total{op="put",result="ok",source="smtp"}`, 1)
	wantSample(t, s, `lazaret_put_bytes_total{source="api"}`, float64(putBytes))
	wantSample(t, s, `lazaret_put_duration_seconds_count{source="api"}`, 3)
	wantSample(t, s, `lazaret_put_duration_seconds_count{source="smtp"}`, 1)
	wantSample(t, s, `lazaret_get_bytes_total`, float64(len(got)))
	wantSample(t, s, `lazaret_store_messages`, 4)
	if s[`lazaret_put_bytes_total{source="smtp"}`] < float64(len(msg)) {
		t.Errorf("smtp put bytes %v, want at least %d", s[`lazaret_put_bytes_total{source="smtp"}`], len(msg))
	}
	if s[`lazaret_store_shard_bytes`] < float64(putBytes) || s[`lazaret_store_disk_bytes`] == 0 || s[`lazaret_store_disk_free_bytes`] == 0 ||
		s[`lazaret_store_disk_size_bytes`] < s[`lazaret_store_disk_free_bytes`] {
		t.Errorf("store figures: shard bytes %v (want >= %d), disk %v, free %v", s[`lazaret_store_shard_bytes`], putBytes, s[`lazaret_store_disk_bytes`], s[`lazaret_store_disk_free_bytes`])
	}
	if code, h := health(t, addr); code != 200 || h.Status != "ok" {
		t.Fatalf("/health after puts: %d %+v", code, h)
	}
	var st lazaret.NodeStatus
	if err := json.Unmarshal([]byte(ok(t, env, nil, "status", "--json")), &st); err != nil || len(st.Health) != 0 {
		t.Fatalf("status --json: %v, health %q", err, st.Health)
	}

	// A stopping node answers 503 (HAProxy drains it) until it closes.
	n.cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := httpClient.Get("http://" + addr + "/ready")
		if err != nil {
			break // closed
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready still %d after shutdown began", resp.StatusCode)
		}
		time.Sleep(5 * time.Millisecond)
	}
	n.stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("the HTTP endpoint still listens after serve stopped")
	}
}

// A crossed threshold makes /health answer 503 naming it, and `lazaret
// status` lists it; /ready stays 200 (the node still takes mail). Here
// PostgreSQL is unreachable, so a put leaves a change in the outbox.
// startOutboxNode starts a node whose PostgreSQL index is unreachable and
// that is degraded as soon as one change waits in the outbox.
func startOutboxNode(t *testing.T) (*node, string, map[string]string) {
	t.Helper()
	dir := shortDir(t)
	cfg := writeConfig(t, fmt.Sprintf(`
[http]
listen = "127.0.0.1:0"
[health]
min_free_disk = "0"
max_index_backlog = 0
[index]
postgres = "postgres://u:p@%s/x?sslmode=disable&connect_timeout=1"
flush_interval = "100ms"
retry_max = "200ms"
`, freeAddr(t)))
	socket := filepath.Join(dir, "s")
	n := startServe(t, filepath.Join(dir, "data"), socket, "--config", cfg)
	return n, httpAddr(t, n), map[string]string{"LAZARET_SOCKET": socket}
}

func TestHTTPHealthDegraded(t *testing.T) {
	_, addr, env := startOutboxNode(t)
	if code, h := health(t, addr); code != 200 {
		t.Fatalf("/health with an empty outbox: %d %+v", code, h)
	}
	ok(t, env, []byte("Subject: x\r\n\r\nbody\r\n"), "put", "--from", "a@example.org", "--to", "b@example.com")

	code, h := health(t, addr)
	wantProblem := "postgres outbox: 1 changes (threshold 0)"
	if code != http.StatusServiceUnavailable || h.Status != "degraded" || !contains(h.Problems, wantProblem) {
		t.Fatalf("/health: %d %+v, want 503 degraded with %q", code, h, wantProblem)
	}
	if code, b := httpGet(t, "http://"+addr+"/ready"); code != 200 {
		t.Fatalf("/ready of a degraded node that takes mail: %d %s", code, b)
	}
	text, s := scrape(t, addr)
	promtoolCheck(t, text)
	wantSample(t, s, `lazaret_health_problems`, 1)
	wantSample(t, s, `lazaret_index_backlog_records`, 1)
	wantSample(t, s, `lazaret_index_up`, 0)
	out := ok(t, env, nil, "status")
	if !strings.Contains(out, wantProblem) {
		t.Fatalf("lazaret status does not list %q:\n%s", wantProblem, out)
	}
}

// HAProxy's `option httpchk GET /health` marks a node up while it is
// healthy and down once it is degraded (a change waits for an unreachable
// PostgreSQL beyond max_index_backlog = 0).
func TestHTTPHAProxyCheck(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if _, e := os.Stat("/usr/sbin/haproxy"); e != nil {
			t.Skip("haproxy not installed (test/deps.sh installs it as root)")
		}
		haproxy = "/usr/sbin/haproxy"
	}
	_, addr, env := startOutboxNode(t)
	dir := shortDir(t)
	stats := filepath.Join(dir, "haproxy.sock")
	front := freeAddr(t)
	conf := fmt.Sprintf(`global
    stats socket %s level admin
defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s
frontend f
    bind %s
    default_backend lazaret
backend lazaret
    option httpchk GET /health
    http-check expect status 200
    server node1 %s check inter 100ms fall 2 rise 2
`, stats, front, addr)
	confPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	hp := exec.CommandContext(ctx, haproxy, "-db", "-f", confPath)
	var hpOut syncBuffer
	hp.Stdout, hp.Stderr = &hpOut, &hpOut
	if err := hp.Start(); err != nil {
		t.Fatalf("haproxy: %v", err)
	}
	defer func() { _ = hp.Process.Kill(); _ = hp.Wait() }()

	state := func() string {
		c, err := net.DialTimeout("unix", stats, time.Second)
		if err != nil {
			return ""
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(2 * time.Second))
		fmt.Fprintf(c, "show servers state lazaret\n")
		b, _ := io.ReadAll(c)
		// Columns: be_id be_name srv_id srv_name srv_addr srv_op_state ...
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 5 && f[3] == "node1" {
				return f[5] // 2 = running (up), 0 = stopped (down)
			}
		}
		return ""
	}
	waitState := func(want, what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for state() != want {
			if time.Now().After(deadline) {
				t.Fatalf("haproxy did not mark the node %s (state %q):\n%s", what, state(), hpOut.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitState("2", "up")
	ok(t, env, []byte("Subject: x\r\n\r\nbody\r\n"), "put", "--from", "a@example.org", "--to", "b@example.com")
	waitState("0", "down")
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// fakeStore and fakeReplica stand in for the store and the replicator in
// the threshold tests.
type fakeStore struct{ err error }

func (f fakeStore) Stats() (objstore.Stats, error) { return objstore.Stats{Messages: 7}, nil }
func (f fakeStore) LoadIDLease() (int64, error)    { return 0, f.err }
func (f fakeStore) Dir() string                    { return os.TempDir() }

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
func (f fakeReplica) PushBacklog() (int, int64)        { return 2, 1 }
func (f fakeReplica) RepairQueue() int                 { return 4 }
func (f fakeReplica) Repaired() (int64, int64, int64)  { return 5, 5000, 6 }
func (f fakeReplica) PeerSyncs() []replicator.PeerSync { return f.syncs }

// Each threshold is named when crossed, and only then.
func TestHealthProblems(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	members := []replicator.Member{
		{Number: 1, Name: "mx1", State: replicator.MemberAlive}, {Number: 2, Name: "mx2", State: replicator.MemberFailed},
		{Number: 3, Name: "mx3", State: replicator.MemberAlive}, {Number: 4, Name: "mx4", State: replicator.MemberLeft},
		{Number: 5, Name: "mx5", State: replicator.MemberAlive},
	}
	base := func() HealthConfig {
		c := defaultHealthConfig()
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
		{"under age", func(c *HealthConfig) { c.MaxUnderProtectedAge = Duration(300 * time.Second) },
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
		{"members", nil, sources{store: fakeStore{}, node: fakeReplica{}, members: func() []replicator.Member { return members }},
			[]string{"cluster: 1 of 5 members failed: 2 (mx2) (threshold 0)"}},
		{"members tolerated", func(c *HealthConfig) { c.MaxFailedMembers = 1 },
			sources{store: fakeStore{}, node: fakeReplica{}, members: func() []replicator.Member { return members }}, nil},
		{"reconciled", nil, sources{store: fakeStore{}, node: fakeReplica{syncs: []replicator.PeerSync{{Node: 3, LastSuccess: now.Add(-400 * time.Second)}, {Node: 5, LastSuccess: now.Add(-20 * time.Second)}}},
			members: func() []replicator.Member { return append(members[:1:1], members[2]) }, started: now.Add(-time.Hour)}, nil},
		{"reconcile old", nil, sources{store: fakeStore{}, node: fakeReplica{syncs: []replicator.PeerSync{{Node: 3, LastSuccess: now.Add(-400 * time.Second)}}},
			members: func() []replicator.Member { return append(members[:1:1], members[2]) }, started: now.Add(-time.Hour)},
			[]string{"last metadata reconciliation 400s ago (threshold 300s)"}},
		{"reconcile never", nil, sources{store: fakeStore{}, node: fakeReplica{},
			members: func() []replicator.Member { return append(members[:1:1], members[2]) }, started: now.Add(-time.Hour)},
			[]string{"no metadata reconciliation with any peer since start 3600s ago (threshold 300s)"}},
		{"reconcile grace", nil, sources{store: fakeStore{}, node: fakeReplica{},
			members: func() []replicator.Member { return append(members[:1:1], members[2]) }, started: now.Add(-time.Minute)}, nil},
		{"reconcile alone", nil, sources{store: fakeStore{}, node: fakeReplica{},
			members: func() []replicator.Member { return members[:1:1] }, started: now.Add(-time.Hour)}, nil},
		{"disk", func(c *HealthConfig) { c.MinFreeDisk = 1 << 62 }, sources{store: fakeStore{}, node: fakeReplica{}},
			[]string{"free disk: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			if tc.cfg != nil {
				tc.cfg(&c)
			}
			got := c.problems(tc.src.read(now))
			if len(got) != len(tc.want) {
				t.Fatalf("problems %q, want %q", got, tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Fatalf("problems %q, want %q", got, tc.want)
				}
			}
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
		members: func() []replicator.Member {
			return []replicator.Member{{Number: 1, State: replicator.MemberAlive}, {Number: 2, State: replicator.MemberFailed}, {Number: 3, State: replicator.MemberAlive}}
		}}
	cfg := DefaultConfig()
	cfg.Health.MinFreeDisk = 0
	m := newMonitor(cfg, slog.New(slog.DiscardHandler), lazaret.SystemClock{})
	m.src.p.Store(src)
	srv := httptest.NewServer(m.handler())
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
