package smtpfilter

import (
	"bytes"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
)

// XFORWARD is Postfix's SMTP extension by which an MTA passes on the client
// it received a message from (smtp_send_xforward_command = yes). go-smtp
// knows no extension hooks, so xforwardConn speaks it beneath go-smtp on
// connections from trusted relays: it announces XFORWARD in the EHLO reply,
// answers XFORWARD commands itself and keeps their attributes for the
// session. To tell commands from message data it follows DATA (until the
// lone dot), BDAT chunks (by their size) and STARTTLS (after which it only
// passes bytes through, so XFORWARD is not offered inside TLS).

// xforwardKeyword is the EHLO line: the attributes this server takes.
const xforwardKeyword = "XFORWARD NAME ADDR PROTO HELO"

// maxXforwardLine bounds a command line held back for inspection; a longer
// line is passed to go-smtp as it is, which refuses it.
const maxXforwardLine = 1024

// xforwardAttrs are the attributes of the XFORWARD commands of one mail
// transaction; zero values are attributes not sent or [UNAVAILABLE].
type xforwardAttrs struct {
	Addr  netip.Addr
	Helo  string
	Name  string
	Proto string
}

type xfMode int

const (
	xfCommand xfMode = iota
	xfData           // between 354 and the lone dot
	xfChunk          // inside a BDAT chunk
	xfPass           // after STARTTLS: bytes pass unexamined
)

// xforwardConn is the connection go-smtp reads and writes for a trusted
// relay.
type xforwardConn struct {
	net.Conn

	mu     sync.Mutex
	mode   xfMode
	line   []byte // command line being read, held back until complete
	long   bool   // the current command line outgrew maxXforwardLine
	in     []byte // bytes from the client not yet looked at
	out    []byte // bytes for go-smtp
	rerr   error  // the read error to return once out is drained
	dot    int    // DATA: 0 mid-line, 1 at line start, 2 after ".", 3 after ".\r"
	chunk  int64  // bytes left in the BDAT chunk
	last   bool   // the chunk is BDAT ... LAST
	inTxn  bool   // between MAIL and the end of its data
	attrs  xforwardAttrs
	wait   string // reply code that switches mode: "354" (DATA), "220" (STARTTLS)
	ehlo   bool   // announce XFORWARD in the next multi-line reply
	wstart bool   // the next written byte starts a reply line
	buf    []byte
}

func newXforwardConn(c net.Conn) *xforwardConn {
	return &xforwardConn{Conn: c, wstart: true, buf: make([]byte, 4096)}
}

// Attrs returns the XFORWARD attributes of the current transaction.
func (c *xforwardConn) Attrs() xforwardAttrs {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.attrs
}

