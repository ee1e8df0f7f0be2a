package test

import (
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBenchProgress: lazaret bench reports each phase's progress on stderr,
// as plain lines when stderr is not a terminal and as a bar with rate and
// time left on a terminal (a pty made by script(1)).
func TestBenchProgress(t *testing.T) {
	dir := shortTempDir(t)
	node := startServe(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cmd := exec.CommandContext(ctx, binary, "bench", "put", "--socket", node.socket, "--count", "30", "--concurrency", "2")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	for _, phase := range []string{"lazaret put", "fsync"} {
		re := regexp.MustCompile(regexp.QuoteMeta(phase) + `[^:\n]*: 30/30 msgs \(100%\), \d+/s, elapsed \S+ done\n`)
		if !re.MatchString(stderr.String()) {
			t.Errorf("no final progress line for %q on stderr:\n%s", phase, stderr.String())
		}
	}
	if strings.Contains(stdout.String(), "msgs (") {
		t.Errorf("progress went to stdout:\n%s", stdout.String())
	}

	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) for a pty")
	}
	line := binary + " bench put --socket " + node.socket + " --count 30 --concurrency 2"
	out, err := exec.CommandContext(ctx, script, "-qec", line, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("bench on a pty: %v\n%s", err, out)
	}
	// The bar: label, percentage, count, rate and [elapsed:left].
	bar := regexp.MustCompile(`lazaret put +\d+% \|[^|]*\| \(\d+/30, \d+ msgs/s\) \[\d+s:\d+s\]`)
	if !bar.Match(out) {
		t.Errorf("no progress bar on the terminal:\n%q", out)
	}
}
