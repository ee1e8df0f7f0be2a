package fuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// count is how many live messages the store has.
func (f *fixture) count() int {
	f.t.Helper()
	n := 0
	q := lazaret.ListQuery{Limit: 1000}
	for {
		p, err := f.q.List(f.ctx(), q)
		if err != nil {
			f.t.Fatal(err)
		}
		n += len(p.Messages)
		if p.NextCursor == "" {
			return n
		}
		q.Cursor = p.NextCursor
	}
}

// mkdirs makes today's kind dirs and returns today's day dir.
func (f *fixture) mkdirs() string {
	f.t.Helper()
	day := filepath.Join(f.dir, f.today())
	for _, k := range []string{"spam", "nonspam", "mcp"} {
		if err := os.MkdirAll(filepath.Join(day, k), 0o770); err != nil {
			f.t.Fatal(err)
		}
	}
	return day
}

func TestWriteStoresOnClose(t *testing.T) {
	f := newFixture(t, nil)
	day := f.mkdirs()
	body := testMail("written", 5000)

	// A valid id not in use is the message's id; the directory its verdict.
	id := lazaret.ID("1wShJQ-000000-07")
	if err := os.WriteFile(filepath.Join(day, "spam", string(id)), []byte(body), 0o660); err != nil {
		t.Fatal(err)
	}
	m, err := f.q.Stat(f.ctx(), id)
	if err != nil {
		t.Fatalf("stat after close: %v", err)
	}
	if m.Verdict.Kind != lazaret.VerdictSpam || m.History[0].Actor != "fuse" || m.Size != int64(len(body)) || m.Sender != "a@example.org" || !slices.Equal(m.Recipients, []string{"b@example.com"}) {
		t.Fatalf("stored %+v", m)
	}
	got, err := os.ReadFile(filepath.Join(day, "spam", string(id)))
	if err != nil || string(got) != body {
		t.Fatalf("read back: %v (%d bytes)", err, len(got))
	}

	// The same name again holds another message: the new one gets an
	// allocated id; so does a name that is not an id.
	before := readdir(t, filepath.Join(day, "nonspam"))
	for _, name := range []string{string(id), "incoming.eml"} {
		if err := os.WriteFile(filepath.Join(day, "nonspam", name), []byte(body+name), 0o660); err != nil {
			t.Fatal(err)
		}
	}
	after := readdir(t, filepath.Join(day, "nonspam"))
	if len(after) != len(before)+2 || slices.Contains(after, "incoming.eml") || slices.Contains(after, string(id)) {
		t.Fatalf("nonspam %v -> %v", before, after)
	}
	for _, n := range after {
		m, err := f.q.Stat(f.ctx(), lazaret.ID(n))
		if err != nil || m.Verdict.Kind != lazaret.VerdictOther {
			t.Fatalf("%s: %v %v", n, m, err)
		}
	}

	// The StoreInfections form: <id>/message is a virus.
	vid := "1wShJQ-000001-07"
	if err := os.Mkdir(filepath.Join(day, vid), 0o770); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(day, vid, "message"), []byte(body), 0o660); err != nil {
		t.Fatal(err)
	}
	if m, err := f.q.Stat(f.ctx(), lazaret.ID(vid)); err != nil || m.Verdict.Kind != lazaret.VerdictVirus {
		t.Fatalf("virus: %v %v", m, err)
	}

	// A temp name is stored when renamed to an id (rsync, editors).
	tmp := filepath.Join(day, "mcp", ".1wShJQ-000002-07.Xa1b2c")
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		t.Fatalf("chmod temp: %v", err)
	}
	if _, err := f.q.Stat(f.ctx(), "1wShJQ-000002-07"); !errors.Is(err, lazaret.ErrNotFound) {
		t.Fatalf("temp file stored before rename: %v", err)
	}
	if err := os.Rename(tmp, filepath.Join(day, "mcp", "1wShJQ-000002-07")); err != nil {
		t.Fatal(err)
	}
	if m, err := f.q.Stat(f.ctx(), "1wShJQ-000002-07"); err != nil || m.Verdict.Kind != lazaret.VerdictPolicy {
		t.Fatalf("after rename: %v %v", m, err)
	}

	// An empty file is no message: nothing stored, and it goes away.
	n := f.count()
	if err := os.WriteFile(filepath.Join(day, "spam", "1wShJQ-000003-07"), nil, 0o660); err != nil {
		t.Fatal(err)
	}
	if f.count() != n {
		t.Fatal("empty file stored")
	}
}

