package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// fuseMail is a message of about size bytes whose body carries word.
func fuseMail(i, size int, word string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: sender%d@example.org\r\nTo: rcpt@example.com\r\nSubject: message %d\r\n\r\n%s\r\n", i, i, word)
	for b.Len() < size {
		fmt.Fprintf(&b, "body line %d of message %d, 8bit \xe4\xf6\xfc\r\n", b.Len(), i)
	}
	return b.Bytes()
}

// waitUntil polls cond every 50 ms until it holds or the deadline passes,
// and returns how long it took.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return time.Since(start)
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// TestFUSEClusterTools runs the legacy tools, unchanged, on the mount of
// node 3 of a 3-node cluster, with messages put through node 1.
func TestFUSEClusterTools(t *testing.T) {
	needFUSE(t, "rsync", "file", "find", "grep")
	dir := shortTempDir(t)
	d := startDev(t, filepath.Join(dir, "c"), 3, "127.41.0.1")
	c1, c2 := d.client(1), d.client(2)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	now := time.Now()
	old := now.Add(-10 * 24 * time.Hour)
	type msg struct {
		m    *lazaret.Metadata
		body []byte
		old  bool
		word string
	}
	var msgs []msg
	kinds := []lazaret.VerdictKind{lazaret.VerdictSpam, lazaret.VerdictOther, lazaret.VerdictPolicy, lazaret.VerdictVirus, lazaret.VerdictHighSpam}
	sizes := []int{600, 40 << 10, 300 << 10}
	for i := range 12 {
		word := "plain"
		if i%3 == 0 {
			word = "needle-in-haystack"
		}
		body := fuseMail(i, sizes[i%len(sizes)], word)
		req := lazaret.PutRequest{Sender: "s@example.org", Recipients: []string{"r@example.com"}, Verdict: lazaret.Verdict{Kind: kinds[i%len(kinds)]}}
		if i%4 == 1 {
			req.Received = old
		}
		m, err := c1.Put(ctx, req, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, msg{m, body, i%4 == 1, word})
	}
	mnt := filepath.Join(dir, "m3")
	startMount(t, d.socket(3), mnt)
	path := func(m *lazaret.Metadata) string {
		day := m.Received.In(time.Local).Format("20060102")
		switch m.Verdict.Kind {
		case lazaret.VerdictVirus:
			return filepath.Join(mnt, day, string(m.ID), "message")
		case lazaret.VerdictOther:
			return filepath.Join(mnt, day, "nonspam", string(m.ID))
		case lazaret.VerdictPolicy:
			return filepath.Join(mnt, day, "mcp", string(m.ID))
		}
		return filepath.Join(mnt, day, "spam", string(m.ID))
	}
	var all []string
	for _, x := range msgs {
		all = append(all, path(x.m))
	}
	sort.Strings(all)
	waitUntil(t, 30*time.Second, "node 3 lists every message", func() bool {
		out, _ := exec.Command("find", mnt, "-type", "f").Output()
		return slices.Equal(lines(string(out)), all)
	})

	// find -mtime: retention by file age.
	var oldOnes, newOnes, needles []string
	for _, x := range msgs {
		if x.old {
			oldOnes = append(oldOnes, path(x.m))
		} else {
			newOnes = append(newOnes, path(x.m))
		}
		if x.word == "needle-in-haystack" {
			needles = append(needles, path(x.m))
		}
	}
	sort.Strings(oldOnes)
	sort.Strings(newOnes)
	sort.Strings(needles)
	if got := lines(sh(t, "find", mnt, "-type", "f", "-mtime", "+5")); !slices.Equal(got, oldOnes) {
		t.Fatalf("find -mtime +5 = %v, want %v", got, oldOnes)
	}
	if got := lines(sh(t, "find", mnt, "-type", "f", "-mtime", "-5")); !slices.Equal(got, newOnes) {
		t.Fatalf("find -mtime -5 = %v, want %v", got, newOnes)
	}
	if got := lines(sh(t, "grep", "-rl", "needle-in-haystack", mnt)); !slices.Equal(got, needles) {
		t.Fatalf("grep -rl = %v, want %v", got, needles)
	}

	// rsync -a to a local dir: byte-identical to `lazaret get` of every id,
	// and a second run finds nothing to copy (size and mtime are stable).
	local := filepath.Join(dir, "backup")
	sh(t, "rsync", "-a", mnt+"/", local+"/")
	for _, x := range msgs {
		rel, _ := filepath.Rel(mnt, path(x.m))
		got, err := os.ReadFile(filepath.Join(local, rel))
		if err != nil {
			t.Fatal(err)
		}
		want := mustLz(t, 30*time.Second, "get", "--socket", d.socket(2), string(x.m.ID))
		if string(got) != want || !bytes.Equal(got, x.body) {
			t.Fatalf("%s: rsync copy (%d bytes) differs from lazaret get (%d bytes)", rel, len(got), len(want))
		}
		fi, _ := os.Stat(filepath.Join(local, rel))
		if !fi.ModTime().Equal(x.m.Received.Truncate(time.Second)) && !fi.ModTime().Equal(x.m.Received) {
			t.Fatalf("%s: mtime %v, received %v", rel, fi.ModTime(), x.m.Received)
		}
	}
	if out := sh(t, "rsync", "-ai", mnt+"/", local+"/"); strings.TrimSpace(out) != "" {
		t.Fatalf("second rsync copied again:\n%s", out)
	}

	// cat, cp and file -bi.
	first := msgs[0]
	if out := sh(t, "cat", path(first.m)); out != string(first.body) {
		t.Fatal("cat differs")
	}
	sh(t, "cp", path(first.m), filepath.Join(dir, "copy.eml"))
	if b, _ := os.ReadFile(filepath.Join(dir, "copy.eml")); !bytes.Equal(b, first.body) {
		t.Fatal("cp differs")
	}
	if out := sh(t, "file", "-bi", path(first.m)); !strings.HasPrefix(out, "message/rfc822") {
		t.Fatalf("file -bi = %q", out)
	}

	// MailWatch's and Baruwa's lookups: <date>/<id>/message, then
	// <date>/{spam,nonspam,mcp}/<id>; the first that exists wins.
	for _, x := range msgs {
		day := x.m.Received.In(time.Local).Format("20060102")
		found := ""
		for _, cand := range []string{
			filepath.Join(mnt, day, string(x.m.ID), "message"),
			filepath.Join(mnt, day, "spam", string(x.m.ID)),
			filepath.Join(mnt, day, "nonspam", string(x.m.ID)),
			filepath.Join(mnt, day, "mcp", string(x.m.ID)),
		} {
			if _, err := os.Stat(cand); err == nil {
				found = cand
				break
			}
		}
		if found != path(x.m) {
			t.Fatalf("%s: lookup found %q, want %q", x.m.ID, found, path(x.m))
		}
	}

	// Writes through node 3's mount: cp and a shell writer; node 2 sees them.
	today := filepath.Join(mnt, now.In(time.Local).Format("20060102"))
	sh(t, "mkdir", "-p", filepath.Join(today, "spam"), filepath.Join(today, "nonspam"))
	src := filepath.Join(dir, "in.eml")
	os.WriteFile(src, fuseMail(100, 5000, "written"), 0o644)
	sh(t, "cp", src, filepath.Join(today, "spam", "1wShJQ-000001-0A"))
	sh(t, "sh", "-c", `printf 'From: shell@example.org\r\nTo: r@example.com\r\nSubject: sh\r\n\r\nfrom a shell\r\n' > "$1"`, "sh", filepath.Join(today, "nonspam", "1wShJQ-000002-0A"))
	for id, verdict := range map[string]string{"1wShJQ-000001-0A": "spam", "1wShJQ-000002-0A": "other"} {
		waitUntil(t, 15*time.Second, "node 2 stats "+id, func() bool {
			out, err := lz(t, 10*time.Second, "stat", "--socket", d.socket(2), id)
			return err == nil && strings.Contains(out, "verdict:     "+verdict)
		})
	}
	want, _ := os.ReadFile(src)
	if got := mustLz(t, 30*time.Second, "get", "--socket", d.socket(1), "1wShJQ-000001-0A"); got != string(want) {
		t.Fatal("written message differs on node 1")
	}

	// Visibility bound: a put and a delete through node 2 reach node 3's
	// listing within EntryTimeout + ListTTL after the metadata arrives.
	vm, err := c2.Put(ctx, lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam}}, bytes.NewReader(fuseMail(200, 900, "visible")))
	if err != nil {
		t.Fatal(err)
	}
	spamDir := filepath.Dir(path(vm))
	listed := func() bool {
		es, _ := os.ReadDir(spamDir)
		return slices.ContainsFunc(es, func(e fs.DirEntry) bool { return e.Name() == string(vm.ID) })
	}
	appear := waitUntil(t, 15*time.Second, "put on node 2 listed on node 3", listed)
	if _, err := c2.Delete(ctx, vm.ID, "test"); err != nil {
		t.Fatal(err)
	}
	vanish := waitUntil(t, 15*time.Second, "delete on node 2 unlisted on node 3", func() bool { return !listed() })
	t.Logf("visibility through node 3's mount: put %v, delete %v", appear.Round(time.Millisecond), vanish.Round(time.Millisecond))

	// A message put on node 1, read through node 3 while node 1 is dead.
	late, err := c1.Put(ctx, lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: lazaret.VerdictPolicy}}, bytes.NewReader(fuseMail(300, 200<<10, "late")))
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 15*time.Second, "node 3 stats the late message", func() bool { _, err := os.Stat(path(late)); return err == nil })
	syscall.Kill(d.pid(1), syscall.SIGKILL)
	got, err := os.ReadFile(path(late))
	if err != nil || !bytes.Equal(got, fuseMail(300, 200<<10, "late")) {
		t.Fatalf("read through node 3 with node 1 dead: %v (%d bytes)", err, len(got))
	}

	// rm of one message, rm -rf of the old day, find -type d -empty -delete.
	sh(t, "rm", path(first.m))
	waitUntil(t, 15*time.Second, "node 2 sees the rm", func() bool {
		_, err := lz(t, 10*time.Second, "stat", "--socket", d.socket(2), string(first.m.ID))
		return err != nil
	})
	oldDay := filepath.Join(mnt, old.In(time.Local).Format("20060102"))
	sh(t, "rm", "-rf", oldDay)
	if _, err := os.Stat(oldDay); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old day after rm -rf: %v", err)
	}
	for _, x := range msgs {
		if x.old {
			if _, err := c2.Stat(ctx, x.m.ID); !errors.Is(err, lazaret.ErrNotFound) {
				t.Fatalf("%s survived rm -rf of its day: %v", x.m.ID, err)
			}
		}
	}
	os.MkdirAll(filepath.Join(today, "mcp"), 0o770)
	sh(t, "find", mnt, "-mindepth", "1", "-type", "d", "-empty", "-delete")
	if _, err := os.Stat(filepath.Join(today, "spam", "1wShJQ-000001-0A")); err != nil {
		t.Fatalf("find -empty -delete removed a message: %v", err)
	}
}

