package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// Each cluster test uses its own loopback range (127.<test>.0.x), so the
// tests' fixed peer and gossip ports never collide with each other or
// with a `make run` cluster on 127.0.0.x.

// lz runs one lazaret command to completion (with a deadline) and returns
// its combined output.
func lz(t *testing.T, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	return string(out), err
}

// mustLz is lz that fails the test on error.
func mustLz(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	out, err := lz(t, timeout, args...)
	if err != nil {
		t.Fatalf("lazaret %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// devCluster is a running `lazaret dev`.
type devCluster struct {
	t     *testing.T
	dir   string
	n     int
	cmd   *exec.Cmd
	out   *syncBuffer
	done  chan struct{}
	first string
	bin   string // the lazaret executable
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startDev runs `lazaret dev --nodes n --dir dir --first-ip first` and waits
// until it reports the cluster running.
func startDev(t *testing.T, dir string, n int, first string, extra ...string) *devCluster {
	t.Helper()
	return startDevWith(t, binary, dir, n, first, extra...)
}

// startDevWith is startDev with another lazaret executable.
func startDevWith(t *testing.T, bin, dir string, n int, first string, extra ...string) *devCluster {
	t.Helper()
	args := append([]string{"dev", "--nodes", strconv.Itoa(n), "--dir", dir, "--first-ip", first}, extra...)
	cmd := exec.Command(bin, args...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devCluster{t: t, dir: dir, n: n, cmd: cmd, out: out, done: make(chan struct{}), first: first, bin: bin}
	go func() { cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.kill() })
	deadline := time.After(120 * time.Second)
	for !strings.Contains(out.String(), "-node cluster running") {
		select {
		case <-d.done:
			t.Fatalf("lazaret dev exited:\n%s\n%s", out.String(), d.logs())
		case <-deadline:
			t.Fatalf("lazaret dev did not start within 120s:\n%s\n%s", out.String(), d.logs())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return d
}

func (d *devCluster) nodeDir(k int) string { return filepath.Join(d.dir, "node"+strconv.Itoa(k)) }
func (d *devCluster) socket(k int) string  { return filepath.Join(d.nodeDir(k), "lazaret.sock") }
func (d *devCluster) config(k int) string  { return filepath.Join(d.nodeDir(k), "lazaret.toml") }

// pid reads node k's pid file.
func (d *devCluster) pid(k int) int {
	b, err := os.ReadFile(filepath.Join(d.nodeDir(k), "pid"))
	if err != nil {
		d.t.Fatal(err)
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		d.t.Fatal(err)
	}
	return p
}

// logs returns the tail of every node's log, for failure messages.
func (d *devCluster) logs() string {
	var b strings.Builder
	for k := 1; k <= d.n; k++ {
		data, _ := os.ReadFile(filepath.Join(d.nodeDir(k), "log"))
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		b.WriteString("---- node" + strconv.Itoa(k) + " log tail ----\n" + string(data) + "\n")
	}
	return b.String()
}

// stop sends SIGINT, as Ctrl-C would, and waits for a clean exit.
func (d *devCluster) stop() {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-d.done:
	case <-time.After(45 * time.Second):
		d.t.Fatalf("lazaret dev did not stop on SIGINT within 45s:\n%s", d.out.String())
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		d.t.Fatalf("lazaret dev exited %d:\n%s", code, d.out.String())
	}
}

// kill stops dev and every node it started, whatever their state.
func (d *devCluster) kill() {
	select {
	case <-d.done:
	default:
		d.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-d.done:
		case <-time.After(45 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	for k := 1; k <= d.n; k++ {
		if b, err := os.ReadFile(filepath.Join(d.nodeDir(k), "pid")); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(p, syscall.SIGKILL)
			}
		}
	}
}

// client dials node k's API socket.
func (d *devCluster) client(k int) *rpc.Client {
	d.t.Helper()
	c, err := rpc.DialUnix(d.socket(k))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() { c.Close() })
	return c
}

// clusterStatus runs `lazaret status --json` against socket.
func clusterStatus(t *testing.T, socket string) (*lazaret.NodeStatus, error) {
	t.Helper()
	out, err := lz(t, 20*time.Second, "status", "--json", "--socket", socket)
	if err != nil {
		return nil, &statusErr{out}
	}
	var st lazaret.NodeStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

type statusErr struct{ out string }

func (e *statusErr) Error() string { return "lazaret status: " + e.out }

// waitMembers waits until the status from socket lists exactly want
// (node number → state) and every alive member reported its figures.
func waitMembers(t *testing.T, socket string, want map[int]string, timeout time.Duration) *lazaret.NodeStatus {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		st, err := clusterStatus(t, socket)
		if err == nil {
			got := map[int]string{}
			reported := true
			for _, m := range st.Members {
				got[m.Node] = m.State
				if m.State == "alive" && !m.Reported {
					reported = false
				}
			}
			if mapsEqual(got, want) && reported {
				return st
			}
			b, _ := json.Marshal(st.Members)
			last = string(b)
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("status from %s: want members %v, last saw %s", socket, want, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func mapsEqual(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// tokenFrom extracts the "join token: ..." line of init or token rotate.
func tokenFrom(t *testing.T, out string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if tok, ok := strings.CutPrefix(sc.Text(), "join token: "); ok {
			return strings.TrimSpace(tok)
		}
	}
	t.Fatalf("no join token in:\n%s", out)
	return ""
}

// serveNode runs `lazaret serve --config` for a node directory made by
// init/join and waits for its API; it returns nil and the output if the
// process exits first.
func serveNode(t *testing.T, dir string, wait time.Duration) (*proc, string) {
	t.Helper()
	return serveNodeWith(t, binary, dir, wait)
}

// serveNodeWith is serveNode with another lazaret executable and extra
// serve flags.
func serveNodeWith(t *testing.T, bin, dir string, wait time.Duration, extra ...string) (*proc, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--config", filepath.Join(dir, "lazaret.toml")}, extra...)...)
	var log bytes.Buffer
	lw := &lockedWriter{w: &log}
	cmd.Stdout, cmd.Stderr = lw, lw
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, socket: filepath.Join(dir, "lazaret.sock"), log: &log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(wait)
	for {
		if c, err := rpc.DialUnix(p.socket); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = c.Status(ctx)
			cancel()
			c.Close()
			if err == nil {
				return p, ""
			}
		}
		select {
		case <-p.done:
			lw.mu.Lock()
			defer lw.mu.Unlock()
			return nil, log.String()
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lazaret serve did not answer within %v:\n%s", wait, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

var (
	plainOnce sync.Once
	plainPath string
	plainErr  error
)

// plainBinary builds lazaret without the race detector, once, for the
// volume test: five race-instrumented nodes on a small VM move bytes about
// five times slower, and the race-built binary already runs every other
// cluster test.
func plainBinary(t *testing.T) string {
	t.Helper()
	plainOnce.Do(func() {
		plainPath = filepath.Join(filepath.Dir(binary), "lazaret-norace")
		_, here, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", plainPath, "./cmd/lazaret")
		cmd.Dir = filepath.Dir(filepath.Dir(here))
		out, err := cmd.CombinedOutput()
		if err != nil {
			plainErr = fmt.Errorf("building lazaret without -race: %v\n%s", err, out)
		}
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainPath
}
