package smtpfilter

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// FuzzSMTPSession plays arbitrary bytes as a client's side of a session,
// over an in-memory connection, against a Server with a fake store. The
// server must not panic, must end the session when the client does, and must
// store only whole messages: each one ended by CRLF.CRLF in the input.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\nhalf",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nX: \xff\n\n.\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b> SIZE=99999999999\r\nRCPT TO:<>\r\nDATA\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 5 LAST\r\nabcde",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nBDAT 10\r\nabc",
		"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nEHLO x\r\n",
		"HELO\r\nMAIL\r\nRCPT\r\nDATA x\r\nRSET\r\nAUTH PLAIN\r\n*\r\nSTARTTLS\r\nVRFY\r\n\x00\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n..dot\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n\r\n.\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	for _, s := range []string{
		"EHLO x\r\nXFORWARD ADDR=192.0.2.1 HELO=h+2Bx\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nXFORWARD ADDR=1.2.3.4\r\n.\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nXFORWARD ADDR=IPV6:::1\r\nRCPT TO:<c@d>\r\nBDAT 3 LAST\r\nabcXFORWARD NAME=x\r\n",
		"XFORWARD ADDR=+zz\r\nSTARTTLS\r\nXFORWARD\r\n",
	} {
		f.Add([]byte(s), true)
	}
	// relay: the client is a trusted relay, which may use XFORWARD.
	f.Fuzz(func(t *testing.T, in []byte, relay bool) {
		q := &fakeQuarantine{max: 4096}
		cfg := DefaultConfig()
		cfg.MaxMessageBytes = 4096
		cfg.MaxRecipients = 5
		cfg.ReadTimeout, cfg.WriteTimeout = 2*time.Second, 2*time.Second
		s, err := New(cfg, q, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		client, server := net.Pipe()
		done := make(chan error, 1)
		conn := net.Conn(server)
		if relay {
			conn = newXforwardConn(server)
		}
		go func() { done <- s.serveConn(conn) }()
		go io.Copy(io.Discard, client)
		client.SetWriteDeadline(time.Now().Add(5 * time.Second))
		client.Write(in)
		client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end after the client closed")
		}
		st := q.stored()
		if n := bytes.Count(in, []byte("\r\n.\r\n")) + bytes.Count(in, []byte("\r\nBDAT")); len(st) > n {
			t.Fatalf("stored %d messages from input with %d ends of data", len(st), n)
		}
		for _, m := range st {
			if len(m.body) == 0 || len(m.body) > 4096 {
				t.Fatalf("stored a body of %d bytes", len(m.body))
			}
		}
	})
}