// TestFUSEOutage kills the node under a mount: calls fail with EIO at
// once, the mount stays, and serves again when the node is back. SIGTERM
// unmounts and exits 0; a second mount on a busy mountpoint is refused.
func TestFUSEOutage(t *testing.T) {
	needFUSE(t)
	dir := shortTempDir(t)
	p := startServe(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	m, err := p.client().Put(ctx, lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam}}, bytes.NewReader(fuseMail(1, 3000, "x")))
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(dir, "mnt")
	mp := startMount(t, p.socket, mnt)
	file := filepath.Join(mnt, m.Received.In(time.Local).Format("20060102"), "spam", string(m.ID))
	if _, err := os.Stat(file); err != nil {
		t.Fatal(err)
	}
	out, err := lz(t, 10*time.Second, "mount", "--socket", p.socket, mnt)
	if err == nil || !strings.Contains(out, "busy") {
		t.Fatalf("second mount on a busy mountpoint: %v %s", err, out)
	}

	p.kill()
	time.Sleep(1200 * time.Millisecond) // past the entry and listing caches
	start := time.Now()
	_, err = os.ReadFile(file)
	if !errors.Is(err, syscall.EIO) && !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("read with the node dead: %v, want EIO", err)
	}
	if _, err := os.ReadDir(filepath.Dir(file)); !errors.Is(err, syscall.EIO) {
		t.Fatalf("readdir with the node dead: %v, want EIO", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("errors took %v", took)
	}
	t.Logf("with the node dead: EIO after %v", time.Since(start).Round(time.Millisecond))

	startServe(t, dir) // same data and socket
	took := waitUntil(t, 20*time.Second, "mount serves again", func() bool {
		b, err := os.ReadFile(file)
		return err == nil && len(b) == int(m.Size)
	})
	t.Logf("mount served again %v after the node answered", took.Round(time.Millisecond))

	mp.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-mp.done:
	case <-time.After(20 * time.Second):
		t.Fatal("lazaret mount did not exit on SIGTERM")
	}
	if code := mp.cmd.ProcessState.ExitCode(); code != 0 || mounted(mnt) {
		t.Fatalf("after SIGTERM: exit %d, still mounted %v\n%s", code, mounted(mnt), mp.out.String())
	}
}

// TestFUSEServeMount: serve mounts the view itself with [fuse] mountpoint
// and unmounts it when it stops.
func TestFUSEServeMount(t *testing.T) {
	needFUSE(t)
	dir := shortTempDir(t)
	mnt := filepath.Join(dir, "quarantine")
	cfg := filepath.Join(dir, "lazaret.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("[fuse]\nmountpoint = %q\ntime_zone = \"UTC\"\npermissions = \"0640\"\n", mnt)), 0o644)
	p := startServe(t, dir, "--config", cfg)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := p.client().Put(ctx, lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: lazaret.VerdictVirus}}, bytes.NewReader(fuseMail(1, 900, "v")))
	if err != nil {
		t.Fatal(err)
	}
	if !mounted(mnt) {
		t.Fatalf("serve did not mount %s:\n%s", mnt, p.log.String())
	}
	fi, err := os.Stat(filepath.Join(mnt, m.Received.UTC().Format("20060102"), string(m.ID), "message"))
	if err != nil || fi.Size() != m.Size || fi.Mode().Perm() != 0o640 {
		t.Fatalf("virus message in serve's mount: %v %v", fi, err)
	}
	p.stop()
	if mounted(mnt) {
		t.Fatal("still mounted after serve stopped")
	}
}
