package test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/index"
	"github.com/lazaret/lazaret/index/postgres"
	"github.com/lazaret/lazaret/objstore"
)

// pgStore opens a store with the outbox on, for in-process feeding.
func pgStore(t testing.TB, dir string, maxOutbox int) *objstore.Store {
	t.Helper()
	cfg := objstore.DefaultConfig(dir)
	cfg.SyncWrites = false // speed; durability is tested elsewhere
	cfg.Outbox, cfg.OutboxMaxRecords = true, maxOutbox
	s, err := objstore.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func pgOpen(t testing.TB, dsn string) *postgres.DB {
	t.Helper()
	db, err := postgres.Open(postgres.DefaultConfig(dsn), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.Init(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

var (
	genLocals  = []string{"alice", "Bob", "carol", "DAVE", "éva", "Ünal", "x_y", "50%"}
	genDomains = []string{"example.com", "Example.ORG", "mail.test", "müller.de", "STRASSE.de", "a_b.example"}
	genWords   = []string{"Invoice", "invoice2024", "Your", "PAYMENT", "urgent!", "50%_off", "résumé", "ÜBER", "a_b", "100%", `x\y`, "Straße", "ΣΊΣΥΦΟΣ", "re:", "[SPAM]"}
)

func genAddr(r *rand.Rand) string {
	switch r.IntN(12) {
	case 0:
		return "postmaster" // no domain
	case 1:
		return "weird@" // empty domain
	}
	return genLocals[r.IntN(len(genLocals))] + "@" + genDomains[r.IntN(len(genDomains))]
}

func genID(r *rand.Rand) lazaret.ID {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := []byte("000000-000000-00")
	for i := range b {
		if b[i] != '-' {
			b[i] = digits[r.IntN(len(digits))]
		}
	}
	return lazaret.ID(b)
}

// genMetas generates n messages with clashing received times, mixed-case
// and non-ASCII addresses and subjects, and every verdict and state.
func genMetas(r *rand.Rand, n int, base time.Time) []*lazaret.Metadata {
	out := make([]*lazaret.Metadata, n)
	for i := range out {
		m := &lazaret.Metadata{
			ID:       genID(r),
			Node:     1 + r.IntN(3),
			Received: base.Add(-time.Duration(r.IntN(500)) * time.Minute).Add(time.Duration(r.IntN(3)) * time.Nanosecond).UTC(),
			Sender:   genAddr(r),
			ClientIP: fmt.Sprintf("192.0.2.%d", r.IntN(255)),
			Size:     int64(100 + r.IntN(100000)),
			Verdict: lazaret.Verdict{
				Kind:   lazaret.VerdictKind(r.IntN(5)),
				Score:  float64(r.IntN(400)-50) / 10,
				Report: "score=" + fmt.Sprint(r.IntN(9)),
			},
			State:   lazaret.State(r.IntN(3)),
			Version: lazaret.Version{Wall: int64(1000 + i), Node: 1},
		}
		if r.IntN(10) == 0 {
			m.Sender = ""
		}
		for range r.IntN(4) {
			m.Recipients = append(m.Recipients, genAddr(r))
		}
		var words []string
		for range 1 + r.IntN(4) {
			words = append(words, genWords[r.IntN(len(genWords))])
		}
		m.Subject = strings.Join(words, " ")
		m.History = []lazaret.Event{{Time: m.Received, Actor: "test", Action: "quarantine", Node: m.Node}}
		out[i] = m
	}
	return out
}

func randCase(r *rand.Rand, s string) string {
	switch r.IntN(3) {
	case 0:
		return strings.ToUpper(s)
	case 1:
		return strings.ToLower(s)
	}
	return s
}

// genQuery returns a random ListQuery over the generated vocabulary.
func genQuery(r *rand.Rand, base time.Time) lazaret.ListQuery {
	var q lazaret.ListQuery
	q.Limit = 1 + r.IntN(100)
	if r.IntN(4) == 0 {
		q.Since = base.Add(-time.Duration(r.IntN(500)) * time.Minute)
	}
	if r.IntN(4) == 0 {
		q.Until = base.Add(-time.Duration(r.IntN(300)) * time.Minute)
		if q.Until.Before(q.Since) {
			q.Since, q.Until = q.Until, q.Since
		}
	}
	if r.IntN(5) == 0 {
		q.Sender = randCase(r, genAddr(r))
		if r.IntN(2) == 0 {
			q.Sender = "@" + randCase(r, genDomains[r.IntN(len(genDomains))])
		}
	}
	if r.IntN(5) == 0 {
		q.Recipient = randCase(r, genAddr(r))
		if r.IntN(2) == 0 {
			q.Recipient = "@" + randCase(r, genDomains[r.IntN(len(genDomains))])
		}
	}
	if r.IntN(6) == 0 {
		q.Domain = randCase(r, genDomains[r.IntN(len(genDomains))])
	}
	if r.IntN(3) == 0 {
		var ws []string
		for range 1 + r.IntN(2) {
			w := []rune(genWords[r.IntN(len(genWords))])
			i := r.IntN(len(w))
			j := i + 1 + r.IntN(len(w)-i)
			ws = append(ws, randCase(r, string(w[i:j])))
		}
		q.Subject = strings.Join(ws, " ")
	}
	if r.IntN(4) == 0 {
		for k := range 5 {
			if r.IntN(2) == 0 {
				q.Verdicts = append(q.Verdicts, lazaret.VerdictKind(k))
			}
		}
	}
	if r.IntN(5) == 0 {
		v := float64(r.IntN(400)-50) / 10
		q.MinScore = &v
	}
	if r.IntN(5) == 0 {
		v := float64(r.IntN(400)-50) / 10
		if q.MinScore != nil && v < *q.MinScore {
			v = *q.MinScore
		}
		q.MaxScore = &v
	}
	if r.IntN(3) == 0 {
		for s := range 3 {
			if r.IntN(2) == 0 {
				q.States = append(q.States, lazaret.State(s))
			}
		}
	}
	if r.IntN(6) == 0 {
		n := 1 + r.IntN(3)
		q.Node = &n
	}
	return q
}

func metaJSON(t *testing.T, ms []*lazaret.Metadata) string {
	t.Helper()
	b, err := json.Marshal(ms)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Search results from PostgreSQL equal those of the local index, page by
// page and cursor by cursor, for a generated set of queries.
func TestPGSearchEqualsLocal(t *testing.T) {
	pg := startPG(t)
	dsn := pg.newDB()
	db := pgOpen(t, dsn)
	store := pgStore(t, t.TempDir(), 1_000_000)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 5))
	base := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, m := range genMetas(r, 1000, base) {
		if err := store.PutMeta(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	f, err := index.NewFeeder(index.DefaultFeederConfig(), store, db, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	const queries = 200
	matched, nonEmpty, pages := 0, 0, 0
	for qi := range queries {
		q := genQuery(r, base)
		desc := fmt.Sprintf("query %d %+v", qi, q)
		for page := 0; ; page++ {
			local, err := store.List(ctx, q)
			if err != nil {
				t.Fatalf("%s: local: %v", desc, err)
			}
			remote, err := db.Search(ctx, q)
			if err != nil {
				t.Fatalf("%s: postgres: %v", desc, err)
			}
			pages++
			if remote.Source != "postgres" || local.Source != "local" {
				t.Fatalf("sources %q %q", remote.Source, local.Source)
			}
			if lj, rj := metaJSON(t, local.Messages), metaJSON(t, remote.Messages); lj != rj {
				t.Fatalf("%s page %d differs:\nlocal    %s\npostgres %s", desc, page, ids(local.Messages), ids(remote.Messages))
			}
			if local.NextCursor != remote.NextCursor {
				t.Fatalf("%s page %d: cursors differ: local %q postgres %q", desc, page, local.NextCursor, remote.NextCursor)
			}
			matched += len(local.Messages)
			if page == 0 && len(local.Messages) > 0 {
				nonEmpty++
			}
			if local.NextCursor == "" || page == 3 {
				break
			}
			q.Cursor = local.NextCursor
		}
	}
	t.Logf("%d queries, %d pages, %d messages matched; %d queries non-empty", queries, pages, matched, nonEmpty)
	if nonEmpty < queries/3 {
		t.Fatalf("only %d of %d queries matched anything: the generator is too narrow to test equality", nonEmpty, queries)
	}
}

func ids(ms []*lazaret.Metadata) []lazaret.ID {
	out := make([]lazaret.ID, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}
