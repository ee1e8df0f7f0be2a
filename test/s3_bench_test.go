package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/lazaret/lazaret"
)

// The S3 benchmarks (make bench-s3; README "S3 API"): a figure each, with
// its same-run baseline. They run only with LAZARET_S3_BENCH=1.

func needS3Bench(t *testing.T) {
	if os.Getenv("LAZARET_S3_BENCH") == "" {
		t.Skip("set LAZARET_S3_BENCH=1 (make bench-s3)")
	}
}

// TestS3BenchRcloneCopy: `rclone copy` of the whole bucket (1,000 messages
// of the size mix, or $LAZARET_S3_MESSAGES) from a 3-node cluster against
// a loop of `lazaret get` of the same ids, in the same run. Target: rclone
// at least 0.8 of the loop's MB/s (body bytes).
func TestS3BenchRcloneCopy(t *testing.T) {
	needS3Bench(t)
	needS3Clients(t)
	_, sinkAddr := startSink(t)
	d := startS3Dev(t, "127.42.3.1", "--relay", sinkAddr)
	n := envCount(t, "LAZARET_S3_MESSAGES", 1000, 20)
	sums := putMix(t, d.devCluster, n, 77)
	var total int64
	c := d.client(1)
	ids := make([]lazaret.ID, 0, len(sums))
	for id := range sums {
		m, err := c.Stat(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		total += m.Size
		ids = append(ids, id)
	}
	slices.Sort(ids)
	waitFor(t, "node 1 lists every message", 60*time.Second, func() bool {
		out, err := d.run(t, 1, time.Minute, "rclone", "lsf", "-R", "--files-only", "lz:quarantine")
		return err == nil && countLines(out) == 2*len(ids)
	})
	tmp := t.TempDir()

	start := time.Now()
	for _, id := range ids {
		mustLz(t, time.Minute, "get", string(id), "-o", filepath.Join(tmp, "get.eml"), "--socket", d.socket(1))
	}
	getLoop := time.Since(start)

	start = time.Now()
	d.mustRun(t, 1, 30*time.Minute, "rclone", "copy", "lz:quarantine", filepath.Join(tmp, "copy"))
	rclone := time.Since(start)

	mb := float64(total) / 1e6
	loopRate, rcloneRate := mb/getLoop.Seconds(), mb/rclone.Seconds()
	t.Logf("%d messages, %.1f MB of bodies (plus %d sidecars)", len(ids), mb, len(ids))
	t.Logf("lazaret get loop: %v, %.1f MB/s", getLoop.Round(time.Millisecond), loopRate)
	t.Logf("rclone copy:      %v, %.1f MB/s (ratio %.2f, target >= 0.8)", rclone.Round(time.Millisecond), rcloneRate, rcloneRate/loopRate)
	if rcloneRate < 0.8*loopRate {
		t.Errorf("rclone copy reaches %.2f of the lazaret get loop's MB/s, want >= 0.8", rcloneRate/loopRate)
	}
}

// TestS3BenchListPaging: ListObjectsV2 pages of 1,000 over 100,000 keys
// ($LAZARET_S3_LIST_MESSAGES messages, two keys each: 50,000 by default)
// on one node; every page's time is measured. Target: every page < 50 ms.
func TestS3BenchListPaging(t *testing.T) {
	needS3Bench(t)
	dir := shortTempDir(t)
	cfg := filepath.Join(dir, "lazaret.toml")
	ak, sk := "AKBENCH000000000001", "bench-secret-0123456789abcdef"
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[s3]
listen = "127.42.4.1:9000"
[[s3.keys]]
name = "bench"
access_key = %q
secret = %q
`, ak, sk)), 0o600)
	p := startServe(t, dir, "--config", cfg)
	msgs := envCount(t, "LAZARET_S3_LIST_MESSAGES", 50000, 1000)
	c := p.client()
	ctx := context.Background()
	start := time.Now()
	err := parallel(msgs, 8, func(i int) error {
		r := rand.New(rand.NewPCG(uint64(i), 5))
		body := mixBody(r, i, 600)
		_, err := c.Put(ctx, lazaret.PutRequest{Sender: "s@example.org", Recipients: []string{"r@example.com"}}, strings.NewReader(string(body)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("put %d messages in %v", msgs, time.Since(start).Round(time.Millisecond))

	client := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String("http://127.42.4.1:9000"), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, ""),
	})
	for round := range 2 {
		pg := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String("quarantine"), MaxKeys: aws.Int32(1000)})
		var times []time.Duration
		keys := 0
		for pg.HasMorePages() {
			t0 := time.Now()
			page, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			times = append(times, time.Since(t0))
			keys += len(page.Contents)
		}
		sorted := slices.Clone(times)
		slices.Sort(sorted)
		rest := slices.Max(times[1:])
		t.Logf("listing %d: %d keys in %d pages: first %v (reads the day), then median %v, max %v; total %v", round+1, keys, len(times),
			times[0].Round(time.Microsecond), sorted[len(sorted)/2].Round(time.Microsecond), rest.Round(time.Microsecond), sum(times).Round(time.Millisecond))
		if keys != 2*msgs {
			t.Fatalf("listed %d keys, want %d", keys, 2*msgs)
		}
		// The first page of a day reads the whole day (README "S3 API":
		// a known miss of the target); the others must meet it.
		if rest > 50*time.Millisecond {
			t.Errorf("listing %d: slowest page after the first %v, target < 50 ms", round+1, rest)
		}
	}
}

func sum(ds []time.Duration) time.Duration {
	var s time.Duration
	for _, d := range ds {
		s += d
	}
	return s
}
