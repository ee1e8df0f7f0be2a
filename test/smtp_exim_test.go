package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// eximBinary is where test/deps.sh unpacks Debian's exim4-daemon-heavy: it
// cannot be installed beside Postfix (both are the mail-transport-agent).
const eximBinary = "/opt/lazaret-test/exim4/usr/sbin/exim4"

// eximHost is the loopback address of this test's Exim, sink and Lazaret;
// the spammer connects from eximClient.
const (
	eximHost   = "127.44.0.1"
	eximClient = "127.44.0.2"
)

// readmeEximConfig returns the three parts (main section, routers,
// transports) of the Exim example in README.md, exactly as printed.
func readmeEximConfig(t *testing.T) (mainSection, routers, transports string) {
	t.Helper()
	_, here, _, _ := runtime.Caller(0)
	readme, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(here)), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(readme), "\n### Exim\n")
	if !ok {
		t.Fatal("README.md has no ### Exim section")
	}
	_, block, ok := strings.Cut(sec, "\n```\n")
	block, _, ok2 := strings.Cut(block, "\n```\n")
	if !ok || !ok2 {
		t.Fatal("README.md's Exim section has no code block")
	}
	parts := map[string]*string{"# main section": &mainSection, "# routers, before dnslookup": &routers, "# transports": &transports}
	var cur *string
	for _, line := range strings.Split(block, "\n") {
		if p, ok := parts[strings.TrimSpace(line)]; ok {
			cur = p
			continue
		}
		if cur == nil {
			t.Fatalf("README.md's Exim block: %q before any part heading", line)
		}
		*cur += line + "\n"
	}
	if mainSection == "" || routers == "" || transports == "" {
		t.Fatalf("README.md's Exim block lacks a part:\n%s", block)
	}
	return mainSection, routers, transports
}

// eximInstance is a private Exim daemon with its own configuration, spool
// and logs.
type eximInstance struct {
	dir     string
	Listen  string // where mail comes in
	Release string // the README's port 10025, where Lazaret releases to
}

func (e *eximInstance) mainlog() string {
	b, _ := os.ReadFile(filepath.Join(e.dir, "log", "mainlog"))
	return string(b)
}

// startExim runs Exim with the README's snippet, the addresses and ports
// changed to the test's, in front of Lazaret at lazaretAddr, and a router
// standing for dnslookup that delivers everything else to destination.
func startExim(t *testing.T, lazaretAddr, destination string) *eximInstance {
	t.Helper()
	mainSection, routers, transports := readmeEximConfig(t)
	dir, err := os.MkdirTemp("", "lzexim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Exim receives and delivers as Debian-exim: it must reach its spool and logs.
	os.Chmod(dir, 0o755)
	for _, d := range []string{"spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o750); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("chown", "Debian-exim:Debian-exim", filepath.Join(dir, d)).CombinedOutput(); err != nil {
			t.Fatalf("chown Debian-exim: %v %s", err, out)
		}
	}
	e := &eximInstance{dir: dir, Listen: freeAddrOn(t, eximHost), Release: freeAddrOn(t, eximHost)}
	edit := strings.NewReplacer(
		"25 : 10025", portOf(e.Listen)+" : "+portOf(e.Release),
		"{10025}", "{"+portOf(e.Release)+"}",
		"* 127.0.0.1", "* "+hostOf(lazaretAddr),
		"port = 10026", "port = "+portOf(lazaretAddr),
	)
	mainSection, routers, transports = edit.Replace(mainSection), edit.Replace(routers), edit.Replace(transports)
	if !strings.Contains(mainSection, portOf(e.Release)) || !strings.Contains(routers, portOf(e.Release)) ||
		!strings.Contains(routers, hostOf(lazaretAddr)) || !strings.Contains(transports, portOf(lazaretAddr)) {
		t.Fatalf("README's Exim snippet no longer has the addresses this test replaces:\n%s%s%s", mainSection, routers, transports)
	}
	conf := fmt.Sprintf(`primary_hostname = gw.lazaret.test
# Exim re-executes itself for deliveries and queue runs.
exim_path = %[8]s
spool_directory = %[1]s/spool
log_file_path = %[1]s/log/%%slog
pid_file_path = %[1]s/exim.pid
keep_environment =
local_interfaces = %[2]s
acl_smtp_rcpt = accept_loopback
%[3]s
begin acl
accept_loopback:
  accept hosts = 127.0.0.0/8
  deny

begin routers
%[4]s
# Stands for dnslookup: everything else goes to the destination.
destination:
  driver = manualroute
  route_list = * %[5]s
  transport = destination_smtp
  self = send

begin transports
%[6]s
destination_smtp:
  driver = smtp
  port = %[7]s
  allow_localhost

begin retry
* * F,10m,2s
`, dir, eximHost, mainSection, routers, hostOf(destination), transports, portOf(destination), eximBinary)
	confFile := filepath.Join(dir, "exim.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, eximBinary, "-C", confFile, "-bV").CombinedOutput(); err != nil {
		t.Fatalf("exim -bV rejects the configuration: %v\n%s\n%s", err, out, conf)
	}
	// -bdf: the daemon in the foreground; -q2s: retry deferred mail often.
	d := startDaemon(t, eximBinary, "-C", confFile, "-bdf", "-q2s")
	t.Cleanup(func() {
		if t.Failed() {
			panics, _ := os.ReadFile(filepath.Join(dir, "log", "paniclog"))
			t.Logf("exim output:\n%s\nmainlog:\n%s\npaniclog:\n%s", d.log.String(), e.mainlog(), panics)
		}
	})
	waitListening(t, e.Listen, 30*time.Second, func() string { return d.log.String() + e.mainlog() })
	waitListening(t, e.Release, 30*time.Second, func() string { return d.log.String() + e.mainlog() })
	return e
}

