package smtpfilter

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

// fromConn is a connection whose peer address the test chooses.
type fromConn struct {
	net.Conn
	remote net.Addr
}

func (c fromConn) RemoteAddr() net.Addr { return c.remote }

// FuzzProxyHeader sends arbitrary first bytes through the filter's
// listener, from a trusted proxy (10.0.0.1) or from anyone else
// (192.0.2.7). From anyone else, input that starts with a PROXY v1 or v2
// signature is refused without handing the server a byte, and any other
// input reaches the server unchanged. From the trusted proxy, only what
// follows a well-formed header reaches the server (a suffix of the input,
// with the header's source address), and input without one is refused.
// Nothing panics or hangs.
func FuzzProxyHeader(f *testing.F) {
	v2 := func(src string) []byte {
		h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src), Port: 40000}, &net.TCPAddr{IP: net.ParseIP("10.0.0.2"), Port: 25})
		b, _ := h.Format()
		return b
	}
	for _, s := range [][]byte{
		[]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1111 25\r\nEHLO x\r\n"),
		[]byte("PROXY TCP6 2001:db8::1 2001:db8::2 1111 25\r\nEHLO x\r\n"),
		[]byte("PROXY UNKNOWN\r\nEHLO x\r\n"),
		[]byte("PROXY TCP4 1.2.3.4\r\n"),
		append(v2("198.51.100.9"), "EHLO x\r\n"...),
		append(v2("2001:db8::9"), "QUIT\r\n"...),
		[]byte("\r\n\r\n\x00\r\nQUIT\n"),
		[]byte("EHLO mx.example.org\r\n"),
		[]byte("PRO"),
		{},
	} {
		f.Add(s, true)
		f.Add(s, false)
	}
	cfg := DefaultConfig()
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.ProxyHeaderTimeout = time.Second
	cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 5*time.Second
	s, err := New(cfg, &fakeQuarantine{max: 4096}, slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte, trusted bool) {
		client, server := net.Pipe()
		from := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5000}
		if trusted {
			from = &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 5000}
		}
		l := s.wrapListener(&oneConnListener{c: fromConn{Conn: server, remote: from}, done: make(chan struct{})})
		go func() {
			client.SetWriteDeadline(time.Now().Add(5 * time.Second))
			client.Write(in)
			client.Close()
		}()
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		type result struct {
			got []byte
			err error
		}
		done := make(chan result, 1)
		go func() {
			got, err := io.ReadAll(c)
			done <- result{got, err}
		}()
		var r result
		select {
		case r = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("reading %q did not end", in)
		}
		isProxy := bytes.HasPrefix(in, sigV1) || bytes.HasPrefix(in, sigV2)
		if !trusted {
			switch {
			case isProxy && (len(r.got) > 0 || !errors.Is(r.err, errUntrustedProxy)):
				t.Fatalf("untrusted PROXY header %q: server got %q, err %v", in, r.got, r.err)
			case !isProxy && (r.err != nil || !bytes.Equal(r.got, in)):
				t.Fatalf("untrusted plain input %q: server got %q, err %v", in, r.got, r.err)
			}
			return
		}
		if !bytes.HasSuffix(in, r.got) {
			t.Fatalf("trusted input %q: server got %q, not a suffix", in, r.got)
		}
		if len(r.got) > 0 && !isProxy {
			t.Fatalf("trusted input without a header %q: server got %q", in, r.got)
		}
		if r.err == nil && len(r.got) > 0 {
			if _, ok := c.RemoteAddr().(*net.TCPAddr); !ok && c.RemoteAddr() != nil {
				if c.RemoteAddr().String() == "" {
					t.Fatalf("trusted input %q: empty remote address", in)
				}
			}
		}
	})
}
