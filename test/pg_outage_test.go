package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// pgServeConfig writes a config file for `lazaret serve` feeding dsn with a
// short flush interval and retry back-off.
func pgServeConfig(t *testing.T, dir, dsn string) string {
	t.Helper()
	path := filepath.Join(dir, "lazaret.toml")
	cfg := fmt.Sprintf("[node]\nname = \"pgnode\"\n\n[index]\npostgres = %q\nflush_interval = \"100ms\"\nretry_max = \"500ms\"\nbatch_size = 200\n", dsn)
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func testMail(i int) string {
	return fmt.Sprintf("From: a@example.com\r\nTo: b@example.org\r\nSubject: outage test %d\r\n\r\nbody %d\r\n", i, i)
}

// PostgreSQL is stopped, 1,000 messages are put, it is started again: all
// 1,000 reach it exactly once; meanwhile puts never fail, status shows the
// backlog and List answers from the local index.
func TestPGOutage(t *testing.T) {
	pg := startPG(t)
	if !pg.canStop() {
		t.Skip("LAZARET_TEST_PG names an external server this test cannot stop")
	}
	dsn := pg.newDB()
	dir := shortTempDir(t)
	p := startServe(t, dir, "--config", pgServeConfig(t, dir, dsn))
	c := p.client()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	defer cancel()

	put := func(i int) lazaret.ID {
		m, err := c.Put(ctx, lazaret.PutRequest{Sender: "a@example.com", Recipients: []string{fmt.Sprintf("user%d@example.org", i%7)}}, strings.NewReader(testMail(i)))
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		return m.ID
	}
	put(-1)
	pgWaitFor(t, 30*time.Second, "the first message in PostgreSQL", func() bool { return pgCount(dsn) == 1 })
	if page, err := c.List(ctx, lazaret.ListQuery{}); err != nil || page.Source != "postgres" || len(page.Messages) != 1 {
		t.Fatalf("List with PostgreSQL up: %+v, %v; want 1 message from postgres", page, err)
	}

	pg.stop()
	const n = 1000
	idCh := make(chan lazaret.ID, n)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				idCh <- put(i)
			}
		}()
	}
	wg.Wait()
	close(idCh)
	t.Logf("%d puts with PostgreSQL down took %v", n, time.Since(start).Round(time.Millisecond))
	want := map[lazaret.ID]bool{}
	for id := range idCh {
		want[id] = true
	}

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Index == nil || st.Index.Backlog < n || st.Index.Reachable {
		t.Fatalf("status during the outage: %+v, want unreachable with a backlog of at least %d", st.Index, n)
	}
	out, err := exec.CommandContext(ctx, binary, "status", "--socket", p.socket).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "UNREACHABLE") || !strings.Contains(string(out), "index backlog") {
		t.Fatalf("lazaret status during the outage (%v):\n%s", err, out)
	}
	t.Logf("lazaret status during the outage:\n%s", out)
	page, err := c.List(ctx, lazaret.ListQuery{Limit: 1000})
	if err != nil || page.Source != "local" || len(page.Messages) != 1000 {
		t.Fatalf("List with PostgreSQL down: source %q, %d messages, %v; want 1000 from local", page.Source, len(page.Messages), err)
	}

	pg.start()
	drained := time.Now()
	pgWaitFor(t, 60*time.Second, "the backlog to reach PostgreSQL", func() bool { return pgCount(dsn) >= n+1 })
	t.Logf("backlog drained %v after PostgreSQL came back", time.Since(drained).Round(time.Millisecond))
	conn := pgConn(t, dsn)
	rows, err := conn.Query(ctx, "SELECT messageid FROM messages")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[lazaret.ID]int{}
	for rows.Next() {
		var id string
		rows.Scan(&id)
		seen[lazaret.ID(id)]++
	}
	rows.Close()
	if len(seen) != n+1 {
		t.Fatalf("%d rows, want %d", len(seen), n+1)
	}
	for id := range want {
		if seen[id] != 1 {
			t.Fatalf("message %s appears %d times", id, seen[id])
		}
	}
	pgWaitFor(t, 30*time.Second, "status to show an empty backlog", func() bool {
		st, err := c.Status(ctx)
		return err == nil && st.Index != nil && st.Index.Backlog == 0 && st.Index.Reachable
	})
	page, err = c.List(ctx, lazaret.ListQuery{Recipient: "USER3@example.org", Limit: 1000})
	if err != nil || page.Source != "postgres" || len(page.Messages) != (n+6-3)/7 {
		t.Fatalf("List after the outage: source %q, %d messages, %v; want %d from postgres", page.Source, len(page.Messages), err, (n+6-3)/7)
	}
}

// A bad DSN, a wrong password or a missing database stops serve at start
// with an error naming the problem; an unreachable server does not.
// `lazaret index migrate` run by several nodes at once applies each
// migration once.
func TestPGStartErrors(t *testing.T) {
	pg := startPG(t)
	dsn := pg.newDB()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if pg.canStop() {
		bad := []struct{ dsn, want string }{
			{strings.Replace(dsn, pgPassword, "wrong", 1), "password authentication failed"},
			{pg.dsn("no_such_db"), `database "no_such_db" does not exist`},
			{"postgres://x@127.0.0.1:notaport/db", "index.postgres"},
		}
		for _, b := range bad {
			dir := shortTempDir(t)
			cmd := exec.CommandContext(ctx, binary, "serve", "--data", filepath.Join(dir, "data"), "--socket", filepath.Join(dir, "s.sock"), "--postgres", b.dsn)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), b.want) {
				t.Errorf("serve --postgres %s: %v, output:\n%s\nwant a failure mentioning %q", b.dsn, err, out, b.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				if entries, _ := os.ReadDir(filepath.Join(dir, "data")); len(entries) > 0 {
					t.Errorf("serve with a bad DSN opened the store")
				}
			}
		}
		// Nothing listening: serve starts and reports the index unreachable.
		dir := shortTempDir(t)
		down := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/x?sslmode=disable&connect_timeout=1", pgUser, pgPassword, pgFreePort(t))
		p := startServe(t, dir, "--postgres", down)
		st, err := p.client().Status(ctx)
		if err != nil || st.Index == nil || st.Index.Reachable {
			t.Fatalf("status with PostgreSQL down at start: %+v %v", st, err)
		}
		p.stop()
	}

	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.CommandContext(ctx, binary, "index", "migrate", "--postgres", dsn).CombinedOutput()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	applied := 0
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("index migrate: %v\n%s", errs[i], outs[i])
		}
		if strings.Contains(outs[i], "applied migrations") {
			applied++
		}
	}
	if applied != 1 {
		t.Fatalf("%d of 3 concurrent migrates applied migrations, want 1:\n%s", applied, strings.Join(outs, ""))
	}
	var v int
	if err := pgConn(t, dsn).QueryRow(ctx, "SELECT count(*) FROM lazaret_schema_migrations").Scan(&v); err != nil || v != 1 {
		t.Fatalf("schema migrations rows: %d, %v", v, err)
	}
}