func TestUnlinkRmdirAndRmRf(t *testing.T) {
	f := newFixture(t, nil)
	var ms []*lazaret.Metadata
	for i, k := range []lazaret.VerdictKind{lazaret.VerdictSpam, lazaret.VerdictOther, lazaret.VerdictPolicy, lazaret.VerdictVirus, lazaret.VerdictSpam} {
		ms = append(ms, f.put(k, testMail(fmt.Sprint("m", i), 200)))
	}
	if err := os.Remove(f.path(ms[0])); err != nil {
		t.Fatal(err)
	}
	if _, err := f.q.Stat(f.ctx(), ms[0].ID); !errors.Is(err, lazaret.ErrNotFound) {
		t.Fatalf("unlinked message still there: %v", err)
	}
	st, err := f.q.List(f.ctx(), lazaret.ListQuery{States: []lazaret.State{lazaret.StateDeleted}})
	if err != nil || len(st.Messages) != 1 || st.Messages[0].History[len(st.Messages[0].History)-1].Actor != "fuse" {
		t.Fatalf("tombstone: %v %+v", err, st)
	}
	if _, err := os.Stat(f.path(ms[0])); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat after unlink: %v", err)
	}
	day := filepath.Join(f.dir, f.today())
	// An <id> dir emptied by unlinking its message is removed by rmdir
	// (shutil.rmtree does exactly this).
	if err := os.Remove(f.path(ms[3])); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Rmdir(filepath.Dir(f.path(ms[3]))); err != nil {
		t.Fatalf("rmdir of an emptied <id> dir: %v", err)
	}
	if err := syscall.Rmdir(filepath.Join(day, "spam")); err != syscall.ENOTEMPTY {
		t.Fatalf("rmdir of a non-empty kind dir: %v, want ENOTEMPTY", err)
	}
	if err := syscall.Rmdir(day); err != syscall.ENOTEMPTY {
		t.Fatalf("rmdir of a non-empty day: %v, want ENOTEMPTY", err)
	}
	// find -type d -empty -delete removes made, empty dirs only.
	if err := os.Mkdir(filepath.Join(day, "spam2"), 0o770); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("mkdir spam2: %v, want EPERM", err)
	}
	empty := filepath.Join(f.dir, "20200101")
	if err := os.MkdirAll(filepath.Join(empty, "mcp"), 0o770); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("find", f.dir, "-mindepth", "1", "-type", "d", "-empty", "-delete").CombinedOutput(); err != nil {
		t.Fatalf("find -delete: %v\n%s", err, out)
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty made day survived find -empty -delete: %v", err)
	}
	if f.count() != 3 {
		t.Fatalf("find -empty -delete changed messages: %d left", f.count())
	}
	if out, err := exec.Command("rm", "-rf", day).CombinedOutput(); err != nil {
		t.Fatalf("rm -rf day: %v\n%s", err, out)
	}
	if n := f.count(); n != 0 {
		t.Fatalf("%d messages left after rm -rf of the day", n)
	}
	if got := readdir(t, f.dir); len(got) != 0 {
		t.Fatalf("root after rm -rf: %v", got)
	}
}

