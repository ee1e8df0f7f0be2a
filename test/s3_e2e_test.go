package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// The S3 tests run real clients (rclone, aws cli, curl: test/deps.sh)
// against `lazaret dev` clusters on 127.42.0.0/16 with the S3 API on every
// node (port 9000).

// s3Dev is a dev cluster with its S3 endpoints and dev key.
type s3Dev struct {
	*devCluster
	ak, sk    string
	awsConfig string // an empty aws cli config (path-style addressing)
}

var devKeyRE = regexp.MustCompile(`access key (\S+)  secret (\S+)`)

func startS3Dev(t *testing.T, first string, extra ...string) *s3Dev {
	t.Helper()
	d := startDev(t, shortTempDir(t), 3, first, append([]string{"--s3-nodes", "3"}, extra...)...)
	var m []string
	for deadline := time.Now().Add(20 * time.Second); m == nil; time.Sleep(100 * time.Millisecond) {
		if m = devKeyRE.FindStringSubmatch(d.out.String()); m == nil && time.Now().After(deadline) {
			t.Fatalf("lazaret dev printed no S3 key:\n%s", d.out.String())
		}
	}
	cfg := filepath.Join(d.dir, "aws-config")
	if err := os.WriteFile(cfg, []byte("[default]\ns3 =\n  addressing_style = path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &s3Dev{devCluster: d, ak: m[1], sk: m[2], awsConfig: cfg}
}

// endpoint is node k's S3 API.
func (d *s3Dev) endpoint(k int) string {
	ip := strings.TrimSuffix(d.first, ".1") + "." + strconv.Itoa(k)
	return "http://" + ip + ":9000"
}

// env is the environment for rclone (remote "lz") and aws against node k.
func (d *s3Dev) env(k int) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		// A CA bundle from the environment breaks rclone's plain-HTTP
		// transport ("LoadCustomCABundleError").
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "RCLONE_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"RCLONE_CONFIG_LZ_TYPE=s3", "RCLONE_CONFIG_LZ_PROVIDER=Minio", "RCLONE_CONFIG_LZ_REGION=us-east-1",
		"RCLONE_CONFIG_LZ_ENDPOINT="+d.endpoint(k), "RCLONE_CONFIG_LZ_ACCESS_KEY_ID="+d.ak, "RCLONE_CONFIG_LZ_SECRET_ACCESS_KEY="+d.sk,
		"AWS_ACCESS_KEY_ID="+d.ak, "AWS_SECRET_ACCESS_KEY="+d.sk, "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE="+d.awsConfig, "AWS_SHARED_CREDENTIALS_FILE="+d.awsConfig, "AWS_PAGER=",
	)
}

// run runs a client command against node k with a deadline; it returns
// its standard output, and its standard error too when it fails.
func (d *s3Dev) run(t *testing.T, k int, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if name == "aws" {
		args = append([]string{"--endpoint-url", d.endpoint(k)}, args...)
	}
	cmd := exec.CommandContext(ctx, clientBin[name], args...)
	cmd.Env = d.env(k)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String() + errOut.String(), err
	}
	return out.String(), nil
}