// TestSMTPEximQuarantineAndRelease: Exim, configured with the README's
// snippet, sends spam-flagged mail to Lazaret's SMTP filter and clean mail
// on; the quarantined message has the right envelope and the client that
// spoke to Exim (from Exim's Received header); its release goes back out
// through Exim's release port to the destination, not to Lazaret again.
func TestSMTPEximQuarantineAndRelease(t *testing.T) {
	bins := needBinaries(t, "swaks")
	if _, err := os.Stat(eximBinary); err != nil {
		t.Skipf("needs %s (run test/deps.sh as root)", eximBinary)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	sink, sinkAddr := startSinkOn(t, eximHost)
	lzAddr := freeAddrOn(t, eximHost)
	dir := shortTempDir(t)
	ex := startExim(t, lzAddr, sinkAddr)
	node := startServe(t, dir, "--smtp", lzAddr, "--relay", ex.Release)
	c := node.client()

	msgFile := writeSpamFile(t, dir)
	swaks := swaksSender(ctx, t, bins["swaks"], ex.Listen, eximClient, ex.mainlog)

	swaks("friend@example.org", "victim@example.com", "Subject: hello\r\n\r\nhi\r\n")
	waitFor(t, "clean mail at the destination", 30*time.Second, func() bool { return len(sink.messages()) == 1 })

	swaks("spam@example.org", "victim@example.com", msgFile)
	md := waitOneQuarantined(ctx, t, c)
	if md.Sender != "spam@example.org" || strings.Join(md.Recipients, ",") != "victim@example.com" ||
		md.Subject != "Cheap pills" || md.Verdict.Kind != lazaret.VerdictHighSpam ||
		md.ClientIP != eximClient || md.Helo != "spammer.example" {
		t.Errorf("quarantined as %+v; want the envelope, verdict and client %s (spammer.example)", md, eximClient)
	}
	if !strings.Contains(ex.mainlog(), "quarantined as "+string(md.ID)) {
		t.Errorf("Exim's log does not show the 250 reply naming %s:\n%s", md.ID, ex.mainlog())
	}
	if n := len(sink.messages()); n != 1 {
		t.Errorf("the destination got %d messages; the spam went there too", n)
	}
	stored := storedBody(ctx, t, c, md.ID)
	if !bytes.Contains(stored, []byte("Subject: Cheap pills\r\n")) || !bytes.HasSuffix(stored, []byte("Caf\xc3\xa9 in UTF-8.\r\n\r\n")) {
		t.Errorf("stored body is not the message sent:\n%q", stored)
	}

	// Exim's reply to the data names its message id.
	if out := runCLI(t, node.socket, "release", string(md.ID), "--request-id", "exim-release-1"); !strings.Contains(out, "id=") {
		t.Errorf("release printed %q, want Exim's reply with its id", out)
	}
	checkReleased(t, sink, stored)
	if page, err := c.List(ctx, lazaret.ListQuery{}); err != nil || len(page.Messages) != 1 {
		t.Errorf("after release the quarantine lists %v (%v); the release came back in", page, err)
	}
	st, err := c.Stat(ctx, md.ID)
	if err != nil {
		t.Fatal(err)
	}
	if last := st.History[len(st.History)-1]; st.State != lazaret.StateReleased || last.Action != "release" {
		t.Errorf("after release: state %v, last event %+v", st.State, last)
	}
	if !strings.Contains(ex.mainlog(), "P=esmtp") || !strings.Contains(ex.mainlog(), "R=destination") {
		t.Errorf("Exim's log does not show the release routed to the destination:\n%s", ex.mainlog())
	}
}
