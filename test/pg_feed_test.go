package test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/index"
	"github.com/lazaret/lazaret/objstore"
)

// pgRows returns every row of messages as JSON without indexed_at, in id
// order.
func pgRows(t *testing.T, dsn string) []string {
	t.Helper()
	c := pgConn(t, dsn)
	rows, err := c.Query(context.Background(), `SELECT (to_jsonb(m) - 'indexed_at')::text FROM messages m ORDER BY messageid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Three nodes feed one database at once with overlapping changes: the same
// messages in different versions, arriving in different orders, one node's
// outbox overflowing. The rows end equal to the newest version of every
// message; a replay changes nothing; `lazaret index rebuild` of the three
// stores into an empty database reproduces the rows.
func TestPGThreeFeedersAndRebuild(t *testing.T) {
	pg := startPG(t)
	dsn := pg.newDB()
	db := pgOpen(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	const nMsgs, nVersions = 300, 4
	msgs := genMetas(r, nMsgs, base)

	// version v of message i: newer versions change state, subject and
	// history, as learn, release and delete do.
	version := func(i, v, node int) *lazaret.Metadata {
		m := msgs[i].Clone()
		m.Node = 1 + i%3
		m.State = lazaret.StateQuarantined
		if v == nVersions-1 && i%4 == 0 {
			m.State = lazaret.StateDeleted
		} else if v >= 2 {
			m.State = lazaret.StateReleased
		}
		m.Subject = fmt.Sprintf("%s v%d", msgs[i].Subject, v)
		for k := 1; k <= v; k++ {
			m.History = append(m.History, lazaret.Event{Time: m.Received.Add(time.Duration(k) * time.Second), Actor: "test", Action: fmt.Sprintf("change-%d", k), Node: node})
		}
		m.Version = lazaret.Version{Wall: base.UnixNano() + int64(v)*1000, Logical: uint32(i % 2), Node: node}
		return m
	}

	// Each node gets a random subset of versions of each message, made by
	// random nodes, in increasing version order (a node's store never
	// regresses); the nodes write concurrently while their feeders run.
	type write struct {
		m *lazaret.Metadata
	}
	plans := make([][]write, 3)
	newest := make(map[lazaret.ID]*lazaret.Metadata)
	for i := range nMsgs {
		for v := range nVersions {
			m := version(i, v, 1+r.IntN(3))
			got := false
			for n := range 3 {
				if r.IntN(2) == 0 || (n == 2 && !got) {
					plans[n] = append(plans[n], write{m})
					got = true
				}
			}
			if old := newest[m.ID]; old == nil || m.Version.Compare(old.Version) > 0 {
				newest[m.ID] = m
			}
		}
	}
	dirs := make([]string, 3)
	stores := make([]*objstore.Store, 3)
	feeders := make([]*index.Feeder, 3)
	for n := range 3 {
		dirs[n] = t.TempDir()
		maxOutbox := 1_000_000
		if n == 2 {
			maxOutbox = 50 // overflows: resynchronises from the store
		}
		stores[n] = pgStore(t, dirs[n], maxOutbox)
		fc := index.DefaultFeederConfig()
		fc.Node, fc.Hostname = n+1, fmt.Sprintf("node-%d", n+1)
		fc.BatchSize, fc.FlushInterval, fc.RetryMax = 64, 10*time.Millisecond, 100*time.Millisecond
		f, err := index.NewFeeder(fc, stores[n], db, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		f.Start(ctx)
		t.Cleanup(func() { f.Close() })
		feeders[n] = f
	}
	var wg sync.WaitGroup
	for n := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Shuffle messages but keep each message's versions in order.
			plan := plans[n]
			byID := map[lazaret.ID][]*lazaret.Metadata{}
			var order []lazaret.ID
			for _, w := range plan {
				if byID[w.m.ID] == nil {
					order = append(order, w.m.ID)
				}
				byID[w.m.ID] = append(byID[w.m.ID], w.m)
			}
			rr := rand.New(rand.NewPCG(seed, uint64(n)))
			for len(order) > 0 {
				k := rr.IntN(len(order))
				id := order[k]
				m := byID[id][0]
				byID[id] = byID[id][1:]
				if len(byID[id]) == 0 {
					order = append(order[:k], order[k+1:]...)
				}
				if err := stores[n].PutMeta(ctx, m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	pgWaitFor(t, 60*time.Second, "three feeders to drain their outboxes", func() bool {
		for _, f := range feeders {
			st := f.Status()
			if st.Backlog > 0 || st.Resync {
				return false
			}
		}
		return true
	})
	for _, f := range feeders {
		f.Close()
	}

	// Rows equal the newest version of every message.
	c := pgConn(t, dsn)
	rows, err := c.Query(ctx, `SELECT messageid, meta::text, version_wall, version_logical, version_node, hostname, state, subject FROM messages`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[lazaret.ID]bool{}
	for rows.Next() {
		var id, meta, host, state, subject string
		var wall, logical int64
		var vnode int
		if err := rows.Scan(&id, &meta, &wall, &logical, &vnode, &host, &state, &subject); err != nil {
			t.Fatal(err)
		}
		want := newest[lazaret.ID(id)]
		if want == nil {
			t.Fatalf("row for unknown message %s", id)
		}
		got[lazaret.ID(id)] = true
		wv := want.Version
		if wall != wv.Wall || logical != int64(wv.Logical) || vnode != wv.Node || state != want.State.String() || subject != want.Subject {
			t.Errorf("%s: row version %d.%d@%d state %s subject %q, want %v %s %q", id, wall, logical, vnode, state, subject, wv, want.State, want.Subject)
		}
		if wantMeta := metaJSON(t, []*lazaret.Metadata{want}); "["+meta+"]" != wantMeta {
			t.Errorf("%s: meta differs:\n got %s\nwant %s", id, meta, wantMeta)
		}
		if wantHost := fmt.Sprintf("node-%d", want.Node); host != wantHost {
			t.Errorf("%s: hostname %q, want %q", id, host, wantHost)
		}
	}
	rows.Close()
	if len(got) != nMsgs {
		t.Fatalf("%d rows, want %d", len(got), nMsgs)
	}
	if t.Failed() {
		return
	}

	// A replay (full resynchronisation of every node) rewrites nothing.
	var before []string
	snapshot := func() []string {
		rs, err := c.Query(ctx, `SELECT messageid || ' ' || indexed_at::text FROM messages ORDER BY messageid`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var s string
			rs.Scan(&s)
			out = append(out, s)
		}
		return out
	}
	before = snapshot()
	for n := range 3 {
		fc := index.DefaultFeederConfig()
		fc.Node, fc.Hostname = n+1, fmt.Sprintf("node-%d", n+1)
		f, err := index.NewFeeder(fc, stores[n], db, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := stores[n].SetOutboxOverflow(); err != nil {
			t.Fatal(err)
		}
		if err := f.Drain(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if after := snapshot(); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatal("replaying every change rewrote rows")
	}
	want := pgRows(t, dsn)

	// `lazaret index rebuild` of the three (stopped) stores into an empty
	// database reproduces the rows.
	for _, s := range stores {
		s.Close()
	}
	dsn2 := pg.newDB()
	cfgDir := t.TempDir()
	order := []int{2, 0, 1}
	for _, n := range order {
		cfgFile := filepath.Join(cfgDir, fmt.Sprintf("node%d.toml", n+1))
		os.WriteFile(cfgFile, []byte(fmt.Sprintf("[node]\nnumber = %d\nname = \"node-%d\"\n", n+1, n+1)), 0o644)
		cmd := exec.CommandContext(ctx, binary, "index", "rebuild", "--config", cfgFile, "--data", dirs[n], "--postgres", dsn2)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("lazaret index rebuild: %v\n%s", err, out)
		}
		t.Logf("node %d: %s", n+1, strings.TrimSpace(string(out)))
		// Not a terminal: progress is a plain line, at least the last one.
		if !regexp.MustCompile(`index rebuild: \d+/\d+ msgs \(100%\), \d+/s, elapsed \S+ done`).Match(out) {
			t.Errorf("lazaret index rebuild printed no final progress line:\n%s", out)
		}
	}
	rebuilt := pgRows(t, dsn2)
	if len(rebuilt) != len(want) {
		t.Fatalf("rebuild: %d rows, want %d", len(rebuilt), len(want))
	}
	sort.Strings(want)
	sort.Strings(rebuilt)
	for i := range want {
		if want[i] != rebuilt[i] {
			t.Fatalf("rebuild differs:\n got %s\nwant %s", rebuilt[i], want[i])
		}
	}
}

// TestPGFurtherStateWins: the index picks a row's winner as lazaret.Merge
// does — the further state first, then the newer version. A delete made
// on a node whose clock was behind carries an older version than a
// concurrent learn made elsewhere; the store keeps the tombstone, and so
// must the index, whichever change it gets first (the fault soak found
// rows left "quarantined" for deleted messages).
func TestPGFurtherStateWins(t *testing.T) {
	pg := startPG(t)
	dsn := pg.newDB()
	db := pgOpen(t, dsn)
	conn := pgConn(t, dsn)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	msgs := genMetas(rand.New(rand.NewPCG(5, 5)), 4, base)
	state := func(id lazaret.ID) string {
		var s string
		if err := conn.QueryRow(ctx, "SELECT state FROM messages WHERE messageid = $1", string(id)).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for i, m := range msgs {
		learned := m.Clone()
		learned.State = lazaret.StateQuarantined
		learned.Version = lazaret.Version{Wall: base.Add(5 * time.Minute).UnixNano(), Node: 2} // clock ahead
		deleted := m.Clone()
		deleted.State = lazaret.StateDeleted
		deleted.Version = lazaret.Version{Wall: base.UnixNano(), Node: 1}
		released := m.Clone()
		released.State = lazaret.StateReleased
		released.Version = lazaret.Version{Wall: base.Add(time.Minute).UnixNano(), Node: 3}
		var order [][]*lazaret.Metadata
		switch i {
		case 0: // separate batches, delete first
			order = [][]*lazaret.Metadata{{deleted}, {learned}, {released}}
		case 1: // separate batches, delete last
			order = [][]*lazaret.Metadata{{learned}, {released}, {deleted}}
		case 2: // one batch
			order = [][]*lazaret.Metadata{{learned, deleted, released}}
		case 3: // released with an older version than a quarantined change
			released.Version = lazaret.Version{Wall: base.UnixNano(), Node: 3}
			order = [][]*lazaret.Metadata{{released}, {learned}}
		}
		for _, batch := range order {
			var ch []index.Change
			for _, b := range batch {
				ch = append(ch, index.Change{ID: b.ID, Meta: b})
			}
			if err := db.Apply(ctx, ch); err != nil {
				t.Fatal(err)
			}
		}
		want := "deleted"
		if i == 3 {
			want = "released"
		}
		if got := state(m.ID); got != want {
			t.Errorf("message %d: index row is %q, want %q (the store's merge keeps the further state)", i, got, want)
		}
	}
}
