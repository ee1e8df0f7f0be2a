package test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// deployDir is the repository's deploy/ directory.
func deployDir(t *testing.T) string {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(filepath.Dir(here)), "deploy")
}

// TestPrometheusRules: the alerting rules load, and their unit tests
// (deploy/prometheus/lazaret-alerts.test.yml) pass.
func TestPrometheusRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("needs promtool (package prometheus; run test/deps.sh as root)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(deployDir(t), "prometheus")
	for _, args := range [][]string{{"check", "rules", "lazaret-alerts.yml"}, {"test", "rules", "lazaret-alerts.test.yml"}} {
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestDeployMetricNames: every metric the alerting rules and the Grafana
// dashboard query is one a node exports: read from /metrics of a running
// two-node cluster, or, for the PostgreSQL index figures that appear only
// with an index, from the README's metrics table.
func TestDeployMetricNames(t *testing.T) {
	rules, err := os.ReadFile(filepath.Join(deployDir(t), "prometheus", "lazaret-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	dashText, err := os.ReadFile(filepath.Join(deployDir(t), "grafana", "lazaret.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dashText, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	exprs := string(rules)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs += "\n" + tg.Expr
		}
	}
	names := map[string]bool{}
	for _, n := range regexp.MustCompile(`\b(?:lazaret|process)_[a-z_]+\b`).FindAllString(exprs, -1) {
		names[strings.TrimSuffix(n, "_bucket")] = true
	}
	if len(names) < 20 {
		t.Fatalf("found only %d metric names in the rules and dashboard: %v", len(names), names)
	}

	dir := shortTempDir(t)
	d := startDev(t, dir, 2, "127.44.1.1")
	defer d.stop()
	var body string
	waitFor(t, "a reconciliation between the two nodes", 90*time.Second, func() bool {
		resp, err := http.Get("http://127.44.1.1:9127/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, "\nlazaret_reconcile_last_success_timestamp_seconds{")
	})
	_, here, _, _ := runtime.Caller(0)
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(here)), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for n := range names {
		exported := strings.Contains(body, "\n"+n+"{") || strings.Contains(body, "\n"+n+" ") || strings.Contains(body, "\n"+n+"_bucket{")
		if !exported && strings.HasPrefix(n, "lazaret_index_") && strings.Contains(string(readme), "| `"+n+"`") {
			continue // only on nodes with a PostgreSQL index
		}
		if !exported {
			t.Errorf("%s is queried by deploy/ but not exported by a node", n)
		}
	}
}
