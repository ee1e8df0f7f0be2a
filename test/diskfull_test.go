package test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// freeAddrOn returns a free TCP address on ip.
func freeAddrOn(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// A node whose data directory fills up answers puts with temporary errors
// (gRPC Unavailable, SMTP 452) instead of dying of SIGBUS in badger
// (issue 16, issue 10 item 4), keeps serving reads, says why in /health,
// and takes mail again by itself once space is freed; what it stored
// survives a restart intact.
func TestDiskFullNode(t *testing.T) {
	dir := shortTempDir(t)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=64m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	conf := filepath.Join(dir, "lazaret.toml")
	if err := os.WriteFile(conf, []byte("[store]\nmin_free = \"16MiB\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	smtpAddr, httpAddr := freeAddrOn(t, "127.45.0.1"), freeAddrOn(t, "127.45.0.1")
	args := []string{"--config", conf, "--data", filepath.Join(mnt, "data"), "--smtp", smtpAddr, "--http", httpAddr}
	p := startServe(t, dir, args...) // the later --data wins
	c := p.client()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Another tenant takes all but about 26 MiB: 16 reserved, 10 to fill.
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, free-26<<20), 0o600); err != nil {
		t.Fatal(err)
	}

	stored := map[lazaret.ID][]byte{}
	var full error
	for i := 0; i < 100; i++ {
		body := fmt.Appendf(nil, "Subject: fill %d\r\n\r\n%s", i, bytes.Repeat([]byte{'a' + byte(i%26)}, 1<<20))
		m, err := c.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.com"}}, bytes.NewReader(body))
		if err != nil {
			full = err
			break
		}
		stored[m.ID] = body
	}
	if full == nil {
		t.Fatal("100 puts of 1 MiB fitted in 26 MiB")
	}
	var re *rpc.RemoteError
	if !errors.As(full, &re) || !errors.Is(full, lazaret.ErrUnavailable) || !strings.Contains(full.Error(), "disk full") {
		t.Fatalf("put on a full disk: %v (%T); want a temporary (Unavailable) disk-full error", full, full)
	}
	if len(stored) < 3 {
		t.Fatalf("only %d puts before the disk was full", len(stored))
	}
	t.Logf("%d puts of 1 MiB, then: %v", len(stored), full)

	// SMTP: 452, so the MTA keeps the message.
	err := smtpSend(smtpAddr, "Subject: by smtp\r\n\r\n"+strings.Repeat(strings.Repeat("x", 76)+"\r\n", 30000))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 {
		t.Errorf("SMTP on a full disk: %v; want 452\n%s", err, p.log.String())
	}

	// /health says why.
	health := func() (int, string) {
		resp, err := http.Get("http://" + httpAddr + "/health")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, h := health(); code == http.StatusOK || !strings.Contains(h, "disk full") {
		t.Errorf("/health on a full disk: %d %s", code, h)
	}

	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := regexp.MustCompile(`(?m)^lazaret_store_disk_full_refusals_total ([0-9.e+]+)$`).FindSubmatch(metrics); m == nil || string(m[1]) == "0" {
		t.Errorf("/metrics on a full disk: refusals %q", m)
	}

	// Another tenant takes the last block too: still refused, still alive.
	f, err := os.OpenFile(filler, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 1<<20))
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the file system: %v", err)
	}
	if _, err := c.Put(ctx, lazaret.PutRequest{}, strings.NewReader("Subject: x\r\n\r\ny\r\n")); !errors.Is(err, lazaret.ErrUnavailable) {
		t.Errorf("put on a file system with no block free: %v", err)
	}

	// Reads go on, byte-identical.
	readAll := func(c *rpc.Client) {
		t.Helper()
		for id, want := range stored {
			_, r, err := c.Open(ctx, id)
			if err != nil {
				t.Fatalf("get %s: %v", id, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("get %s: %d bytes, %v", id, len(got), err)
			}
		}
	}
	readAll(c)
	if _, err := c.List(ctx, lazaret.ListQuery{}); err != nil {
		t.Errorf("ls on a full disk: %v", err)
	}

	// Space comes back: puts resume without a restart.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	body := []byte("Subject: after\r\n\r\nspace is back\r\n")
	m, err := c.Put(ctx, lazaret.PutRequest{Recipients: []string{"b@example.com"}}, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("put after space was freed: %v", err)
	}
	stored[m.ID] = body
	if err := smtpSend(smtpAddr, "Subject: smtp after\r\n\r\nok\r\n"); err != nil {
		t.Errorf("SMTP after space was freed: %v", err)
	}
	if code, h := health(); strings.Contains(h, "disk full") {
		t.Errorf("/health after space was freed: %d %s", code, h)
	}

	// Nothing stored was damaged: kill -9, restart, read everything.
	p.kill()
	p = startServe(t, dir, args...) // the later --data wins
	readAll(p.client())
}

// smtpSend sends msg from a@example.org to b@example.com over plain SMTP
// and returns the DATA reply's error.
func smtpSend(addr, msg string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("test.example"); err != nil {
		return err
	}
	if err := c.Mail("a@example.org", nil); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.com", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}
