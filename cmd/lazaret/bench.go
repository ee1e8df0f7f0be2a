package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator"
)

// The benchmark's mail-size mix, typical of a quarantine: mostly small spam,
// some HTML newsletters, a few messages with attachments.
//
//	60%   2 KB –  20 KB
//	30%  20 KB – 200 KB
//	10% 200 KB –   5 MB
var sizeMix = []struct {
	share    int // percent
	min, max int // bytes
}{
	{60, 2_000, 20_000},
	{30, 20_000, 200_000},
	{10, 200_000, 5_000_000},
}

func mixSize(r *rand.Rand) int {
	p := r.IntN(100)
	for _, b := range sizeMix {
		if p < b.share {
			return b.min + r.IntN(b.max-b.min)
		}
		p -= b.share
	}
	panic("size mix does not add up to 100")
}

// benchBody builds a message of about size bytes: a header and base64-ish
// lines, so it compresses like real mail, not like zeros.
func benchBody(r *rand.Rand, i, size int) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var b bytes.Buffer
	b.Grow(size + 80)
	fmt.Fprintf(&b, "From: bench@example.org\r\nTo: user%d@example.com\r\nSubject: bench message %d\r\nMessage-ID: <bench%d@example.org>\r\n\r\n", i%100, i, i)
	line := make([]byte, 76)
	for b.Len() < size {
		for j := range line {
			line[j] = alphabet[r.IntN(len(alphabet))]
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

type benchResult struct {
	name      string
	msgs      int
	bytes     int64
	elapsed   time.Duration
	latencies []time.Duration
}

func (r benchResult) perSec() float64 { return float64(r.msgs) / r.elapsed.Seconds() }
func (r benchResult) mbps() float64   { return float64(r.bytes) / 1e6 / r.elapsed.Seconds() }
func (r benchResult) pct(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	s := slices.Clone(r.latencies)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// runParallel calls op(i) for i in [0, n) from conc goroutines and times
// it, showing its progress on stderr.
func (m *Main) runParallel(name string, n, conc int, size func(i int) int, op func(i int) error) (benchResult, error) {
	rep := m.progress(name, "msgs", int64(n))
	defer rep.Finish()
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var total atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				if err := op(i); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("%s #%d: %w", name, i, err) })
					next.Store(int64(n))
					return
				}
				lat[i] = time.Since(t0)
				total.Add(int64(size(i)))
				rep.Add(1)
			}
		}()
	}
	wg.Wait()
	return benchResult{name: name, msgs: n, bytes: total.Load(), elapsed: time.Since(start), latencies: lat}, firstErr
}

