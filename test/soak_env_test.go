package test

// The fault soak's surroundings (soak_test.go): a service namespace on the
// cluster's bridge with PostgreSQL and an SMTP sink for releases, the
// disk of one node on a small tmpfs, and the fault primitives — routes,
// traffic shaping, clock steps, process pauses.

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"
)

// soakSvcAddr is the service namespace's address (PostgreSQL, sink).
const soakSvcAddr = "10.77.146.200"

// soakNode returns node k's address in the soak's network.
func soakNode(k int) string { return fmt.Sprintf("10.77.146.%d", k) }

// addSvcNamespace adds the service namespace <prefix>-svc to the cluster's
// bridge with address soakSvcAddr.
func addSvcNamespace(t *testing.T, c *netCluster) string {
	t.Helper()
	ns := c.prefix + "-svc"
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("netns", "add", ns)
	t.Cleanup(func() { ipCmd("netns", "del", ns) })
	must("-n", ns, "link", "set", "lo", "up")
	must("-n", c.sw, "link", "add", "name", "psvc", "type", "veth", "peer", "name", "eth0", "netns", ns)
	must("-n", c.sw, "link", "set", "psvc", "master", "br0")
	must("-n", c.sw, "link", "set", "psvc", "up")
	must("-n", ns, "addr", "add", soakSvcAddr+"/24", "dev", "eth0")
	must("-n", ns, "link", "set", "eth0", "up")
	return ns
}

// startSoakPG starts PostgreSQL in namespace ns on soakSvcAddr:5432 and
// creates database lzsoak. It returns the DSN the nodes use (TCP in the
// namespace network) and the one the test uses (the unix socket, which
// works across namespaces).
func startSoakPG(t *testing.T, ns string) (nodeDSN, testDSN string) {
	t.Helper()
	if fi, err := os.Stat("/dev/null"); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/null is not the null device (%v, %v): something on this machine replaced it; PostgreSQL cannot run", fi.Mode(), err)
	}
	p := initPG(t)
	hba := filepath.Join(p.dir, "data", "pg_hba.conf")
	f, err := os.OpenFile(hba, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "host all all 10.77.146.0/24 scram-sha-256")
	f.Close()
	opts := fmt.Sprintf("-p 5432 -k %s -c listen_addresses=%s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", p.dir, soakSvcAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{"netns", "exec", ns}
	if p.cred != nil {
		args = append(args, "runuser", "-u", "postgres", "--")
	}
	args = append(args, filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(p.dir, "data"), "-l", filepath.Join(p.dir, "log"), "-w", "-t", "60", "-o", opts, "start")
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(p.dir, "log"))
		t.Fatalf("starting PostgreSQL in %s: %v\n%s\n%s", ns, err, out, log)
	}
	p.port = 5432
	testDSN = fmt.Sprintf("host=%s port=5432 user=%s password=%s dbname=%%s sslmode=disable", p.dir, pgUser, pgPassword)
	conn := pgConn(t, fmt.Sprintf(testDSN, "postgres"))
	if _, err := conn.Exec(ctx, "CREATE DATABASE lzsoak"); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("postgres://%s:%s@%s:5432/lzsoak?sslmode=disable&connect_timeout=5", pgUser, pgPassword, soakSvcAddr),
		fmt.Sprintf(testDSN, "lzsoak")
}

// listenInNetns opens a TCP listener inside network namespace ns: the
// socket is made on a thread switched into ns and stays there when the
// thread switches back.
func listenInNetns(ns, addr string) (net.Listener, error) {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("setns %s: %w", ns, err)
	}
	l, lerr := net.Listen("tcp", addr)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays in ns: leave it locked so that it dies with
		// this goroutine instead of running others.
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return l, lerr
}

// soakSink is the SMTP server releases are delivered to: it counts the
// deliveries of each body (by SHA-256).
type soakSink struct {
	mu  sync.Mutex
	got map[[32]byte]int
}

func (k *soakSink) count(sum [32]byte) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.got[sum]
}

// startSoakSink serves SMTP in namespace ns on soakSvcAddr:2525.
func startSoakSink(t *testing.T, ns string) *soakSink {
	t.Helper()
	k := &soakSink{got: map[[32]byte]int{}}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &soakSinkSess{k: k}, nil }))
	srv.Domain = "sink.example"
	srv.ReadTimeout, srv.WriteTimeout = 60*time.Second, 60*time.Second
	srv.MaxMessageBytes = 64 << 20
	srv.MaxLineLength = 4000
	l, err := listenInNetns(ns, soakSvcAddr+":2525")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return k
}

type soakSinkSess struct{ k *soakSink }

func (s *soakSinkSess) Reset()                               {}
func (s *soakSinkSess) Logout() error                        { return nil }
func (s *soakSinkSess) Mail(string, *smtp.MailOptions) error { return nil }
func (s *soakSinkSess) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *soakSinkSess) Data(r io.Reader) error {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return err
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	s.k.mu.Lock()
	s.k.got[sum]++
	s.k.mu.Unlock()
	return nil
}

// mountTmpfs mounts a tmpfs of size bytes on dir (created) and unmounts it
// lazily at the end of the test (after the processes using it are gone).
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0750", size), "lzsoak", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs on %s: %v: %s", dir, err, out)
	}
}

// remount changes dir's mount to ro or rw.
func remount(dir, mode string) error {
	out, err := exec.Command("mount", "-o", "remount,"+mode, dir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("remount %s %s: %v: %s", dir, mode, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// fillDisk writes a ballast file into dir until the file system is full.
func fillDisk(dir string) (int64, error) {
	f, err := os.Create(filepath.Join(dir, "ballast"))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return n, nil
			}
			return n, err
		}
	}
}

// nsRoute adds (add) or deletes (del) a blackhole route to dst in ns: the
// namespace can no longer send to dst (an asymmetric cut when done on one
// side only).
func nsRoute(ns, verb, dst string) error {
	return ipCmd("-n", ns, "route", verb, "blackhole", dst+"/32")
}

// shapeLink slows ns's eth0: netem delay and loss where the kernel has
// netem, otherwise a token bucket (rate limit whose queue delays and drops
// packets). It returns what it installed.
func shapeLink(ns string) (string, error) {
	if err := tcCmd(ns, "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", "80ms", "40ms", "loss", "3%"); err == nil {
		return "netem delay 80ms±40ms loss 3%", nil
	}
	if err := tcCmd(ns, "qdisc", "replace", "dev", "eth0", "root", "tbf", "rate", "4mbit", "burst", "32kbit", "latency", "200ms"); err != nil {
		return "", err
	}
	return "tbf rate 4mbit latency 200ms (no netem in this kernel)", nil
}

func unshapeLink(ns string) error {
	return tcCmd(ns, "qdisc", "del", "dev", "eth0", "root")
}

// tcCmd runs tc in namespace ns.
func tcCmd(ns string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, "tc"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// keepLogs copies every node's log and the soak's timeline to a directory
// that outlives the test, and returns it.
func keepLogs(c *netCluster, timeline []string) string {
	dir := fmt.Sprintf("/tmp/lzsoak-logs-%d-%s", os.Getpid(), time.Now().Format("150405"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err.Error()
	}
	for _, nd := range c.nodes {
		if b, err := os.ReadFile(nd.logPath()); err == nil {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("node%d.log", nd.k)), b, 0o644)
		}
	}
	os.WriteFile(filepath.Join(dir, "timeline"), []byte(strings.Join(timeline, "\n")+"\n"), 0o644)
	return dir
}