func TestBadInputErrnos(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxMessageSize = 64 << 10 })
	m := f.put(lazaret.VerdictSpam, testMail("keep", 300))
	day := f.mkdirs()
	p := f.path(m)
	n := f.count()
	long := strings.Repeat("x", 300)
	cases := []struct {
		name string
		op   func() error
		want syscall.Errno
	}{
		{"mkdir not a day", func() error { return os.Mkdir(filepath.Join(f.dir, "notaday"), 0o770) }, syscall.EPERM},
		{"mkdir impossible date", func() error { return os.Mkdir(filepath.Join(f.dir, "20261340"), 0o770) }, syscall.EPERM},
		{"mkdir in a kind dir", func() error { return os.Mkdir(filepath.Join(day, "spam", "sub"), 0o770) }, syscall.EPERM},
		{"mkdir existing", func() error { return os.Mkdir(filepath.Join(day, "spam"), 0o770) }, syscall.EEXIST},
		{"file in the root", func() error { return os.WriteFile(filepath.Join(f.dir, "x"), []byte("x"), 0o660) }, syscall.EPERM},
		{"file in a day", func() error { return os.WriteFile(filepath.Join(day, "x"), []byte("x"), 0o660) }, syscall.EPERM},
		{"dotdot to the root", func() error {
			return os.WriteFile(filepath.Join(day, "spam")+"/../../1wShJQ-000009-07", []byte("x"), 0o660)
		}, syscall.EPERM},
		{"very long name", func() error { return os.WriteFile(filepath.Join(day, "spam", long), []byte("x"), 0o660) }, syscall.ENAMETOOLONG},
		{"attachment in an id dir", func() error {
			os.Mkdir(filepath.Join(day, "1wShJQ-000008-07"), 0o770)
			return os.WriteFile(filepath.Join(day, "1wShJQ-000008-07", "evil.exe"), []byte("x"), 0o660)
		}, syscall.EPERM},
		{"past the size limit", func() error {
			return os.WriteFile(filepath.Join(day, "spam", "1wShJQ-00000A-07"), make([]byte, 65<<10), 0o660)
		}, syscall.EFBIG},
		{"write a stored message", func() error { return os.WriteFile(p, []byte("x"), 0o660) }, syscall.EPERM},
		{"truncate a stored message", func() error { return os.Truncate(p, 1) }, syscall.EPERM},
		{"chmod outside the mode", func() error { return os.Chmod(p, 0o600) }, syscall.EPERM},
		{"chown to another user", func() error { return os.Chown(p, 4242, -1) }, syscall.EPERM},
		{"rename a stored message", func() error { return os.Rename(p, filepath.Join(day, "nonspam", string(m.ID))) }, syscall.EXDEV},
		{"rename a day", func() error { return os.Rename(day, filepath.Join(f.dir, "20200102")) }, syscall.EPERM},
		{"symlink", func() error { return os.Symlink("/etc/passwd", filepath.Join(day, "spam", "1wShJQ-00000B-07")) }, syscall.EPERM},
		{"hard link", func() error { return os.Link(p, filepath.Join(day, "spam", "1wShJQ-00000C-07")) }, syscall.EPERM},
		{"unlink a missing id", func() error { return os.Remove(filepath.Join(day, "spam", "1wShJQ-00000D-07")) }, syscall.ENOENT},
		{"unlink a non-id", func() error { return os.Remove(filepath.Join(day, "spam", "passwd")) }, syscall.ENOENT},
		{"rmdir a file", func() error { return syscall.Rmdir(p) }, syscall.ENOTDIR},
		{"unlink a dir", func() error { return syscall.Unlink(filepath.Join(day, "spam")) }, syscall.EISDIR},
	}
	for _, c := range cases {
		err := c.op()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if got := f.count(); got != n {
		t.Fatalf("bad input changed the store: %d messages, want %d", got, n)
	}
	// No-op attribute changes within the configuration are accepted.
	if err := os.Chmod(p, 0o660); err != nil {
		t.Errorf("chmod to the configured mode: %v", err)
	}
	if err := os.Chown(p, int(f.cfg.UID), int(f.cfg.GID)); err != nil {
		t.Errorf("chown to the configured owner: %v", err)
	}
	if err := os.Chown(day, int(f.cfg.UID), int(f.cfg.GID)); err != nil {
		t.Errorf("chown of a dir: %v", err)
	}
}

func TestKilledWriterLeavesNothing(t *testing.T) {
	f := newFixture(t, nil)
	day := f.mkdirs()
	target := filepath.Join(day, "spam", "1wShJQ-000010-07")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "LAZARET_FUSE_TEST_WRITER="+target)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8)
	if _, err := io.ReadAtLeast(out, buf, 7); err != nil || string(buf[:7]) != "started" {
		t.Fatalf("writer: %q %v", buf, err)
	}
	cmd.Process.Kill()
	cmd.Wait()
	time.Sleep(200 * time.Millisecond)
	if _, err := f.q.Stat(f.ctx(), "1wShJQ-000010-07"); !errors.Is(err, lazaret.ErrNotFound) {
		t.Fatalf("killed writer's file stored: %v", err)
	}
	if n := f.count(); n != 0 {
		t.Fatalf("%d messages after a killed writer", n)
	}
	if _, err := os.Stat(target); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("killed writer's file still visible: %v", err)
	}
}

// corrupting returns bodies with one byte flipped, as a disk or a buggy
// peer might.
type corrupting struct{ lazaret.Quarantine }

func (c corrupting) Open(ctx context.Context, id lazaret.ID) (*lazaret.Metadata, io.ReadCloser, error) {
	m, rc, err := c.Quarantine.Open(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	b[len(b)/2] ^= 1
	return m, io.NopCloser(bytes.NewReader(b)), nil
}

func TestCorruptReadIsEIO(t *testing.T) {
	node := newNode(t)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	f := mountOver(t, corrupting{node}, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(logFile, nil)) })
	m, err := node.Put(f.ctx(), lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam}}, strings.NewReader(testMail("c", 9000)))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.path(m))
	if !errors.Is(err, syscall.EIO) || len(b) != 0 {
		t.Fatalf("read of a corrupt body: %d bytes, %v; want EIO and no bytes", len(b), err)
	}
	if log, _ := os.ReadFile(logFile.Name()); !strings.Contains(string(log), string(m.ID)) {
		t.Fatalf("no log line naming %s: %s", m.ID, log)
	}
}
