package test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// benchMixBody is a message of the mail-size mix of `lazaret bench`
// (60% 2-20 KB, 30% 20-200 KB, 10% 0.2-5 MB), base64-like text.
func benchMixBody(r *rand.Rand, i int) []byte {
	var size int
	switch p := r.IntN(100); {
	case p < 60:
		size = 2_000 + r.IntN(18_000)
	case p < 90:
		size = 20_000 + r.IntN(180_000)
	default:
		size = 200_000 + r.IntN(4_800_000)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: bench@example.org\r\nTo: user%d@example.com\r\nSubject: fuse bench %d\r\n\r\n", i%100, i)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	line := make([]byte, 78)
	line[76], line[77] = '\r', '\n'
	for b.Len() < size {
		for j := range 76 {
			line[j] = alphabet[r.IntN(len(alphabet))]
		}
		b.Write(line)
	}
	return b.Bytes()
}

// putAll stores bodies with 8 writers and returns their ids in order.
func putAll(t *testing.T, c *rpc.Client, bodies [][]byte, kind lazaret.VerdictKind) []lazaret.ID {
	t.Helper()
	ids := make([]lazaret.ID, len(bodies))
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				m, err := c.Put(context.Background(), lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: kind}}, bytes.NewReader(bodies[i]))
				if err != nil {
					errc <- err
					return
				}
				ids[i] = m.ID
			}
		})
	}
	for i := range bodies {
		select {
		case next <- i:
		case err := <-errc:
			t.Fatal(err)
		}
	}
	close(next)
	wg.Wait()
	return ids
}

func timed(f func()) time.Duration {
	start := time.Now()
	f()
	return time.Since(start)
}

