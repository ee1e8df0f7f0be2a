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
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/progress"
	"github.com/lazaret/lazaret/proto/rpc"
	"github.com/lazaret/lazaret/replicator/erasure"
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

// progressFunc starts reporting the progress of a phase (Main.progress).
type progressFunc func(label, unit string, total int64) *progress.Reporter

// runParallel calls op(i) for i in [0, n) from conc goroutines and times
// it, showing its progress through report.
func runParallel(name string, n, conc int, size func(i int) int, report progressFunc, op func(i int) error) (benchResult, error) {
	rep := report(name, "msgs", int64(n))
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

// benchRun is one `lazaret bench`: its options, the node, the generated
// bodies and the ids they were stored under.
type benchRun struct {
	socket   string
	mode     string // put, get or all
	count    int
	conc     int
	seed     uint64
	baseDir  string
	smtpAddr string
	codeFlag string
	progress progressFunc
	keep     string   // --keep: write the put phase's ids here, keep the messages
	idsFile  string   // --ids: get the messages of an earlier --keep run
	metrics  []string // --metrics: the nodes' /metrics URLs

	kept   []lazaret.ID // read from --ids
	c      *rpc.Client
	st     *lazaret.NodeStatus
	scale  float64 // (k+m)/k: the baseline writes as many bytes as the cluster
	bodies [][]byte
	ids    []lazaret.ID    // stored through the API
	smtp   []lazaret.ID    // stored through the SMTP filter
	writes func(io.Writer) // reports the stores' write costs (--metrics)
}

func (b *benchRun) size(i int) int { return len(b.bodies[i]) }

// bench measures put and get throughput against a running node, beside a
// same-run baseline of fsync'd file writes of the same bytes on the same disk.
func (m *Main) bench(ctx context.Context, args []string) error {
	b, err := m.benchFlags(args)
	if err != nil {
		return err
	}
	if b.c, err = dial(b.socket); err != nil {
		return err
	}
	defer b.c.Close()
	if err := b.prepare(ctx, m.Stdout); err != nil {
		return err
	}
	if b.keep == "" && b.idsFile == "" {
		defer b.deleteAll(ctx) // leave the node as found
	}
	results, err := b.run(ctx)
	if err != nil {
		return err
	}
	b.report(m.Stdout, results)
	return nil
}

// benchFlags parses the command line.
func (m *Main) benchFlags(args []string) (*benchRun, error) {
	fs := m.newFlags("bench", "put|get|all")
	socket := m.socketFlag(fs)
	count := fs.Int("count", 1000, "messages per phase")
	conc := fs.Int("concurrency", 8, "concurrent clients")
	seed := fs.Uint64("seed", 1, "random seed for sizes and contents")
	baseDir := fs.String("baseline-dir", "", "directory for the fsync baseline (default: beside the node's data directory)")
	smtpAddr := fs.String("smtp", "", "also measure SMTP ingest through the node's SMTP filter at ADDR (bench_smtp.go)")
	codeFlag := fs.String("code", "", `erasure code "k+m" the cluster uses, for the baseline's (k+m)/k bytes; default: by cluster size`)
	keep := fs.String("keep", "", "write the ids of the put phase to FILE and keep the messages (for a later get --ids FILE)")
	idsFile := fs.String("ids", "", "get: read the messages of an earlier --keep FILE run instead of putting new ones (--count and --seed come from FILE)")
	metrics := fs.String("metrics", "", "comma-separated /metrics URLs of the nodes (e.g. http://127.0.0.1:9127/metrics): report the syncs and bytes the put phase cost their stores")
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	mode := "all"
	if len(pos) == 1 {
		mode = pos[0]
	}
	if len(pos) > 1 || (mode != "put" && mode != "get" && mode != "all") {
		return nil, usagef("want put, get or all")
	}
	if *count <= 0 || *conc <= 0 {
		return nil, usagef("--count and --concurrency must be positive")
	}
	b := &benchRun{socket: *socket, mode: mode, count: *count, conc: *conc, seed: *seed, baseDir: *baseDir, smtpAddr: *smtpAddr, codeFlag: *codeFlag, progress: m.progress, keep: *keep, idsFile: *idsFile}
	if *metrics != "" {
		b.metrics = strings.Split(*metrics, ",")
	}
	switch {
	case b.idsFile != "" && mode != "get":
		return nil, usagef("--ids FILE is for the get phase alone: lazaret bench --ids FILE get")
	case b.idsFile != "" && (b.keep != "" || b.smtpAddr != ""):
		return nil, usagef("--ids reads kept messages: it takes no --keep or --smtp")
	case b.keep != "" && mode == "get":
		return nil, usagef("--keep keeps the put phase's messages: use it with put or all")
	}
	if b.idsFile != "" {
		seed, ids, err := readKept(b.idsFile)
		if err != nil {
			return nil, err
		}
		b.seed, b.count, b.kept = seed, len(ids), ids
	}
	return b, nil
}

// prepare asks the node for its status, picks the baseline's directory and
// scale, and generates the bodies.
func (b *benchRun) prepare(ctx context.Context, stdout io.Writer) error {
	st, err := b.c.Status(ctx)
	if err != nil {
		return err
	}
	b.st = st
	if b.baseDir == "" {
		b.baseDir = filepath.Join(filepath.Dir(st.DataDir), "bench-baseline")
	}
	code, err := benchCode(b.codeFlag, st)
	if err != nil {
		return err
	}
	b.scale = float64(code.K+code.M) / float64(code.K)
	r := rand.New(rand.NewPCG(b.seed, 0))
	b.bodies = make([][]byte, b.count)
	var total int64
	for i := range b.bodies {
		b.bodies[i] = benchBody(r, i, mixSize(r))
		total += int64(len(b.bodies[i]))
	}
	b.ids = make([]lazaret.ID, b.count)
	if b.kept != nil {
		copy(b.ids, b.kept)
	}
	fmt.Fprintf(stdout, "lazaret bench: %d messages (%.1f MB, mix 60%% 2-20KB / 30%% 20-200KB / 10%% 0.2-5MB), concurrency %d, node %d (%s), code %d+%d\n",
		b.count, float64(total)/1e6, b.conc, st.Node, st.Name, code.K, code.M)
	return nil
}

// benchCode is the code the cluster stores with: --code, or the default
// for the members that have not left.
func benchCode(flag string, st *lazaret.NodeStatus) (erasure.Code, error) {
	code, err := erasure.ParsePolicy(flag)
	if err != nil {
		return code, usagef("--code: %v", err)
	}
	if code.K == 0 {
		size := 0
		for _, mem := range st.Members {
			if mem.State != "left" {
				size++
			}
		}
		code = erasure.DefaultCode(size)
	}
	return code, nil
}

// run runs the phases the mode asks for and returns their results in
// table order: puts (API, SMTP), the fsync baseline, gets, file reads.
func (b *benchRun) run(ctx context.Context) ([]benchResult, error) {
	var results []benchResult
	if b.kept == nil {
		put, err := b.measuredPuts(ctx)
		if err != nil {
			return nil, err
		}
		if b.mode != "get" {
			results = append(results, put)
		}
	}
	if b.smtpAddr != "" && b.mode != "get" {
		sres, err := b.smtpPuts()
		if err != nil {
			return nil, err
		}
		results = append(results, sres)
	}
	if err := os.MkdirAll(b.baseDir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(b.baseDir)
	fsyncRes, err := b.baseline()
	if err != nil {
		return nil, err
	}
	if b.mode != "get" {
		results = append(results, fsyncRes)
	}
	if b.mode != "put" {
		get, read, err := b.gets(ctx)
		if err != nil {
			return nil, err
		}
		results = append(results, get, read)
	}
	return results, nil
}

// puts stores every body through the API.
func (b *benchRun) puts(ctx context.Context) (benchResult, error) {
	return runParallel("lazaret put", b.count, b.conc, b.size, b.progress, func(i int) error {
		md, err := b.c.Put(ctx, lazaret.PutRequest{Sender: "bench@example.org", Recipients: []string{"user@example.com"},
			Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 9}, Actor: "bench"}, bytes.NewReader(b.bodies[i]))
		if err == nil {
			b.ids[i] = md.ID
		}
		return err
	})
}

// measuredPuts runs the put phase, reading the stores' write counters
// around it (--metrics), and writes the ids (--keep).
func (b *benchRun) measuredPuts(ctx context.Context) (benchResult, error) {
	var before storeWrites
	if len(b.metrics) > 0 {
		var err error
		if before, err = scrapeWrites(ctx, b.metrics); err != nil {
			return benchResult{}, err
		}
	}
	put, err := b.puts(ctx)
	if err != nil {
		return put, err
	}
	if len(b.metrics) > 0 {
		after, err := scrapeWrites(ctx, b.metrics)
		if err != nil {
			return put, err
		}
		b.writes = func(w io.Writer) { reportWrites(w, before, after, put.msgs, put.bytes, len(b.metrics)) }
	}
	if b.keep != "" {
		return put, writeKept(b.keep, b.seed, b.ids)
	}
	return put, nil
}

// smtpPuts stores every body again through the SMTP filter.
func (b *benchRun) smtpPuts() (benchResult, error) {
	sb := make([][]byte, len(b.bodies))
	for i := range b.bodies {
		sb[i] = smtpBody(b.bodies[i])
	}
	sres, sids, err := benchSMTP(b.smtpAddr, sb, b.conc, b.progress)
	b.smtp = sids
	return sres, err
}

// baseline writes every body, scaled, as an fsync'd file.
func (b *benchRun) baseline() (benchResult, error) {
	name := "fsync'd file writes"
	if b.scale != 1 {
		name = fmt.Sprintf("fsync'd file writes x%.2f", b.scale)
	}
	return runParallel(name, b.count, b.conc, b.size, b.progress, func(i int) error {
		return writeSynced(filepath.Join(b.baseDir, fmt.Sprintf("m%d", i)), scaled(b.bodies[i], b.scale))
	})
}

// gets reads every message back through the API, checking its bytes, and
// reads the baseline's files.
func (b *benchRun) gets(ctx context.Context) (get, read benchResult, err error) {
	get, err = runParallel("lazaret get", b.count, b.conc, b.size, b.progress, func(i int) error {
		_, body, err := b.c.Open(ctx, b.ids[i])
		if err != nil {
			return err
		}
		defer body.Close()
		h := sha256.New()
		if _, err := io.Copy(h, body); err != nil {
			return err
		}
		if [32]byte(h.Sum(nil)) != sha256.Sum256(b.bodies[i]) {
			return fmt.Errorf("get %s: wrong bytes", b.ids[i])
		}
		return nil
	})
	if err != nil {
		return get, read, err
	}
	read, err = runParallel("file reads", b.count, b.conc, b.size, b.progress, func(i int) error {
		_, err := os.ReadFile(filepath.Join(b.baseDir, fmt.Sprintf("m%d", i)))
		return err
	})
	return get, read, err
}

// report prints the table and the put/baseline ratio.
func (b *benchRun) report(w io.Writer, results []benchResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tmsgs/s\tMB/s\tp50 ms\tp99 ms\t")
	var put, base benchResult
	for _, res := range results {
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%.2f\t%.2f\t\n", res.name, res.perSec(), res.mbps(),
			float64(res.pct(0.50).Microseconds())/1000, float64(res.pct(0.99).Microseconds())/1000)
		switch {
		case res.name == "lazaret put":
			put = res
		case strings.HasPrefix(res.name, "fsync'd file writes"):
			base = res
		}
	}
	tw.Flush()
	if b.mode != "get" {
		fmt.Fprintf(w, "put / fsync baseline: %.2f (msgs/s ratio)\n", put.perSec()/base.perSec())
	}
	if b.writes != nil {
		b.writes(w)
	}
}

// deleteAll deletes the messages the benchmark stored.
func (b *benchRun) deleteAll(ctx context.Context) {
	for _, id := range append(b.ids, b.smtp...) {
		if id != "" {
			b.c.Delete(ctx, id, "bench")
		}
	}
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
