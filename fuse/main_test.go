package fuse

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
)

// canMount says why kernel mounts cannot run here, or "".
func canMount() string {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "no /dev/fuse"
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			return "not root and no fusermount3 (apt-get install fuse3)"
		}
	}
	return ""
}

func TestMain(m *testing.M) {
	if path := os.Getenv("LAZARET_FUSE_TEST_WRITER"); path != "" {
		slowWriter(path) // a child process of TestKilledWriterLeavesNothing
		return
	}
	if why := canMount(); why != "" {
		fmt.Fprintln(os.Stderr, "fuse tests skipped:", why)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// slowWriter writes part of a file through one descriptor, says so, and
// waits to be killed.
func slowWriter(path string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o660)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	if _, err := f.Write(make([]byte, 200000)); err != nil {
		fmt.Println("write:", err)
		os.Exit(1)
	}
	fmt.Println("started")
	time.Sleep(30 * time.Second)
	os.Exit(1)
}

// fixture is a single node over a real store, mounted.
type fixture struct {
	t    *testing.T
	node *replicator.Node
	q    lazaret.Quarantine
	dir  string
	mnt  *Mount
	cfg  Config
}

func testConfig() Config {
	cfg := DefaultConfig()
	cfg.Location = time.UTC
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg.OpTimeout = 20 * time.Second
	return cfg
}

func newNode(t *testing.T) *replicator.Node {
	t.Helper()
	scfg := objstore.DefaultConfig(t.TempDir())
	scfg.MemTableSize = 8 << 20
	scfg.BlockCacheSize = 8 << 20
	scfg.IndexCacheSize = 4 << 20
	scfg.ValueLogFileSize = 16 << 20
	// Speed, and no stalls behind other jobs' fsyncs on a shared disk: the
	// view's durability is the put's (close returns after Put), which the
	// e2e tests in test/ exercise on real, fsync'ing nodes.
	scfg.SyncWrites = false
	log := slog.New(slog.DiscardHandler)
	store, err := objstore.Open(scfg, log, lazaret.SystemClock{})
	if err != nil {
		t.Fatal(err)
	}
	rc := replicator.DefaultConfig()
	rc.MaxMessageSize = 1 << 20
	node, err := replicator.New(rc, store, log, lazaret.SystemClock{}, nil)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close(); store.Close() })
	return node
}

// mountOver mounts a view of q in a temporary directory, unmounted when
// the test ends.
func mountOver(t *testing.T, q lazaret.Quarantine, mod func(*Config)) *fixture {
	t.Helper()
	cfg := testConfig()
	if mod != nil {
		mod(&cfg)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := New(ctx, dir, q, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Unmount(true); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return &fixture{t: t, q: q, dir: dir, mnt: m, cfg: cfg}
}

func newFixture(t *testing.T, mod func(*Config)) *fixture {
	node := newNode(t)
	f := mountOver(t, node, mod)
	f.node = node
	return f
}

func (f *fixture) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	f.t.Cleanup(cancel)
	return ctx
}

// put stores body with a verdict and returns its metadata.
func (f *fixture) put(kind lazaret.VerdictKind, body string) *lazaret.Metadata {
	f.t.Helper()
	m, err := f.q.Put(f.ctx(), lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.com"}, Verdict: lazaret.Verdict{Kind: kind}}, stringsReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	return m
}

// path is where a message shows in the mount with the default layout.
func (f *fixture) path(m *lazaret.Metadata) string {
	day := m.Received.In(f.cfg.Location).Format("20060102")
	if p := f.cfg.Places[m.Verdict.Kind]; p != PlaceDir {
		return filepath.Join(f.dir, day, string(p), string(m.ID))
	}
	return filepath.Join(f.dir, day, string(m.ID), messageName)
}

func (f *fixture) today() string { return time.Now().In(f.cfg.Location).Format("20060102") }
