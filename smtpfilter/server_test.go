package smtpfilter

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/pires/go-proxyproto"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/internal/testcert"
)

// startServer runs a Server over q on a loopback port and returns its address.
func startServer(t *testing.T, q lazaret.Quarantine, edit func(*Config)) string {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 5*time.Second
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg, q, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

// rawClient speaks SMTP line by line, to send what a well-behaved client
// library would not.
type rawClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawClient{t: t, c: c, r: bufio.NewReader(c)}
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (rc *rawClient) reply() string {
	rc.t.Helper()
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return "ERR " + err.Error()
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (rc *rawClient) send(s string) {
	rc.t.Helper()
	if _, err := io.WriteString(rc.c, s); err != nil {
		rc.t.Fatalf("write %q: %v", s, err)
	}
}

// cmd sends a line and checks the reply's code.
func (rc *rawClient) cmd(line, wantCode string) string {
	rc.t.Helper()
	rc.send(line + "\r\n")
	got := rc.reply()
	if !strings.HasPrefix(got, wantCode) {
		rc.t.Fatalf("%q: reply %q, want %s", line, got, wantCode)
	}
	return got
}

func (rc *rawClient) begin(helo string) {
	rc.t.Helper()
	if g := rc.reply(); !strings.HasPrefix(g, "220") {
		rc.t.Fatalf("greeting %q", g)
	}
	rc.cmd("EHLO "+helo, "250")
}

const spamMsg = "Received: from mx.example.org (mail.example.org [192.0.2.7])\r\n" +
	"\tby gw.example.com (Postfix) with ESMTP id 4Zx1y2; Tue, 1 Jul 2025 10:00:00 +0000\r\n" +
	"From: Spammer <spam@example.org>\r\nTo: victim@example.com\r\nSubject: Cheap pills\r\n" +
	"X-Spam-Status: Yes, score=16.1 required=5.0 tests=BAYES_99,URIBL_BLACK autolearn=no\r\n" +
	"X-Spam-Flag: YES\r\n\r\nBuy now.\r\n.leading dot\r\n"

func TestStoreAndReply(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, nil)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("gw.example.com"); err != nil {
		t.Fatal(err)
	}
	if ok, size := c.Extension("SIZE"); !ok || size != fmt.Sprint(64<<20) {
		t.Errorf("SIZE %v %q, want the limit advertised", ok, size)
	}
	c.Mail("spam@example.org", nil)
	c.Rcpt("victim@example.com", nil)
	c.Rcpt("other@example.com", nil)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, spamMsg)
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusText != "2.0.0 Ok: quarantined as 1aaaaa-000001-01" {
		t.Errorf("reply %q", resp.StatusText)
	}
	m, ok := q.find([]byte(spamMsg))
	if !ok {
		t.Fatalf("body not stored byte for byte: %+v", q.stored())
	}
	r := m.req
	if r.Sender != "spam@example.org" || strings.Join(r.Recipients, ",") != "victim@example.com,other@example.com" ||
		r.ClientIP != "192.0.2.7" || r.Helo != "mx.example.org" || r.Actor != "smtp" ||
		r.Verdict != (lazaret.Verdict{Kind: lazaret.VerdictHighSpam, Score: 16.1, Scanner: "spamassassin", Report: "tests=BAYES_99,URIBL_BLACK"}) {
		t.Errorf("stored %+v", r)
	}
	// A second message on the same connection, with the null sender.
	c.Mail("", nil)
	c.Rcpt("postmaster@example.com", nil)
	w, _ = c.Data()
	io.WriteString(w, "Subject: bounce\r\n\r\nx\r\n")
	if resp, err := w.CloseWithResponse(); err != nil || !strings.Contains(resp.StatusText, "000002") {
		t.Errorf("second message: %v %v", resp, err)
	}
	c.Quit()
}

func TestClientFromConnectionUnlessTrustedRelay(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, func(c *Config) { c.TrustedRelays = nil })
	rc := dialRaw(t, addr)
	rc.begin("relay.example")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd(strings.ReplaceAll(spamMsg, "\r\n.", "\r\n..")+".", "250")
	st := q.stored()
	if len(st) != 1 || st[0].req.ClientIP != "127.0.0.1" || st[0].req.Helo != "relay.example" {
		t.Errorf("stored %+v; want the connection's address and HELO", st)
	}
}

