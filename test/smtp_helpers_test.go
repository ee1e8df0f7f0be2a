package test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// needBinaries skips the test, naming what is missing, unless every binary
// is installed (test/deps.sh installs them as root) and we are root (Postfix
// and HAProxy instances here run as root, as their packages do).
func needBinaries(t *testing.T, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	var missing []string
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			if _, serr := os.Stat("/usr/sbin/" + n); serr == nil {
				p = "/usr/sbin/" + n
			} else {
				missing = append(missing, n)
				continue
			}
		}
		paths[n] = p
	}
	if len(missing) > 0 {
		t.Skipf("needs %s (Debian packages; run test/deps.sh as root)", strings.Join(missing, ", "))
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to run private Postfix/HAProxy instances")
	}
	return paths
}

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string, within time.Duration, log func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after %v: %v\n%s", addr, within, err, log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// smtpSink is a go-smtp server standing in for the final destination.
type smtpSink struct {
	mu  sync.Mutex
	got []sinkMsg
}

type sinkMsg struct {
	from string
	to   []string
	body []byte
}

func startSink(t *testing.T) (*smtpSink, string) {
	t.Helper()
	return startSinkOn(t, "127.0.0.1")
}

// startSinkOn runs the sink on a free port of host.
func startSinkOn(t *testing.T, host string) (*smtpSink, string) {
	t.Helper()
	k := &smtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSess{k: k}, nil }))
	srv.Domain = "sink.example"
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return k, l.Addr().String()
}

func (k *smtpSink) messages() []sinkMsg {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sinkMsg(nil), k.got...)
}

type sinkSess struct {
	k    *smtpSink
	from string
	to   []string
}

func (s *sinkSess) Reset()        { s.from, s.to = "", nil }
func (s *sinkSess) Logout() error { return nil }
func (s *sinkSess) Mail(f string, _ *smtp.MailOptions) error {
	s.from = f
	return nil
}
func (s *sinkSess) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *sinkSess) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.k.mu.Lock()
	s.k.got = append(s.k.got, sinkMsg{s.from, s.to, b})
	s.k.mu.Unlock()
	return nil
}

// postfixInstance is a private Postfix with its own configuration and queue
// directories, listening on loopback ports only.
type postfixInstance struct {
	t       *testing.T
	bin     string
	dir     string
	etc     string
	Listen  string // where mail comes in (header_checks route spam to Lazaret)
	Reinjct string // where Lazaret releases to (no header checks: no loop)
}

