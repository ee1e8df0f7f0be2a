package test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgBin holds the PostgreSQL 15 server binaries the tests run.
const pgBin = "/usr/lib/postgresql/15/bin"

// pgServer is a throwaway PostgreSQL cluster in a temporary directory,
// listening on a free loopback port with password (scram) authentication,
// or an existing server named by $LAZARET_TEST_PG.
type pgServer struct {
	t        testing.TB
	dir      string
	port     int
	external *url.URL            // $LAZARET_TEST_PG, if set
	cred     *syscall.Credential // to run as when we are root
}

const pgUser, pgPassword = "lazaret", "s3cret-test"

// startPG starts a PostgreSQL server for one test; it is stopped and
// removed when the test ends.
func startPG(t testing.TB) *pgServer {
	t.Helper()
	if dsn := os.Getenv("LAZARET_TEST_PG"); dsn != "" {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("LAZARET_TEST_PG: %v", err)
		}
		return &pgServer{t: t, external: u}
	}
	p := initPG(t)
	p.port = pgFreePort(t)
	p.start()
	return p
}

// initPG creates a PostgreSQL cluster in a temporary directory (initdb, as
// the postgres user when we are root) without starting it; it is stopped
// and removed when the test ends.
func initPG(t testing.TB) *pgServer {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		t.Fatalf("PostgreSQL 15 is not installed (%v): run 'make deps' or set LAZARET_TEST_PG", err)
	}
	dir, err := os.MkdirTemp("", "lzpg")
	if err != nil {
		t.Fatal(err)
	}
	p := &pgServer{t: t, dir: dir}
	t.Cleanup(func() {
		p.stop()
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a 'postgres' system user to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(pgPassword+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p.cred != nil {
		os.Chown(pw, int(p.cred.Uid), int(p.cred.Gid))
	}
	p.run("initdb", "-D", filepath.Join(dir, "data"), "-U", pgUser, "--pwfile", pw, "-A", "scram-sha-256",
		"--auth-local=trust", "-E", "UTF8", "--no-locale", "-N", "--no-instructions")
	return p
}

func pgFreePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// run runs a PostgreSQL binary as the server's user.
func (p *pgServer) run(name string, args ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(pgBin, name), args...)
	cmd.Dir = p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		p.t.Fatalf("%s %s: %v\n%s\nserver log:\n%s", name, strings.Join(args, " "), err, out, log)
	}
}

// start starts (or restarts) the server and waits until it accepts
// connections.
func (p *pgServer) start() {
	p.t.Helper()
	if p.external != nil {
		p.t.Fatal("cannot start an external PostgreSQL ($LAZARET_TEST_PG)")
	}
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
		p.port, p.dir)
	p.run("pg_ctl", "-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "log"), "-w", "-t", "60", "-o", opts, "start")
}

// stop stops the server at once (connections are cut).
func (p *pgServer) stop() {
	if p.external != nil || p.dir == "" {
		return
	}
	cmd := exec.Command(filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-m", "fast", "-w", "stop")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	_ = cmd.Run()
}

// canStop reports whether the test controls the server's life.
func (p *pgServer) canStop() bool { return p.external == nil }

var pgDBSeq atomic.Int64

// newDB creates an empty database and returns its DSN.
func (p *pgServer) newDB() string {
	p.t.Helper()
	name := fmt.Sprintf("lz_%d_%d", os.Getpid(), pgDBSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.dsn("postgres"))
	if err != nil {
		p.t.Fatalf("connecting to PostgreSQL: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		p.t.Fatal(err)
	}
	if p.external != nil {
		p.t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if c, err := pgx.Connect(ctx, p.dsn("postgres")); err == nil {
				c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
				c.Close(ctx)
			}
		})
	}
	return p.dsn(name)
}

// dsn returns a URL DSN for database db.
func (p *pgServer) dsn(db string) string {
	if p.external != nil {
		u := *p.external
		u.Path = "/" + db
		return u.String()
	}
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", pgUser, pgPassword, p.port, db)
}

// pgConn connects to dsn for checking rows; closed at the end of the test.
func pgConn(t testing.TB, dsn string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// pgCount returns the number of rows of messages, or -1 if the table does
// not exist yet or the server is down.
func pgCount(dsn string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return -1
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&n); err != nil {
		return -1
	}
	return n
}

// pgWaitFor polls cond every 100 ms until it holds or timeout passes.
func pgWaitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