// A full disk is 452 4.3.1 (mail system full), which MTAs retry.
func TestDiskFullReply(t *testing.T) {
	q := &fakeQuarantine{putErr: &lazaret.Error{Op: "put", Err: fmt.Errorf("%w: 0 bytes free", lazaret.ErrDiskFull)}}
	rc := dialRaw(t, startServer(t, q, nil))
	rc.begin("x.example")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: x\r\n\r\nbody\r\n.", "452 4.3.1")
}

func TestErrorReplies(t *testing.T) {
	q := &fakeQuarantine{putErr: &lazaret.Error{Op: "put", Err: fmt.Errorf("%w: disk full", lazaret.ErrUnavailable)}}
	addr := startServer(t, q, func(c *Config) { c.MaxMessageBytes = 1000 })
	rc := dialRaw(t, addr)
	rc.begin("x.example")
	rc.cmd("MAIL FROM:<a@example.org> SIZE=5000", "552")
	rc.cmd("MAIL FROM:<a b@example.org>", "5")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<>", "5")
	rc.cmd("DATA", "502")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	got := rc.cmd("Subject: x\r\n\r\nbody\r\n.", "451 4.3.0")
	if !strings.Contains(got, "disk full") {
		t.Errorf("451 reply %q does not say why", got)
	}
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: x\r\n\r\n"+strings.Repeat("0123456789\r\n", 200)+".", "552 5.3.4")
	// Junk commands get 5xx and the session goes on.
	rc.cmd("FOO bar", "50")
	rc.cmd("\x00\xff\xfe", "50")
	rc.cmd("NOOP", "250")
	// A line over the limit closes the connection.
	rc.send("NOOP " + strings.Repeat("x", 3000) + "\r\n")
	if got := rc.reply(); !strings.HasPrefix(got, "500") {
		t.Errorf("long line: %q", got)
	}
	if len(q.stored()) != 0 {
		t.Errorf("refused messages were stored: %+v", q.stored())
	}
}

func TestEmptyBodyRefused(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, nil)
	rc := dialRaw(t, addr)
	rc.begin("x.example")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd(".", "554 5.6.0")
}

func TestBareLFAnd8BitStoredAsSent(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, nil)
	rc := dialRaw(t, addr)
	rc.begin("x.example")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	body := "Subject: caf\xe9 \xff\nX-Spam-Flag: YES\n\nline one\n.\nstill data\r\n"
	// "\n.\n" is not the end of data: only CRLF.CRLF is (no smuggling).
	rc.cmd(body+".", "250")
	m, ok := q.find([]byte(body))
	if !ok {
		t.Fatalf("stored %+v, want %q", q.stored(), body)
	}
	if m.req.Verdict.Kind != lazaret.VerdictSpam {
		t.Errorf("verdict %+v", m.req.Verdict)
	}
}

func TestHugeHeaderStored(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, nil)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "Subject: big\r\n" + strings.Repeat("X-Junk: "+strings.Repeat("j", 900)+"\r\n", 400) + "X-Spam-Flag: YES\r\n\r\nbody\r\n"
	c.Mail("a@example.org", nil)
	c.Rcpt("b@example.com", nil)
	w, _ := c.Data()
	io.WriteString(w, msg)
	if _, err := w.CloseWithResponse(); err != nil {
		t.Fatal(err)
	}
	if _, ok := q.find([]byte(msg)); !ok {
		t.Errorf("a message with a %d-byte header was not stored whole", len(msg))
	}
}

func TestDisconnectMidDataStoresNothing(t *testing.T) {
	q := &fakeQuarantine{results: make(chan error, 1)}
	addr := startServer(t, q, nil)
	rc := dialRaw(t, addr)
	rc.begin("x.example")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.send("Subject: half\r\n\r\n" + strings.Repeat("partial line\r\n", 5000))
	rc.c.Close()
	select {
	case err := <-q.results:
		if err == nil {
			t.Fatal("Put of a cut-off message succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Put did not end after the client went away")
	}
	if len(q.stored()) != 0 {
		t.Errorf("partial message stored")
	}
}

func TestSlowClientTimesOut(t *testing.T) {
	q := &fakeQuarantine{results: make(chan error, 1)}
	addr := startServer(t, q, func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	rc := dialRaw(t, addr)
	rc.begin("x.example")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.send("Subject: slow\r\n\r\nfirst line\r\n")
	start := time.Now()
	select {
	case err := <-q.results:
		if err == nil {
			t.Fatal("a message that never ended was stored")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a silent client was not timed out")
	}
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("timed out after %v, before the 300ms read timeout", d)
	}
	// Idle between commands, too.
	rc2 := dialRaw(t, addr)
	rc2.begin("x.example")
	if got := rc2.reply(); !strings.HasPrefix(got, "421") && !strings.HasPrefix(got, "ERR") {
		t.Errorf("idle client got %q, want 421 or a closed connection", got)
	}
}

func TestLMTPPerRecipientReplies(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, func(c *Config) { c.LMTP = true })
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	c.Mail("a@example.org", nil)
	c.Rcpt("b@example.com", nil)
	c.Rcpt("c@example.com", nil)
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "Subject: lmtp\r\n\r\nhi\r\n")
	resps, err := w.CloseWithLMTPResponse()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"b@example.com", "c@example.com"} {
		if resps[r] == nil || !strings.Contains(resps[r].StatusText, "quarantined as 1aaaaa-000001-01") {
			t.Errorf("LMTP reply for %s: %+v", r, resps[r])
		}
	}
	if len(q.stored()) != 1 {
		t.Errorf("stored %d messages, want 1", len(q.stored()))
	}
}

