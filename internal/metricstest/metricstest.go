// Package metricstest reads a node's monitoring endpoint in tests: GET a
// URL, scrape /metrics into samples, check the text with promtool.
package metricstest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

var client = &http.Client{Timeout: 10 * time.Second}

// Get fetches url and returns the status code and body.
func Get(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := client.Get(url)
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

// Scrape fetches http://addr/metrics and returns its text and the value of
// each sample, keyed by the sample's text up to the value (`name{labels}`).
func Scrape(t testing.TB, addr string) (string, map[string]float64) {
	t.Helper()
	code, b := Get(t, "http://"+addr+"/metrics")
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

// Promtool runs `promtool check metrics` on text. promtool comes with
// Debian's prometheus package (test/deps.sh installs it); only a test run
// that could not install it (not root) skips the check.
func Promtool(t testing.TB, text string) {
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

// WantSample checks that samples holds key with value v.
func WantSample(t testing.TB, samples map[string]float64, key string, v float64) {
	t.Helper()
	got, ok := samples[key]
	if !ok {
		t.Errorf("/metrics has no %s", key)
	} else if got != v {
		t.Errorf("%s = %v, want %v", key, got, v)
	}
}
