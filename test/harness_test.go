package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret/proto/rpc"
)

// binary is the lazaret executable built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lzbin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "lazaret")
	_, here, _, _ := runtime.Caller(0)
	// The processes run without the race detector unless LAZARET_TEST_RACE
	// is set: every package's own tests already run with -race in process,
	// and five race-built nodes on two cores are slow enough to make gossip
	// flap, which tests timing rather than the code.
	args := []string{"build", "-o", binary, "./cmd/lazaret"}
	if os.Getenv("LAZARET_TEST_RACE") != "" {
		args = []string{"build", "-race", "-o", binary, "./cmd/lazaret"}
	}
	cmd := exec.Command("go", args...)
	if os.Getenv("LAZARET_TEST_RACE") == "" {
		// Static, as `make deb` builds it (and sharing its build cache).
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	}
	cmd.Dir = filepath.Dir(filepath.Dir(here))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building lazaret:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shortTempDir returns a temporary directory with a short path: unix socket
// paths must fit in 108 bytes, which t.TempDir() under a long test name may not.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lz")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// proc is one running lazaret serve process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	socket string
	log    *bytes.Buffer
	done   chan struct{}
}

// startServe starts `lazaret serve` with the given extra args and waits until
// its API answers.
func startServe(t *testing.T, dir string, args ...string) *proc {
	t.Helper()
	socket := filepath.Join(dir, "lazaret.sock")
	full := append([]string{"serve", "--data", filepath.Join(dir, "data"), "--socket", socket}, args...)
	cmd := exec.Command(binary, full...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, socket: socket, log: &log, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := rpc.DialUnix(socket); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err = c.Status(ctx)
			cancel()
			c.Close()
			if err == nil {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("lazaret serve exited at start-up:\n%s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("lazaret serve did not answer within 30s:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and waits up to 30 s for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.kill()
		p.t.Fatalf("lazaret serve did not stop on SIGTERM within 30s:\n%s", p.log.String())
	}
}

func (p *proc) client() *rpc.Client {
	p.t.Helper()
	c, err := rpc.DialUnix(p.socket)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() { c.Close() })
	return c
}
