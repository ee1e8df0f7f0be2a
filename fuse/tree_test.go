package fuse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func testMail(subject string, size int) string {
	var b strings.Builder
	b.WriteString("From: a@example.org\r\nTo: b@example.com\r\nSubject: " + subject + "\r\n\r\n")
	for b.Len() < size {
		b.WriteString("line of body text with 8bit \xe4\xf6 and a NUL \x00\r\n")
	}
	return b.String()
}

func readdir(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestTreeLayoutStatAndRead(t *testing.T) {
	f := newFixture(t, nil)
	spam := f.put(lazaret.VerdictSpam, testMail("spam", 3000))
	high := f.put(lazaret.VerdictHighSpam, testMail("high", 100))
	other := f.put(lazaret.VerdictOther, testMail("other", 70000))
	policy := f.put(lazaret.VerdictPolicy, testMail("policy", 10))
	virus := f.put(lazaret.VerdictVirus, testMail("virus", 500))
	day := f.today()

	if got := readdir(t, f.dir); !slices.Equal(got, []string{day}) {
		t.Fatalf("root = %v, want [%s]", got, day)
	}
	want := []string{string(virus.ID), "mcp", "nonspam", "spam"}
	slices.Sort(want)
	if got := readdir(t, filepath.Join(f.dir, day)); !slices.Equal(got, want) {
		t.Fatalf("day = %v, want %v", got, want)
	}
	spamIDs := []string{string(spam.ID), string(high.ID)}
	slices.Sort(spamIDs)
	if got := readdir(t, filepath.Join(f.dir, day, "spam")); !slices.Equal(got, spamIDs) {
		t.Fatalf("spam = %v, want %v", got, spamIDs)
	}
	for _, m := range []*lazaret.Metadata{spam, high, other, policy, virus} {
		p := f.path(m)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("stat %s: %v", p, err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Size() != m.Size || !fi.ModTime().Equal(m.Received) || fi.Mode().Perm() != 0o660 || st.Uid != f.cfg.UID || st.Blocks != (m.Size+511)/512 {
			t.Errorf("%s: size %d mtime %v mode %v uid %d blocks %d; want %d %v 0660 %d", p, fi.Size(), fi.ModTime(), fi.Mode(), st.Uid, st.Blocks, m.Size, m.Received, f.cfg.UID)
		}
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("read %s: %v", p, err)
		}
		_, rc, err := f.q.Open(f.ctx(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, body) {
			t.Errorf("%s: read %d bytes differing from the store's %d", p, len(got), len(body))
		}
	}
	dfi, err := os.Stat(filepath.Join(f.dir, day, string(virus.ID)))
	if err != nil || !dfi.IsDir() || dfi.Mode().Perm() != 0o770 {
		t.Fatalf("virus dir: %v %v", dfi, err)
	}
	// Wrong place and not-an-id lookups.
	for _, p := range []string{
		filepath.Join(f.dir, day, "nonspam", string(spam.ID)),
		filepath.Join(f.dir, day, "spam", "not-an-id"),
		filepath.Join(f.dir, "2026130"), filepath.Join(f.dir, "20261341"),
		filepath.Join(f.dir, day, "nonmcp"),
	} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat %s: %v, want ENOENT", p, err)
		}
	}
	// A deleted message disappears (within the listing TTL).
	if _, err := f.q.Delete(f.ctx(), spam.ID, "test"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for slices.Contains(readdir(t, filepath.Join(f.dir, day, "spam")), string(spam.ID)) {
		if time.Now().After(deadline) {
			t.Fatal("deleted message still listed after 5 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// counting counts body fetches.
type counting struct {
	lazaret.Quarantine
	mu    sync.Mutex
	opens int
}

func (c *counting) Open(ctx context.Context, id lazaret.ID) (*lazaret.Metadata, io.ReadCloser, error) {
	c.mu.Lock()
	c.opens++
	c.mu.Unlock()
	return c.Quarantine.Open(ctx, id)
}

func TestListingNeverFetchesBodies(t *testing.T) {
	node := newNode(t)
	cq := &counting{Quarantine: node}
	f := mountOver(t, cq, nil)
	for i := range 50 {
		f.put(lazaret.VerdictKind(i%5), testMail(fmt.Sprint(i), 100+i*100))
	}
	out, err := exec.Command("find", f.dir, "-type", "f", "-mtime", "-1", "-size", "+1k", "-ls").CombinedOutput()
	if err != nil || strings.Count(string(out), "\n") == 0 {
		t.Fatalf("find: %v\n%s", err, out)
	}
	if _, err := exec.Command("ls", "-lR", f.dir).CombinedOutput(); err != nil {
		t.Fatal(err)
	}
	cq.mu.Lock()
	defer cq.mu.Unlock()
	if cq.opens != 0 {
		t.Fatalf("find and ls -lR fetched %d bodies", cq.opens)
	}
}