func (c *xforwardConn) Read(p []byte) (int, error) {
	if ic, ok := c.Conn.(*idleConn); ok {
		// go-smtp reads again: the reply before is out (see idleConn.owe),
		// even when the bytes it gets now were read from the client earlier.
		ic.settle()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.out) == 0 {
		if err := c.advance(); err != nil {
			return 0, err
		}
		if len(c.out) > 0 {
			break
		}
		if c.rerr != nil {
			// Whatever was held back goes up before the error.
			c.out, c.line = append(c.out, c.line...), nil
			if len(c.out) == 0 {
				return 0, c.rerr
			}
			break
		}
		c.mu.Unlock()
		n, err := c.Conn.Read(c.buf)
		c.mu.Lock()
		c.in, c.rerr = append(c.in, c.buf[:n]...), err
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	return n, nil
}

// advance moves bytes from the client (in) to go-smtp (out). It stops once
// out holds a whole command line or the end of a message, so go-smtp has
// answered everything before the next command line is looked at: replies
// stay in order when the client pipelines, and the reply to DATA is known
// before the bytes after it are read as data or commands.
func (c *xforwardConn) advance() error {
	for len(c.in) > 0 {
		b := c.in
		switch c.mode {
		case xfPass:
			c.out, c.in = append(c.out, b...), nil
		case xfChunk:
			n := int(min(int64(len(b)), c.chunk))
			c.out, c.in, c.chunk = append(c.out, b[:n]...), b[n:], c.chunk-int64(n)
			if c.chunk == 0 {
				c.mode = xfCommand
				if c.last {
					c.endTxn()
				}
				return nil
			}
		case xfData:
			for i, ch := range b {
				switch {
				case c.dot == 1 && ch == '.':
					c.dot = 2
				case c.dot == 2 && ch == '\r':
					c.dot = 3
				case (c.dot == 2 || c.dot == 3) && ch == '\n':
					c.out, c.in = append(c.out, b[:i+1]...), b[i+1:]
					c.mode, c.dot = xfCommand, 0
					c.endTxn()
					return nil
				case ch == '\n':
					c.dot = 1
				default:
					c.dot = 0
				}
			}
			c.out, c.in = append(c.out, b...), nil
		case xfCommand:
			i := bytes.IndexByte(b, '\n')
			if c.long {
				if i < 0 {
					c.out, c.in = append(c.out, b...), nil
					return nil
				}
				c.out, c.in, c.long = append(c.out, b[:i+1]...), b[i+1:], false
				return nil
			}
			if i < 0 {
				c.line, c.in = append(c.line, b...), nil
				if len(c.line) > maxXforwardLine {
					c.out, c.line, c.long = append(c.out, c.line...), nil, true
				}
				return nil
			}
			line := append(c.line, b[:i+1]...)
			c.line, c.in = nil, b[i+1:]
			if err := c.command(line); err != nil {
				return err
			}
			if len(c.out) > 0 {
				return nil
			}
		}
	}
	return nil
}

// command looks at one complete command line: an XFORWARD is answered here,
// anything else goes up, noting what changes how later bytes are read.
func (c *xforwardConn) command(line []byte) error {
	text := strings.TrimRight(string(line), "\r\n")
	verb, arg, _ := strings.Cut(text, " ")
	switch strings.ToUpper(verb) {
	case "XFORWARD":
		_, err := c.Conn.Write([]byte(c.xforward(arg) + "\r\n"))
		return err
	case "EHLO", "LHLO":
		c.ehlo = true
		c.endTxn()
	case "HELO", "RSET":
		c.endTxn()
	case "MAIL":
		c.inTxn = true
	case "DATA":
		c.wait = "354"
	case "STARTTLS":
		c.wait = "220"
	case "BDAT":
		f := strings.Fields(arg)
		if len(f) > 0 {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n >= 0 {
				c.last = len(f) > 1 && strings.EqualFold(f[1], "LAST")
				if c.chunk = n; n > 0 {
					c.mode = xfChunk
				} else if c.last {
					c.endTxn()
				}
			}
		}
	}
	c.out = append(c.out, line...)
	return nil
}

func (c *xforwardConn) endTxn() {
	c.inTxn, c.attrs = false, xforwardAttrs{}
}

// xforward applies one XFORWARD command and returns the reply.
func (c *xforwardConn) xforward(arg string) string {
	if c.inTxn {
		return "503 5.5.1 Error: XFORWARD inside a mail transaction"
	}
	fields := strings.Fields(arg)
	if len(fields) == 0 {
		return "501 5.5.4 Syntax: XFORWARD attribute=value..."
	}
	next := c.attrs
	for _, f := range fields {
		name, raw, ok := strings.Cut(f, "=")
		if !ok {
			return "501 5.5.4 Syntax: XFORWARD attribute=value..."
		}
		value, ok := xtextDecode(raw)
		if !ok || len(value) > 255 {
			return "501 5.5.4 Bad XFORWARD attribute value for " + clean(name)
		}
		unavailable := value == "[UNAVAILABLE]" || value == "[TEMPUNAVAIL]"
		switch strings.ToUpper(name) {
		case "ADDR":
			next.Addr = netip.Addr{}
			if !unavailable {
				if len(value) > 5 && strings.EqualFold(value[:5], "IPv6:") {
					value = value[5:]
				}
				ip, err := netip.ParseAddr(value)
				if err != nil {
					return "501 5.5.4 Bad XFORWARD address syntax"
				}
				next.Addr = ip.Unmap()
			}
		case "HELO":
			next.Helo = unlessUnavailable(value, unavailable)
		case "NAME":
			next.Name = unlessUnavailable(value, unavailable)
		case "PROTO":
			next.Proto = unlessUnavailable(value, unavailable)
		case "PORT", "IDENT", "SOURCE":
			// Announced by no one here; taken and ignored as Postfix does.
		default:
			return "501 5.5.4 Bad XFORWARD attribute name: " + clean(name)
		}
	}
	c.attrs = next
	return "250 2.0.0 Ok"
}

func unlessUnavailable(v string, unavailable bool) string {
	if unavailable {
		return ""
	}
	return clean(v)
}

// xtextDecode decodes RFC 3461 xtext: "+XX" is the byte with hex value XX.
func xtextDecode(s string) (string, bool) {
	if !strings.Contains(s, "+") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(v))
		i += 2
	}
	return b.String(), true
}

// Write passes go-smtp's replies on, adding XFORWARD to the EHLO reply and
// noting the replies that start DATA and TLS.
func (c *xforwardConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.mode == xfPass {
		c.mu.Unlock()
		return c.Conn.Write(p)
	}
	out := p
	if c.wstart && len(p) >= 4 {
		code, final := string(p[:3]), p[3] == ' '
		if c.ehlo {
			if i := bytes.IndexByte(p, '\n'); code == "250" && !final && i >= 0 {
				out = make([]byte, 0, len(p)+len(xforwardKeyword)+6)
				out = append(append(append(out, p[:i+1]...), "250-"+xforwardKeyword+"\r\n"...), p[i+1:]...)
			}
			c.ehlo = false
		}
		if c.wait != "" && final {
			if code == c.wait {
				switch code {
				case "354":
					c.mode, c.dot = xfData, 1
				case "220":
					c.mode = xfPass
				}
			}
			c.wait = ""
		}
	}
	c.wstart = len(p) > 0 && p[len(p)-1] == '\n'
	c.mu.Unlock()
	if _, err := c.Conn.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