func TestProxyProtocol(t *testing.T) {
	q := &fakeQuarantine{}
	trusted := startServer(t, q, func(c *Config) {
		c.TrustedProxies = []string{"127.0.0.1/32"}
		c.ProxyHeaderTimeout = 300 * time.Millisecond
	})
	send := func(rc *rawClient, helo string) {
		rc.begin(helo)
		rc.cmd("MAIL FROM:<a@example.org>", "250")
		rc.cmd("RCPT TO:<b@example.com>", "250")
		rc.cmd("DATA", "354")
		rc.cmd("Subject: "+helo+"\r\n\r\nx\r\n.", "250")
	}
	// v1 and v2 from the trusted proxy: the header's source is recorded.
	rc := dialRaw(t, trusted)
	rc.send("PROXY TCP4 203.0.113.9 127.0.0.1 40000 25\r\n")
	send(rc, "v1.example")
	rc = dialRaw(t, trusted)
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP("2001:db8::9"), Port: 40000}, &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 25})
	if _, err := h.WriteTo(rc.c); err != nil {
		t.Fatal(err)
	}
	send(rc, "v2.example")
	st := q.stored()
	if len(st) != 2 || st[0].req.ClientIP != "203.0.113.9" || st[1].req.ClientIP != "2001:db8::9" {
		t.Errorf("stored %+v; want the PROXY sources", st)
	}
	// The trusted proxy must send a header (ProxyOptional is off).
	rc = dialRaw(t, trusted)
	if got := rc.reply(); !strings.HasPrefix(got, "ERR") {
		t.Errorf("a trusted proxy without a header got %q, want the connection dropped", got)
	}

	// From an address that is not a trusted proxy, a header is refused.
	untrusted := startServer(t, q, func(c *Config) { c.TrustedProxies = []string{"192.0.2.1"} })
	for _, hdr := range []string{"PROXY TCP4 203.0.113.66 127.0.0.1 40000 25\r\n", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + "\xcb\x00\x71\x42\x7f\x00\x00\x01\x9c\x40\x00\x19"} {
		rc = dialRaw(t, untrusted)
		if g := rc.reply(); !strings.HasPrefix(g, "220") {
			t.Fatalf("greeting %q", g)
		}
		rc.send(hdr + "EHLO evil.example\r\n")
		if got := rc.reply(); !strings.HasPrefix(got, "421") && !strings.HasPrefix(got, "ERR") {
			t.Errorf("PROXY header from an untrusted address got %q, want 421 and the connection dropped", got)
		}
		if got := rc.reply(); !strings.HasPrefix(got, "ERR") {
			t.Errorf("after refusing a PROXY header the connection is still open: %q", got)
		}
	}
	// A plain client there is served as usual.
	rc = dialRaw(t, untrusted)
	send(rc, "plain.example")
	if st := q.stored(); len(st) != 3 || st[2].req.ClientIP != "127.0.0.1" {
		t.Errorf("stored %+v", st)
	}
}

func TestAuthAndStartTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, _ := testcert.Write(t, dir)
	q := &fakeQuarantine{}
	addr := startServer(t, q, func(c *Config) {
		c.TLSCert, c.TLSKey = cert, key
		c.Users = []User{{Name: "mta", Password: "s3cret"}}
	})
	rc := dialRaw(t, addr)
	rc.begin("x.example")
	rc.cmd("MAIL FROM:<a@example.org>", "502 5.7.0")
	rc.cmd("AUTH PLAIN AG10YQBzM2NyZXQ=", "5") // not before TLS
	rc.cmd("QUIT", "221")

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "mta", "wrong")); err == nil {
		t.Fatal("AUTH with a wrong password succeeded")
	}
	if err := c.Auth(sasl.NewPlainClient("", "mta", "s3cret")); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := c.SendMail("a@example.org", []string{"b@example.com"}, strings.NewReader("Subject: tls\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	if len(q.stored()) != 1 {
		t.Errorf("stored %d, want 1", len(q.stored()))
	}
}

func TestMaxConnections(t *testing.T) {
	addr := startServer(t, &fakeQuarantine{}, func(c *Config) { c.MaxConnections = 1 })
	first := dialRaw(t, addr)
	first.begin("one.example")
	second := dialRaw(t, addr)
	second.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if got := second.reply(); !strings.HasPrefix(got, "ERR") {
		t.Fatalf("second connection greeted (%q) while the first is open", got)
	}
	first.cmd("QUIT", "221")
	second.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got := second.reply(); !strings.HasPrefix(got, "220") {
		t.Errorf("second connection after the first closed: %q", got)
	}
}

func TestShutdownWaitsForData(t *testing.T) {
	q := &fakeQuarantine{started: make(chan struct{}, 1), block: make(chan struct{})}
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	s, err := New(cfg, q, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	rc := dialRaw(t, l.Addr().String())
	other := dialRaw(t, l.Addr().String()) // open, idle, when the drain begins
	other.begin("y.example")
	rc.begin("x.example")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	// The data, and a command pipelined after it: the message still gets
	// its real reply, the command a 421.
	rc.send("Subject: x\r\n\r\nx\r\n.\r\nMAIL FROM:<c@example.org>\r\n")
	<-q.started
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) while a message was being stored", err)
	case <-time.After(200 * time.Millisecond):
	}
	// While draining, a new transaction is refused for now.
	other.cmd("MAIL FROM:<a@example.org>", "421")
	close(q.block)
	if got := rc.reply(); !strings.HasPrefix(got, "250") {
		t.Errorf("in-flight message got %q", got)
	}
	// The command pipelined behind it gets a 421, or, when the drain's
	// close wins the race with that reply (seen once in a loaded
	// fresh-clone run), the connection closes: either way the client
	// retries later and nothing was taken in. What must never happen is
	// a reply that accepts it.
	if got := rc.reply(); !strings.HasPrefix(got, "421") && got != "ERR EOF" {
		t.Errorf("command pipelined after the in-flight message got %q, want 421 or a close", got)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Errorf("still accepting after Shutdown")
	}
}

func TestConfigValidate(t *testing.T) {
	for name, edit := range map[string]func(*Config){
		"listen":    func(c *Config) { c.Listen = "" },
		"size":      func(c *Config) { c.MaxMessageBytes = 0 },
		"line":      func(c *Config) { c.MaxLineLength = 100 },
		"timeout":   func(c *Config) { c.ReadTimeout = 0 },
		"conns":     func(c *Config) { c.MaxConnections = 0 },
		"tls":       func(c *Config) { c.TLSCert = "x.pem" },
		"proxies":   func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/33"} },
		"relays":    func(c *Config) { c.TrustedRelays = []string{"nope"} },
		"user":      func(c *Config) { c.Users = []User{{Name: "x"}} },
		"rule":      func(c *Config) { c.Verdict.Rules = []HeaderRule{{Header: "X", Verdict: "bad"}} },
		"recipient": func(c *Config) { c.MaxRecipients = -1 },
	} {
		c := DefaultConfig()
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// An overlong HELO is cut to what a put accepts instead of getting the
// message refused.
func TestLongHeloClipped(t *testing.T) {
	q := &fakeQuarantine{}
	rc := dialRaw(t, startServer(t, q, nil))
	rc.begin(strings.Repeat("h", 400) + ".example")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: x\r\n\r\nbody\r\n.", "250")
	st := q.stored()
	if len(st) != 1 {
		t.Fatalf("stored %d messages", len(st))
	}
	req := st[0].req
	if len(req.Helo) != lazaret.MaxHeloBytes {
		t.Errorf("HELO stored with %d bytes, want %d", len(req.Helo), lazaret.MaxHeloBytes)
	}
	if err := req.Validate(); err != nil {
		t.Errorf("the request the filter made does not validate: %v", err)
	}
}