// TestFUSEBenchTable measures the FUSE view against the CLI and the gRPC
// API on one node, same run (make bench-fuse; README "FUSE view"):
// sequential reads of 1,000 messages of the mail mix, readdir of a
// 10,000-message day, copy-in of 1,000 messages.
func TestFUSEBenchTable(t *testing.T) {
	if os.Getenv("LAZARET_FUSE_BENCH") == "" {
		t.Skip("set LAZARET_FUSE_BENCH=1 (make bench-fuse)")
	}
	needFUSE(t, "cp", "cat")
	dir := shortTempDir(t)
	p := startServe(t, dir)
	c := p.client()
	r := rand.New(rand.NewPCG(1, 2))
	n, days := 1000, 10000 // LAZARET_FUSE_BENCH=N,D overrides, for a quick look
	fmt.Sscanf(os.Getenv("LAZARET_FUSE_BENCH"), "%d,%d", &n, &days)
	bodies := make([][]byte, n)
	var total int64
	for i := range bodies {
		bodies[i] = benchMixBody(r, i)
		total += int64(len(bodies[i]))
	}
	ids := putAll(t, c, bodies, lazaret.VerdictSpam)
	mnt := filepath.Join(dir, "mnt")
	startMount(t, p.socket, mnt)
	day := filepath.Join(mnt, time.Now().In(time.Local).Format("20060102"))
	mb := float64(total) / 1e6
	row := func(name string, d time.Duration, base time.Duration) {
		t.Logf("| %-44s | %8.2f s | %7.1f MB/s | %5.2f |", name, d.Seconds(), mb/d.Seconds(), base.Seconds()/d.Seconds())
	}
	t.Logf("%d messages, %.1f MB (mail mix), one node, this machine", n, mb)

	// Reads: the gRPC API and `lazaret get` against the mount, in process
	// and with one process per message (cat).
	apiRead := timed(func() {
		for _, id := range ids {
			_, rc, err := c.Open(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bytes.NewBuffer(nil).ReadFrom(rc); err != nil {
				t.Fatal(err)
			}
			rc.Close()
		}
	})
	mountRead := timed(func() {
		for i, id := range ids {
			b, err := os.ReadFile(filepath.Join(day, "spam", string(id)))
			if err != nil || len(b) != len(bodies[i]) {
				t.Fatalf("%s: %v", id, err)
			}
		}
	})
	cliGet := timed(func() {
		for _, id := range ids {
			if err := exec.Command(binary, "get", "--socket", p.socket, "-o", os.DevNull, string(id)).Run(); err != nil {
				t.Fatal(err)
			}
		}
	})
	startMount(t, p.socket, mnt+"2") // a second mount: its page cache is cold
	day2 := filepath.Join(mnt+"2", filepath.Base(day))
	cat := timed(func() {
		for _, id := range ids {
			if err := exec.Command("cat", filepath.Join(day2, "spam", string(id))).Run(); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("| %-44s | %10s | %13s | %5s |", "read", "time", "rate", "ratio")
	row("gRPC Open, in process (baseline)", apiRead, apiRead)
	row("mount, os.ReadFile in process", mountRead, apiRead)
	row("lazaret get -o /dev/null per id (baseline)", cliGet, cliGet)
	row("mount, cat per file", cat, cliGet)

	// Copy-in: Put over gRPC and `lazaret put` against writes into the
	// mount (in process, and one cp per file).
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	for i, b := range bodies {
		os.WriteFile(filepath.Join(src, fmt.Sprintf("m%04d.eml", i)), b, 0o644)
	}
	apiPut := timed(func() {
		for _, b := range bodies {
			if _, err := c.Put(context.Background(), lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: lazaret.VerdictOther}}, bytes.NewReader(b)); err != nil {
				t.Fatal(err)
			}
		}
	})
	os.MkdirAll(filepath.Join(day, "nonspam"), 0o770)
	mountWrite := timed(func() {
		for i, b := range bodies {
			if err := os.WriteFile(filepath.Join(day, "nonspam", fmt.Sprintf("w%04d.eml", i)), b, 0o660); err != nil {
				t.Fatal(err)
			}
		}
	})
	cliPut := timed(func() {
		for i := range bodies {
			if err := exec.Command(binary, "put", "--socket", p.socket, "--verdict", "other", filepath.Join(src, fmt.Sprintf("m%04d.eml", i))).Run(); err != nil {
				t.Fatal(err)
			}
		}
	})
	os.MkdirAll(filepath.Join(day, "mcp"), 0o770)
	cp := timed(func() {
		for i := range bodies {
			if err := exec.Command("cp", filepath.Join(src, fmt.Sprintf("m%04d.eml", i)), filepath.Join(day, "mcp")).Run(); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Logf("| %-44s | %10s | %13s | %5s |", "copy-in", "time", "rate", "ratio")
	row("gRPC Put, in process (baseline)", apiPut, apiPut)
	row("mount, os.WriteFile in process", mountWrite, apiPut)
	row("lazaret put per file (baseline)", cliPut, cliPut)
	row("mount, cp per file", cp, cliPut)

	// Readdir of a day of 10,000 messages.
	small := make([][]byte, days)
	for i := range small {
		small[i] = []byte(fmt.Sprintf("From: a@example.org\r\nSubject: %d\r\n\r\nsmall body %d\r\n", i, i))
	}
	putAll(t, c, small, lazaret.VerdictPolicy)
	mcp := filepath.Join(day, "mcp")
	count := func() int {
		es, err := os.ReadDir(mcp)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	var got int
	cold := timed(func() { got = count() })
	warm := timed(func() { count() })
	time.Sleep(1100 * time.Millisecond) // past ListTTL: listed again from the node
	relist := timed(func() { count() })
	if got < days {
		t.Fatalf("readdir listed %d", got)
	}
	t.Logf("readdir of %d entries: first %v, warm %v, after ListTTL %v", got, cold.Round(time.Millisecond), warm.Round(time.Millisecond), relist.Round(time.Millisecond))
	find := timed(func() {
		if out, err := exec.Command("find", mnt, "-type", "f", "-mtime", "+30").CombinedOutput(); err != nil {
			t.Fatalf("find: %v %s", err, out)
		}
	})
	t.Logf("find over the tree (%d files, metadata only): %v", got+2*n+n, find.Round(time.Millisecond))
}
