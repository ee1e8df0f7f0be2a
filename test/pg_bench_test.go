package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/index"
)

// BenchmarkPGIndex measures rows per second into PostgreSQL (batched COPY
// upserts from 4 writers, as 4 nodes would) and List search latency p50/p99
// on the result for recipient, sender, date range and subject text.
// $LAZARET_BENCH_PG_MESSAGES sets the number of messages (default
// 1,000,000). Run with `make bench-index`.
func BenchmarkPGIndex(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("LAZARET_BENCH_PG_MESSAGES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			b.Fatal(err)
		}
	}
	pg := startPG(b)
	dsn := pg.newDB()
	db := pgOpen(b, dsn)
	ctx := context.Background()
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

	const writers, batch = 4, 1000
	start := time.Now()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for lo := w * batch; lo < n; lo += writers * batch {
				ms := genMetas(r, min(batch, n-lo), base)
				changes := make([]index.Change, len(ms))
				for i, m := range ms {
					// 30 days of mail.
					m.Received = base.Add(-time.Duration(r.Int64N(int64(30 * 24 * time.Hour))))
					m.State = lazaret.StateQuarantined
					// A gateway's spread: 20,000 recipients in 500 domains,
					// 100,000 senders in 5,000 domains.
					m.Recipients = []string{benchAddr(r, "user", 20000, 500)}
					if r.IntN(5) == 0 {
						m.Recipients = append(m.Recipients, benchAddr(r, "user", 20000, 500))
					}
					m.Sender = benchAddr(r, "sender", 100000, 5000)
					changes[i] = index.Change{ID: m.ID, Meta: m}
				}
				if err := db.Apply(ctx, changes); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	if _, err := pgConn(b, dsn).Exec(ctx, "VACUUM ANALYZE messages"); err != nil {
		b.Fatal(err)
	}
	rows := pgCount(dsn)
	b.ReportMetric(float64(rows)/took.Seconds(), "rows/s")
	fmt.Printf("\nindex feed: %d rows in %v = %.0f rows/s (%d writers, batches of %d)\n", rows, took.Round(time.Millisecond), float64(rows)/took.Seconds(), writers, batch)

	r := rand.New(rand.NewPCG(99, 1))
	kinds := []struct {
		name string
		q    func() lazaret.ListQuery
	}{
		{"recipient", func() lazaret.ListQuery { return lazaret.ListQuery{Recipient: benchAddr(r, "user", 20000, 500)} }},
		{"recipient domain", func() lazaret.ListQuery {
			return lazaret.ListQuery{Recipient: fmt.Sprintf("@dom%d.example", r.IntN(500))}
		}},
		{"sender", func() lazaret.ListQuery { return lazaret.ListQuery{Sender: benchAddr(r, "sender", 100000, 5000)} }},
		{"date range", func() lazaret.ListQuery {
			since := base.Add(-time.Duration(r.Int64N(int64(29 * 24 * time.Hour))))
			return lazaret.ListQuery{Since: since, Until: since.Add(24 * time.Hour)}
		}},
		{"subject text", func() lazaret.ListQuery { return lazaret.ListQuery{Subject: genWords[r.IntN(len(genWords))]} }},
		{"subject + recipient domain", func() lazaret.ListQuery {
			return lazaret.ListQuery{Subject: genWords[r.IntN(len(genWords))], Recipient: fmt.Sprintf("@dom%d.example", r.IntN(500))}
		}},
	}
	fmt.Printf("| search (page of 100, newest first) | p50 | p99 |\n|---|---|---|\n")
	for _, k := range kinds {
		var lat []time.Duration
		for range 200 {
			q := k.q()
			t0 := time.Now()
			if _, err := db.Search(ctx, q); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
		fmt.Printf("| %s | %v | %v |\n", k.name, p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond))
		b.ReportMetric(float64(p99.Microseconds()), strings.ReplaceAll(k.name, " ", "_")+"_p99_µs")
	}
}

// benchAddr returns one of n addresses spread over domains domains.
func benchAddr(r *rand.Rand, local string, n, domains int) string {
	i := r.IntN(n)
	return fmt.Sprintf("%s%d@dom%d.example", local, i, i%domains)
}
