package smtpfilter

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// ehloLines sends EHLO and returns the reply's lines.
func (rc *rawClient) ehloLines(helo string) []string {
	rc.t.Helper()
	if g := rc.reply(); !strings.HasPrefix(g, "220") {
		rc.t.Fatalf("greeting %q", g)
	}
	rc.send("EHLO " + helo + "\r\n")
	var lines []string
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			rc.t.Fatalf("EHLO reply: %v", err)
		}
		lines = append(lines, strings.TrimRight(line, "\r\n"))
		if len(line) < 4 || line[3] != '-' {
			return lines
		}
	}
}

func TestXforwardFromTrustedRelay(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, nil) // loopback is a trusted relay by default
	rc := dialRaw(t, addr)
	if ehlo := strings.Join(rc.ehloLines("postfix.example"), "\n"); !strings.Contains(ehlo, "250-"+xforwardKeyword) {
		t.Fatalf("EHLO reply does not announce XFORWARD:\n%s", ehlo)
	}
	// Postfix's form: xtext values, sent before MAIL.
	rc.cmd("XFORWARD NAME=mail.example.net ADDR=198.51.100.9 PROTO=ESMTP HELO=helo+2Bx.example", "250")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("XFORWARD ADDR=203.0.113.1", "503")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd(spamMsg+".", "250")
	// The next transaction has no XFORWARD: the Received header counts again.
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd(spamMsg+".", "250")
	st := q.stored()
	if len(st) != 2 {
		t.Fatalf("stored %d messages", len(st))
	}
	if r := st[0].req; r.ClientIP != "198.51.100.9" || r.Helo != "helo+x.example" {
		t.Errorf("with XFORWARD: client %q helo %q, want 198.51.100.9 helo+x.example", r.ClientIP, r.Helo)
	}
	if r := st[1].req; r.ClientIP != "192.0.2.7" || r.Helo != "mx.example.org" {
		t.Errorf("without XFORWARD: client %q helo %q, want the Received header's", r.ClientIP, r.Helo)
	}
}

// TestXforwardPipelinedAndDataUntouched: XFORWARD pipelined with MAIL and
// RCPT is answered in order, and XFORWARD-looking lines inside DATA and BDAT
// are message data.
func TestXforwardPipelinedAndDataUntouched(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, nil)
	rc := dialRaw(t, addr)
	rc.ehloLines("relay.example")
	rc.send("XFORWARD ADDR=IPV6:2001:db8::5 HELO=[UNAVAILABLE]\r\nXFORWARD NAME=[TEMPUNAVAIL] PROTO=SMTP\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
	for i, want := range []string{"250 2.0.0 Ok", "250 2.0.0 Ok", "250", "250", "354"} {
		if got := rc.reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("pipelined reply %d: %q, want %q", i, got, want)
		}
	}
	body := "Subject: x\r\n\r\nXFORWARD ADDR=192.0.2.66\r\n.\r\n"
	rc.cmd(strings.ReplaceAll(body, "\r\n.\r\n", "\r\n..\r\n")+".", "250")

	chunk := "Subject: y\r\n\r\nXFORWARD ADDR=192.0.2.67\r\n"
	rc.cmd("XFORWARD ADDR=192.0.2.10 HELO=chunky.example", "250")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.send(fmt.Sprintf("BDAT %d\r\n%s", 14, chunk[:14]))
	if got := rc.reply(); !strings.HasPrefix(got, "250") {
		t.Fatalf("BDAT: %q", got)
	}
	rc.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk)-14, chunk[14:]))
	if got := rc.reply(); !strings.HasPrefix(got, "250") {
		t.Fatalf("BDAT LAST: %q", got)
	}
	rc.cmd("XFORWARD ADDR=192.0.2.11", "250") // the transaction has ended
	rc.cmd("QUIT", "221")

	st := q.stored()
	if len(st) != 2 {
		t.Fatalf("stored %d messages", len(st))
	}
	if r := st[0].req; r.ClientIP != "2001:db8::5" || r.Helo != "" {
		t.Errorf("first: client %q helo %q, want the XFORWARD address and no HELO (the relay's own is not the client's)", r.ClientIP, r.Helo)
	}
	if !bytes.Equal(st[0].body, []byte(body)) {
		t.Errorf("first body %q, want %q", st[0].body, body)
	}
	if r := st[1].req; r.ClientIP != "192.0.2.10" || r.Helo != "chunky.example" {
		t.Errorf("BDAT: client %q helo %q", r.ClientIP, r.Helo)
	}
	if !bytes.Equal(st[1].body, []byte(chunk)) {
		t.Errorf("BDAT body %q, want %q", st[1].body, chunk)
	}
}

func TestXforwardRefusedFromUntrustedPeer(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, func(c *Config) { c.TrustedRelays = []string{"192.0.2.0/24"} })
	rc := dialRaw(t, addr)
	if ehlo := strings.Join(rc.ehloLines("client.example"), "\n"); strings.Contains(ehlo, "XFORWARD") {
		t.Fatalf("EHLO reply to an untrusted peer announces XFORWARD:\n%s", ehlo)
	}
	rc.cmd("XFORWARD ADDR=198.51.100.9", "5")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: x\r\n\r\nx\r\n.", "250")
	if st := q.stored(); len(st) != 1 || st[0].req.ClientIP != "127.0.0.1" {
		t.Errorf("stored %+v; want the connection's address", st)
	}
}

func TestXforwardBadCommands(t *testing.T) {
	q := &fakeQuarantine{}
	addr := startServer(t, q, nil)
	rc := dialRaw(t, addr)
	rc.ehloLines("relay.example")
	for cmd, want := range map[string]string{
		"XFORWARD":                     "501",
		"XFORWARD ADDR":                "501",
		"XFORWARD COLOUR=blue":         "501",
		"XFORWARD ADDR=not-an-address": "501",
		"XFORWARD HELO=bad+zz":         "501",
		"XFORWARD HELO=cut+4":          "501",
		"XFORWARD PORT=25 IDENT=x":     "250",
	} {
		rc.cmd(cmd, want)
	}
	// A refused command changes nothing.
	rc.cmd("XFORWARD ADDR=192.0.2.1", "250")
	rc.cmd("XFORWARD ADDR=192.0.2.2 HELO=x COLOUR=blue", "501")
	rc.cmd("MAIL FROM:<a@example.org>", "250")
	rc.cmd("RCPT TO:<b@example.com>", "250")
	rc.cmd("DATA", "354")
	rc.cmd("Subject: x\r\n\r\nx\r\n.", "250")
	if st := q.stored(); len(st) != 1 || st[0].req.ClientIP != "192.0.2.1" || st[0].req.Helo != "" {
		t.Errorf("stored %+v; want 192.0.2.1 from the accepted XFORWARD", st)
	}
}

func TestXtextDecode(t *testing.T) {
	for in, want := range map[string]string{"plain": "plain", "a+2Bb": "a+b", "+3D+20": "= ", "": ""} {
		if got, ok := xtextDecode(in); !ok || got != want {
			t.Errorf("xtextDecode(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"+", "+2", "+GG", "a+2"} {
		if _, ok := xtextDecode(in); ok {
			t.Errorf("xtextDecode(%q) accepted", in)
		}
	}
}
