package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/internal/metricstest"
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

// The monitoring endpoint's readers (internal/metricstest).
var (
	httpGet       = metricstest.Get
	scrape        = metricstest.Scrape
	promtoolCheck = metricstest.Promtool
	wantSample    = metricstest.WantSample
)

// healthBody is the JSON answer of /health and /ready (daemon/monitor.go).
type healthBody struct {
	Status   string   `json:"status"`
	Node     int      `json:"node"`
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Problems []string `json:"problems,omitempty"`
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
	if code != http.StatusServiceUnavailable || h.Status != "degraded" || !slices.Contains(h.Problems, wantProblem) {
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
