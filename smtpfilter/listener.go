package smtpfilter

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
	"golang.org/x/net/netutil"
)

// errUntrustedProxy is returned when a PROXY header arrives from an address
// that is not a trusted proxy.
var errUntrustedProxy = errors.New("PROXY protocol header from an untrusted address")

// filterListener wraps accepted connections: at most max at once, a PROXY
// header honoured only from trusted proxies and refused from anyone else, and
// an idle timeout on every read and write.
type filterListener struct {
	net.Listener
	proxies       []netip.Prefix
	relays        []netip.Prefix
	proxyPolicy   proxyproto.Policy
	headerTimeout time.Duration
	idleRead      time.Duration
	idleWrite     time.Duration
	log           *slog.Logger
}

func (s *Server) wrapListener(l net.Listener) net.Listener {
	policy := proxyproto.REQUIRE
	if s.cfg.ProxyOptional {
		policy = proxyproto.USE
	}
	return &filterListener{
		Listener:      netutil.LimitListener(l, s.cfg.MaxConnections),
		proxies:       s.proxies,
		relays:        s.relays,
		proxyPolicy:   policy,
		headerTimeout: s.cfg.ProxyHeaderTimeout,
		idleRead:      s.cfg.ReadTimeout,
		idleWrite:     s.cfg.WriteTimeout,
		log:           s.log,
	}
}

// Accept never blocks on a client: the PROXY header is read on the
// connection's first use, in its own goroutine.
func (l *filterListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	var inner net.Conn
	peer, ok := addrOf(c.RemoteAddr())
	proxy := ok && contains(l.proxies, peer)
	if proxy {
		// A trusted load balancer: its header names the real client.
		inner = proxyproto.NewConn(c, proxyproto.WithPolicy(l.proxyPolicy), proxyproto.SetReadHeaderTimeout(l.headerTimeout))
	} else {
		inner = &noProxyConn{Conn: c, log: l.log}
	}
	conn := net.Conn(&idleConn{Conn: inner, read: l.idleRead, write: l.idleWrite})
	if ok && !proxy && contains(l.relays, peer) {
		// An MTA that connects directly may tell its client by XFORWARD.
		conn = newXforwardConn(conn)
	}
	return conn, nil
}

// addrOf returns the IP of a TCP address.
func addrOf(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	case nil:
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// noProxyConn is a connection from an address that may not send a PROXY
// header. If its first bytes are a PROXY v1 or v2 signature, every read fails
// and the server drops the connection: a client must not choose the address
// recorded for it.
type noProxyConn struct {
	net.Conn
	log     *slog.Logger
	once    sync.Once
	pending []byte // bytes read while checking, not yet returned
	err     error  // returned once pending is drained
}

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

func (c *noProxyConn) Read(p []byte) (int, error) {
	c.once.Do(c.check)
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(p)
}

// check reads until the first bytes can be told apart from a PROXY
// signature. SMTP clients speak only after the greeting, so this never
// delays the greeting.
func (c *noProxyConn) check() {
	var buf []byte
	tmp := make([]byte, 512)
	for {
		if bytes.HasPrefix(buf, sigV1) || bytes.HasPrefix(buf, sigV2) {
			c.err = errUntrustedProxy
			c.log.Warn("smtp: refused a PROXY header from an untrusted address", "peer", c.Conn.RemoteAddr().String())
			return
		}
		if !bytes.HasPrefix(sigV1, buf) && !bytes.HasPrefix(sigV2, buf) {
			c.pending = buf
			return
		}
		n, err := c.Conn.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			if bytes.HasPrefix(buf, sigV1) || bytes.HasPrefix(buf, sigV2) {
				continue // refused above
			}
			// Hand over what came, then the error.
			c.pending, c.err = buf, err
			return
		}
	}
}

// idleConn sets a fresh deadline before every read and write, so a client
// may be slow but never silent for longer than the timeout, DATA included.
// It also tells a draining Shutdown when a DATA transaction's reply has
// gone out (see owe).
type idleConn struct {
	net.Conn
	read, write time.Duration

	mu      sync.Mutex
	replied func() // set by owe; called once the reply is out
}

// owe registers done to run once the reply to the current command has been
// written: go-smtp writes the reply of DATA and only then reads again (or
// closes), so the next Read or Close is that moment. Shutdown counts a
// transaction until then, so it never closes a connection before its
// client has the real reply (issue 10: a stored message answered with EOF
// is sent again and quarantined twice).
func (c *idleConn) owe(done func()) {
	c.settle() // an earlier one, should there be any
	c.mu.Lock()
	c.replied = done
	c.mu.Unlock()
}

// settle runs the registered reply callback, if any.
func (c *idleConn) settle() {
	c.mu.Lock()
	done := c.replied
	c.replied = nil
	c.mu.Unlock()
	if done != nil {
		done()
	}
}

func (c *idleConn) Close() error {
	err := c.Conn.Close()
	c.settle()
	return err
}

func (c *idleConn) Read(p []byte) (int, error) {
	c.settle()
	if c.read > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.read)); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return 0, err
		}
	}
	return c.Conn.Read(p)
}

func (c *idleConn) Write(p []byte) (int, error) {
	if c.write > 0 {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(c.write)); err != nil && !errors.Is(err, io.ErrClosedPipe) {
			return 0, err
		}
	}
	return c.Conn.Write(p)
}
