package test

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret/fuse"
)

// needFUSE skips a test that cannot mount here, naming what is missing.
func needFUSE(t *testing.T, tools ...string) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			t.Skip("not root and no fusermount3 (apt-get install fuse3)")
		}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (test/deps.sh installs it)", tool)
		}
	}
}

// mounted reports whether dir is a mount point.
func mounted(dir string) bool { return fuse.Mounted(dir) }

// mountProc is a running `lazaret mount`.
type mountProc struct {
	t    *testing.T
	dir  string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startMount runs `lazaret mount --socket socket dir` and waits until dir
// is mounted.
func startMount(t *testing.T, socket, dir string, extra ...string) *mountProc {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, append([]string{"mount", "--socket", socket, dir}, extra...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &mountProc{t: t, dir: dir, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	deadline := time.Now().Add(20 * time.Second)
	for !mounted(dir) {
		select {
		case <-p.done:
			t.Fatalf("lazaret mount exited:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not mounted within 20 s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// stop sends SIGTERM and waits; a mount left behind is detached.
func (p *mountProc) stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if mounted(p.dir) {
		syscall.Unmount(p.dir, syscall.MNT_DETACH)
	}
}