// startPostfix starts Postfix routing X-Spam-Flag: YES mail to lazaretAddr
// (exactly the README's snippet) and everything else to relayhost.
func startPostfix(t *testing.T, bin, lazaretAddr, relayhost string) *postfixInstance {
	t.Helper()
	dir, err := os.MkdirTemp("", "lzpf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &postfixInstance{t: t, bin: bin, dir: dir, etc: filepath.Join(dir, "etc"), Listen: freeAddr(t), Reinjct: freeAddr(t)}
	for _, d := range []string{"etc", "spool", "data"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Postfix's daemons run as the postfix user: it must reach the
	// directories and own its data directory.
	os.Chmod(dir, 0o755)
	if err := exec.Command("chown", "postfix", filepath.Join(dir, "data")).Run(); err != nil {
		t.Fatalf("chown postfix: %v", err)
	}
	lzHost, lzPort, _ := net.SplitHostPort(lazaretAddr)
	main := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/spool
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
myhostname = gw.lazaret.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [%[2]s]:%[3]s
smtp_dns_support_level = disabled
alias_maps =
alias_database =
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
# Lazaret: route spam-flagged mail to the quarantine.
header_checks = regexp:%[1]s/etc/header_checks
`, dir, hostOf(relayhost), portOf(relayhost))
	checks := fmt.Sprintf("/^X-Spam-Flag:[[:space:]]*YES/  FILTER lazaret:[%s]:%s\n", lzHost, lzPort)
	master := fmt.Sprintf(`%s inet n - n - - smtpd
# Lazaret releases here: no header checks, so released mail is not quarantined again.
%s inet n - n - - smtpd
  -o content_filter=
  -o receive_override_options=no_header_body_checks,no_unknown_recipient_checks
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
lazaret   unix  -       -       n       -       4       smtp
  -o syslog_name=postfix/lazaret
  -o smtp_data_done_timeout=1200s
  -o smtp_send_xforward_command=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`, p.Listen, p.Reinjct)
	for name, text := range map[string]string{"main.cf": main, "master.cf": master, "header_checks": checks} {
		if err := os.WriteFile(filepath.Join(p.etc, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p.run("start")
	t.Cleanup(func() { p.run("stop") })
	waitListening(t, p.Listen, 30*time.Second, p.maillog)
	waitListening(t, p.Reinjct, 30*time.Second, p.maillog)
	return p
}

// run runs a postfix command against this instance.
func (p *postfixInstance) run(args ...string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, p.bin, append([]string{"-c", p.etc}, args...)...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("postfix %s: %v\n%s\nmaillog:\n%s", strings.Join(args, " "), err, out, p.maillog())
	}
}

// flush asks Postfix to retry deferred mail now.
func (p *postfixInstance) flush() {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "postqueue", "-c", p.etc, "-f").CombinedOutput(); err != nil {
		p.t.Fatalf("postqueue -f: %v\n%s", err, out)
	}
}

func (p *postfixInstance) maillog() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
	return string(b)
}

func hostOf(addr string) string { h, _, _ := net.SplitHostPort(addr); return h }
func portOf(addr string) string { _, p, _ := net.SplitHostPort(addr); return p }

// stripTrace removes the trace header fields (Received, Return-Path,
// Delivered-To, X-Original-To) an MTA prepends, and returns the rest.
func stripTrace(msg []byte) []byte {
	for {
		line, rest, ok := bytes.Cut(msg, []byte("\n"))
		if !ok {
			return msg
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch strings.ToLower(string(name)) {
		case "received", "return-path", "delivered-to", "x-original-to":
		default:
			return msg
		}
		msg = rest
		// Continuation lines of the field.
		for len(msg) > 0 && (msg[0] == ' ' || msg[0] == '\t') {
			_, msg, _ = bytes.Cut(msg, []byte("\n"))
		}
	}
}

// swaksSender returns a function that sends one message through the MTA at
// server with swaks, from the local address iface as HELO spammer.example;
// a failure ends the test with the MTA's log.
func swaksSender(ctx context.Context, t *testing.T, bin, server, iface string, mtaLog func() string) func(from, to, data string) {
	return func(from, to, data string) {
		t.Helper()
		cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
		defer ccancel()
		out, err := exec.CommandContext(cctx, bin, "--server", server, "--local-interface", iface,
			"--helo", "spammer.example", "--from", from, "--to", to, "--data", data, "--silent", "2").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s\nMTA log:\n%s", err, out, mtaLog())
		}
	}
}

// writeSpamFile writes spamMessage into dir for swaks --data.
func writeSpamFile(t *testing.T, dir string) string {
	t.Helper()
	f := filepath.Join(dir, "spam.eml")
	if err := os.WriteFile(f, []byte(spamMessage), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// waitOneQuarantined waits until the quarantine lists exactly one message
// and returns it.
func waitOneQuarantined(ctx context.Context, t *testing.T, c *rpc.Client) *lazaret.Metadata {
	t.Helper()
	var md *lazaret.Metadata
	waitFor(t, "the spam in the quarantine", 30*time.Second, func() bool {
		page, err := c.List(ctx, lazaret.ListQuery{})
		if err == nil && len(page.Messages) == 1 {
			md = page.Messages[0]
			return true
		}
		return false
	})
	return md
}

// storedBody reads the body of a quarantined message.
func storedBody(ctx context.Context, t *testing.T, c *rpc.Client, id lazaret.ID) []byte {
	t.Helper()
	_, rc, err := c.Open(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkReleased waits for the destination to hold exactly the clean
// message and one release of stored, to victim@example.com from
// spam@example.org, byte for byte beyond trace headers.
func checkReleased(t *testing.T, sink *smtpSink, stored []byte) {
	t.Helper()
	waitFor(t, "the released message at the destination", 30*time.Second, func() bool { return len(sink.messages()) >= 2 })
	time.Sleep(time.Second) // a duplicate, or a loop back through the quarantine, would show by now
	got := sink.messages()
	if len(got) != 2 {
		t.Fatalf("destination got %d messages, want 2 (clean + one release)", len(got))
	}
	rel := got[1]
	if rel.from != "spam@example.org" || strings.Join(rel.to, ",") != "victim@example.com" {
		t.Errorf("released envelope %q → %v", rel.from, rel.to)
	}
	if !bytes.Equal(stripTrace(rel.body), stripTrace(stored)) {
		t.Errorf("released body differs beyond trace headers:\nstored   %q\nreceived %q", stored, rel.body)
	}
}

// runCLI runs the lazaret binary and returns its stdout.
func runCLI(t *testing.T, socket string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), "LAZARET_SOCKET="+socket)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("lazaret %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// lockedBuffer is a bytes.Buffer safe for a writing process and a reading test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// daemon is a foreground process run for a test's duration.
type daemon struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	done chan struct{}
}

// startDaemon runs a foreground daemon; it is killed when the test ends.
func startDaemon(t *testing.T, name string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(name, args...), log: &lockedBuffer{}, done: make(chan struct{})}
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() { d.cmd.Process.Kill(); <-d.done })
	return d
}