// bench measures put and get throughput against a running node, beside a
// same-run baseline of fsync'd file writes of the same bytes on the same disk.
func (m *Main) bench(ctx context.Context, args []string) error {
	fs := m.newFlags("bench", "put|get|all")
	socket := m.socketFlag(fs)
	count := fs.Int("count", 1000, "messages per phase")
	conc := fs.Int("concurrency", 8, "concurrent clients")
	seed := fs.Uint64("seed", 1, "random seed for sizes and contents")
	baseDir := fs.String("baseline-dir", "", "directory for the fsync baseline (default: beside the node's data directory)")
	smtpAddr := fs.String("smtp", "", "also measure SMTP ingest through the node's SMTP filter at ADDR (bench_smtp.go)")
	codeFlag := fs.String("code", "", `erasure code "k+m" the cluster uses, for the baseline's (k+m)/k bytes; default: by cluster size`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	mode := "all"
	if len(pos) == 1 {
		mode = pos[0]
	}
	if len(pos) > 1 || (mode != "put" && mode != "get" && mode != "all") {
		return usagef("want put, get or all")
	}
	if *count <= 0 || *conc <= 0 {
		return usagef("--count and --concurrency must be positive")
	}
	c, err := dial(*socket)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *baseDir == "" {
		*baseDir = filepath.Join(filepath.Dir(st.DataDir), "bench-baseline")
	}
	// A cluster stores (k+m)/k times the bytes; the baseline writes as much.
	code, err := replicator.ParsePolicy(*codeFlag)
	if err != nil {
		return usagef("--code: %v", err)
	}
	if code.K == 0 {
		size := 0
		for _, mem := range st.Members {
			if mem.State != "left" {
				size++
			}
		}
		code = replicator.DefaultCode(size)
	}
	scale := float64(code.K+code.M) / float64(code.K)

	r := rand.New(rand.NewPCG(*seed, 0))
	bodies := make([][]byte, *count)
	for i := range bodies {
		bodies[i] = benchBody(r, i, mixSize(r))
	}
	size := func(i int) int { return len(bodies[i]) }
	var total int64
	for _, b := range bodies {
		total += int64(len(b))
	}
	fmt.Fprintf(m.Stdout, "lazaret bench: %d messages (%.1f MB, mix 60%% 2-20KB / 30%% 20-200KB / 10%% 0.2-5MB), concurrency %d, node %d (%s), code %d+%d\n",
		*count, float64(total)/1e6, *conc, st.Node, st.Name, code.K, code.M)

	var results []benchResult
	ids := make([]lazaret.ID, *count)
	put, err := m.runParallel("lazaret put", *count, *conc, size, func(i int) error {
		md, err := c.Put(ctx, lazaret.PutRequest{Sender: "bench@example.org", Recipients: []string{"user@example.com"},
			Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 9}, Actor: "bench"}, bytes.NewReader(bodies[i]))
		if err == nil {
			ids[i] = md.ID
		}
		return err
	})
	if err != nil {
		return err
	}
	if mode != "get" {
		results = append(results, put)
	}
	if *smtpAddr != "" && mode != "get" {
		sb := make([][]byte, len(bodies))
		for i := range bodies {
			sb[i] = smtpBody(bodies[i])
		}
		sres, sids, err := m.benchSMTP(*smtpAddr, sb, *conc)
		for _, id := range sids {
			if id != "" {
				defer c.Delete(ctx, id, "bench")
			}
		}
		if err != nil {
			return err
		}
		results = append(results, sres)
	}
	if err := os.MkdirAll(*baseDir, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(*baseDir)
	baseName := "fsync'd file writes"
	if scale != 1 {
		baseName = fmt.Sprintf("fsync'd file writes x%.2f", scale)
	}
	fsyncRes, err := m.runParallel(baseName, *count, *conc, size, func(i int) error {
		return writeSynced(filepath.Join(*baseDir, fmt.Sprintf("m%d", i)), scaled(bodies[i], scale))
	})
	if err != nil {
		return err
	}
	if mode != "get" {
		results = append(results, fsyncRes)
	}
	if mode != "put" {
		get, err := m.runParallel("lazaret get", *count, *conc, size, func(i int) error {
			_, body, err := c.Open(ctx, ids[i])
			if err != nil {
				return err
			}
			defer body.Close()
			h := sha256.New()
			if _, err := io.Copy(h, body); err != nil {
				return err
			}
			if [32]byte(h.Sum(nil)) != sha256.Sum256(bodies[i]) {
				return fmt.Errorf("get %s: wrong bytes", ids[i])
			}
			return nil
		})
		if err != nil {
			return err
		}
		read, err := m.runParallel("file reads", *count, *conc, size, func(i int) error {
			_, err := os.ReadFile(filepath.Join(*baseDir, fmt.Sprintf("m%d", i)))
			return err
		})
		if err != nil {
			return err
		}
		results = append(results, get, read)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tmsgs/s\tMB/s\tp50 ms\tp99 ms\t")
	for _, res := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.2f\t%.2f\t\n", res.name, res.perSec(), res.mbps(),
			float64(res.pct(0.50).Microseconds())/1000, float64(res.pct(0.99).Microseconds())/1000)
	}
	tw.Flush()
	if mode != "get" {
		fmt.Fprintf(m.Stdout, "put / fsync baseline: %.2f (msgs/s ratio)\n", put.perSec()/fsyncRes.perSec())
	}
	// Leave the node as found: the benchmark's messages are deleted.
	for _, id := range ids {
		if id != "" {
			c.Delete(ctx, id, "bench")
		}
	}
	return nil
}

// scaled returns b extended (by repeating it) to scale times its length.
func scaled(b []byte, scale float64) []byte {
	if scale == 1 {
		return b
	}
	n := int(float64(len(b)) * scale)
	out := make([]byte, 0, n)
	for len(out) < n {
		out = append(out, b[:min(len(b), n-len(out))]...)
	}
	return out
}

// writeSynced is the baseline: what a plain file-per-message quarantine does
// to make a message durable (write, fsync the file, fsync the directory).
func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
