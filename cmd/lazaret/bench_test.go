package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lazaret/lazaret"
)

// bench --keep FILE put keeps its messages and writes their ids; a later
// bench --ids FILE get reads those same messages back (checking their bytes)
// without putting new ones. --metrics reports the stores' write costs.
func TestBenchKeepThenGetIDs(t *testing.T) {
	dir := shortDir(t)
	cfg := writeConfig(t, `
[http]
listen = "127.47.0.1:0"
[health]
min_free_disk = "0"
`)
	socket := filepath.Join(dir, "s")
	n := startServe(t, filepath.Join(dir, "data"), socket, "--config", cfg)
	addr := httpAddr(t, n)
	env := map[string]string{"LAZARET_SOCKET": socket}
	kept := filepath.Join(dir, "ids")
	// bench reports its progress on stderr: only the exit code counts.
	bench := func(args ...string) string {
		t.Helper()
		r := lz(t, env, nil, append([]string{"bench"}, args...)...)
		if r.code != 0 {
			t.Fatalf("lazaret bench %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
		}
		return r.stdout
	}

	out := bench("--count", "6", "--concurrency", "2", "--seed", "3", "--keep", kept,
		"--metrics", "http://"+addr+"/metrics", "put")
	for _, want := range []string{"lazaret put", "fsync'd file writes", "6 messages acknowledged by a store", "synced commits per message put", "value log"} {
		if !strings.Contains(out, want) {
			t.Errorf("bench put output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("bench put:\n%s", out)
	b, err := os.ReadFile(kept)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 7 || lines[0] != "# lazaret bench ids: seed 3 count 6" {
		t.Fatalf("kept ids file:\n%s", b)
	}
	var page struct {
		Messages []*lazaret.Metadata `json:"messages"`
	}
	if err := json.Unmarshal([]byte(ok(t, env, nil, "ls", "--json")), &page); err != nil || len(page.Messages) != 6 {
		t.Fatalf("after bench --keep the node holds %d messages (%v), want 6", len(page.Messages), err)
	}
	for _, m := range page.Messages {
		if !strings.Contains(string(b), string(m.ID)+"\n") {
			t.Errorf("message %s is not in the kept ids file", m.ID)
		}
	}

	// The get phase alone, from the file: same bodies regenerated and checked.
	out = bench("--ids", kept, "--concurrency", "2", "get")
	if !strings.Contains(out, "lazaret get") || strings.Contains(out, "lazaret put") {
		t.Errorf("bench --ids get output:\n%s", out)
	}
	// Twice: the messages stay for the next get phase.
	bench("--ids", kept, "get")

	// A file whose ids the node does not hold, or that is not an ids file,
	// fails clearly.
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("not ids\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, env, nil, 1, []string{"--ids", "header"}, "bench", "--ids", bad, "get")
	fails(t, env, nil, 2, []string{"--ids"}, "bench", "--ids", kept, "put")
}