func (d *s3Dev) mustRun(t *testing.T, k int, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	out, err := d.run(t, k, timeout, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// clientBin holds the clients' paths (aws from Debian's awscli: an aws
// cli v1 earlier in PATH would test something else).
var clientBin = map[string]string{}

func needS3Clients(t *testing.T) {
	t.Helper()
	bins := needBinaries(t, "rclone", "curl")
	clientBin["rclone"], clientBin["curl"] = bins["rclone"], bins["curl"]
	if _, err := os.Stat("/usr/bin/aws"); err != nil {
		t.Skip("/usr/bin/aws (Debian awscli) not installed; run test/deps.sh as root")
	}
	clientBin["aws"] = "/usr/bin/aws"
}

// s3Messages is how many messages the backup test puts: 200 in make test,
// the 1,000 with LAZARET_S3_MESSAGES=1000.
func s3Messages(t *testing.T) int { return envCount(t, "LAZARET_S3_MESSAGES", 200, 20) }

// putMix puts n messages of the size mix with verdicts and several
// recipients through the nodes' APIs, learns every 10th as spam, releases
// every 7th and deletes every 13th. It returns the live messages' body
// checksums by id.
func putMix(t *testing.T, d *devCluster, n int, seed uint64) map[lazaret.ID][32]byte {
	t.Helper()
	clients := []*rpc.Client{d.client(1), d.client(2), d.client(3)}
	var mu sync.Mutex
	sums := map[lazaret.ID][32]byte{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	err := parallel(n, 4, func(i int) error {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		size := ecSize(r)
		if i == 0 {
			size = 9 << 20 // above awscli's multipart threshold: ranged GETs
		}
		body := mixBody(r, i, size)
		rcpts := []string{fmt.Sprintf("u%d@example.com", i)}
		for j := range r.IntN(3) {
			rcpts = append(rcpts, fmt.Sprintf("v%d-%d@example.net", i, j))
		}
		c := clients[i%3]
		m, err := c.Put(ctx, lazaret.PutRequest{
			Sender: fmt.Sprintf("s%d@example.org", i), Recipients: rcpts, ClientIP: "192.0.2.7", Helo: "mx.example.org",
			Verdict: lazaret.Verdict{Kind: lazaret.VerdictKind(r.IntN(5)), Score: float64(r.IntN(300)) / 10, Scanner: "spamassassin", Report: "BAYES_99"},
			Actor:   "test",
		}, bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("put %d: %w", i, err)
		}
		switch {
		case i%13 == 5:
			_, err = c.Delete(ctx, m.ID, "test")
			return err
		case i%10 == 3:
			_, err = c.Learn(ctx, m.ID, lazaret.LearnSpam, "test")
		case i%7 == 2:
			_, err = c.Release(ctx, m.ID, nil, "test")
		}
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		mu.Lock()
		sums[m.ID] = sha256.Sum256(body)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

// mixBody is a message of about size bytes.
func mixBody(r *rand.Rand, i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: s%d@example.org\r\nTo: u%d@example.com\r\nSubject: offer %d =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <%d.%d@example.org>\r\nDate: Sun, 06 Dec 2026 01:02:03 +0100\r\n\r\n", i, i, i, i, r.Uint64())
	line := make([]byte, 76)
	for b.Len() < size {
		for j := range line {
			line[j] = byte('!' + r.IntN(94))
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// sameMeta compares what a restore must bring back.
func sameMeta(a, b *lazaret.Metadata) string {
	switch {
	case a.ID != b.ID || a.Node != b.Node || !a.Received.Equal(b.Received):
		return "id, node or received"
	case a.Sender != b.Sender || !slices.Equal(a.Recipients, b.Recipients) || a.ClientIP != b.ClientIP || a.Helo != b.Helo:
		return "envelope"
	case a.From != b.From || a.To != b.To || a.Subject != b.Subject || !a.Date.Equal(b.Date) || a.MessageID != b.MessageID:
		return "header fields"
	case a.Size != b.Size || a.SHA256 != b.SHA256 || a.MD5 != b.MD5:
		return "size or checksums"
	case a.Verdict != b.Verdict || a.State != b.State || a.LearnedAs != b.LearnedAs:
		return "verdict, state or learned-as"
	case len(a.History) != len(b.History):
		return "history length"
	}
	for i := range a.History {
		x, y := a.History[i], b.History[i]
		if !x.Time.Equal(y.Time) || x.Actor != y.Actor || x.Action != y.Action || x.Detail != y.Detail || x.Node != y.Node || x.Request != y.Request {
			return fmt.Sprintf("history event %d", i)
		}
	}
	return ""
}

func countLines(s string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			n++
		}
	}
	return n
}

// TestS3BackupRestore is the disaster-recovery round trip of issue 12 with
// real clients: a 3-node cluster with messages of the size mix (verdicts,
// several recipients, learns, releases, deletes) is listed and read with
// rclone, aws cli and curl from every node, backed up with `rclone sync`
// (and again while a node dies), and copied back into a brand-new empty
// cluster, where every message has its body, id, metadata and history and
// `lazaret ls` shows the same list.
func TestS3BackupRestore(t *testing.T) {
	needS3Clients(t)
	sink, sinkAddr := startSink(t)
	_ = sink
	a := startS3Dev(t, "127.42.0.1", "--relay", sinkAddr)
	n := s3Messages(t)
	start := time.Now()
	sums := putMix(t, a.devCluster, n, 12)
	t.Logf("put %d messages (%d live) in %v", n, len(sums), time.Since(start).Round(time.Millisecond))
	live := len(sums)
	// Metadata reaches the other nodes asynchronously; wait until every
	// node's S3 API lists every live message.
	for k := 1; k <= 3; k++ {
		waitFor(t, fmt.Sprintf("node %d lists %d keys", k, 2*live), 60*time.Second, func() bool {
			out, err := a.run(t, k, time.Minute, "rclone", "lsf", "-R", "--files-only", "lz:quarantine")
			return err == nil && countLines(out) == 2*live
		})
	}

	// aws cli: ls, head-object, cp (ranged GETs above 8 MiB), sync of a day, presign + curl.
	if out := a.mustRun(t, 3, time.Minute, "aws", "s3", "ls"); !strings.Contains(out, "quarantine") {
		t.Fatalf("aws s3 ls (ListBuckets): %q", out)
	}
	if out := a.mustRun(t, 3, time.Minute, "rclone", "lsd", "lz:"); !strings.Contains(out, "quarantine") {
		t.Fatalf("rclone lsd: %q", out)
	}
	out := a.mustRun(t, 2, time.Minute, "aws", "s3", "ls", "--recursive", "s3://quarantine/")
	if countLines(out) != 2*live {
		t.Fatalf("aws s3 ls: %d lines, want %d", countLines(out), 2*live)
	}
	var big *lazaret.Metadata
	c1 := a.client(1)
	for id := range sums {
		m, err := c1.Stat(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if big == nil || m.Size > big.Size {
			big = m
		}
	}
	key := big.Received.UTC().Format("2006/01/02/") + string(big.ID) + ".eml"
	out = a.mustRun(t, 3, time.Minute, "aws", "s3api", "head-object", "--bucket", "quarantine", "--key", key)
	if !strings.Contains(out, fmt.Sprintf(`"ContentLength": %d`, big.Size)) || !strings.Contains(out, fmt.Sprintf(`%x`, big.MD5)) {
		t.Fatalf("head-object: %s", out)
	}
	tmp := t.TempDir()
	a.mustRun(t, 3, 2*time.Minute, "aws", "s3", "cp", "s3://quarantine/"+key, filepath.Join(tmp, "big.eml"))
	if b, _ := os.ReadFile(filepath.Join(tmp, "big.eml")); sha256.Sum256(b) != sums[big.ID] {
		t.Fatalf("aws s3 cp of %d bytes differs", big.Size)
	}
	day := big.Received.UTC().Format("2006/01/02/")
	a.mustRun(t, 1, 5*time.Minute, "aws", "s3", "sync", "s3://quarantine/"+day, filepath.Join(tmp, "day"))
	files, _ := filepath.Glob(filepath.Join(tmp, "day", "*"))
	if len(files) != 2*live { // every message was received today
		t.Fatalf("aws s3 sync of %s: %d files, want %d", day, len(files), 2*live)
	}
	url := strings.TrimSpace(a.mustRun(t, 2, time.Minute, "aws", "s3", "presign", "--expires-in", "60", "s3://quarantine/"+key))
	a.mustRun(t, 2, time.Minute, "curl", "-sSf", "-o", filepath.Join(tmp, "presigned.eml"), url)
	if b, _ := os.ReadFile(filepath.Join(tmp, "presigned.eml")); sha256.Sum256(b) != sums[big.ID] {
		t.Fatal("presigned GET with curl differs")
	}
	if out, err := a.run(t, 2, time.Minute, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", strings.Replace(url, "X-Amz-Expires=60", "X-Amz-Expires=61", 1)); err != nil || out != "403" {
		t.Fatalf("tampered presigned URL: %q %v", out, err)
	}

	// Backup with rclone sync (v1 listing too: provider Other), then check.
	backup := filepath.Join(tmp, "backup")
	start = time.Now()
	a.mustRun(t, 1, 10*time.Minute, "rclone", "sync", "lz:quarantine", backup)
	t.Logf("rclone sync of %d objects in %v", 2*live, time.Since(start).Round(time.Millisecond))
	a.mustRun(t, 2, 5*time.Minute, "rclone", "check", "lz:quarantine", backup)

	// A backup while a node dies: it finishes complete (degraded reads) or
	// fails loudly; either way never short without an error.
	backup2 := filepath.Join(tmp, "backup2")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, clientBin["rclone"], "copy", "--transfers", "2", "lz:quarantine", backup2)
	cmd.Env = a.env(1)
	var cpOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cpOut, &cpOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(a.pid(3), syscall.SIGKILL)
	cpErr := cmd.Wait()
	if out, err := a.run(t, 1, 5*time.Minute, "rclone", "check", "lz:quarantine", backup2); cpErr == nil && err != nil {
		t.Fatalf("rclone copy during a node death succeeded but the copy is not complete:\n%s\n%s", cpOut.String(), out)
	}
	t.Logf("rclone copy while node 3 died: err=%v", cpErr)
	lsA := mustLz(t, time.Minute, "ls", "--limit", "1000", "--socket", a.socket(1))

	// A brand-new empty cluster; rclone copy the backup into it.
	b := startS3Dev(t, "127.42.1.1")
	start = time.Now()
	b.mustRun(t, 2, 15*time.Minute, "rclone", "copy", "--transfers", "4", backup, "lz:quarantine")
	t.Logf("rclone copy back of %d objects in %v", 2*live, time.Since(start).Round(time.Millisecond))
	cb := b.client(3)
	for id, sum := range sums {
		want, err := c1.Stat(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		got, body, err := cb.Open(context.Background(), id)
		if err != nil {
			t.Fatalf("restored %s: %v", id, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, body)
		body.Close()
		if err != nil || [32]byte(h.Sum(nil)) != sum {
			t.Fatalf("restored body of %s differs (%v)", id, err)
		}
		if diff := sameMeta(want, got); diff != "" {
			t.Fatalf("restored %s differs in %s:\n%+v\n%+v", id, diff, want, got)
		}
	}
	waitFor(t, "the new cluster lists every message on node 1", 60*time.Second, func() bool {
		out, err := lz(t, time.Minute, "ls", "--limit", "1000", "--socket", b.socket(1))
		return err == nil && out == lsA
	})
	b.mustRun(t, 1, 5*time.Minute, "rclone", "check", backup, "lz:quarantine")
}
