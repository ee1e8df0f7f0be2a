package smtpfilter

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Config configures a Server. Start from DefaultConfig.
type Config struct {
	// Listen is the TCP address to listen on.
	Listen string
	// LMTP speaks LMTP (LHLO, one reply per recipient) instead of SMTP.
	LMTP bool
	// Hostname is the name in the greeting and EHLO reply.
	Hostname string

	// MaxMessageBytes is the largest message accepted, advertised with SIZE.
	// Set it to the node's maximum message size.
	MaxMessageBytes int64
	// MaxRecipients limits RCPT commands per message.
	MaxRecipients int
	// MaxLineLength limits command and data lines, in bytes.
	MaxLineLength int
	// ReadTimeout is how long a client may stay silent, at any point of
	// the session including DATA, before it is disconnected.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write of a reply.
	WriteTimeout time.Duration
	// MaxConnections limits connections at once; more wait to be accepted.
	MaxConnections int

	// TLSCert and TLSKey are PEM files; when set, STARTTLS is offered.
	TLSCert, TLSKey string
	// Users, when not empty, enables AUTH PLAIN and requires it before
	// MAIL. AUTH is offered only after STARTTLS unless AllowInsecureAuth.
	Users []User
	// AllowInsecureAuth offers AUTH on connections without TLS.
	AllowInsecureAuth bool

	// TrustedProxies lists the load balancers (CIDRs) that may send a PROXY
	// protocol v1 or v2 header; the client address recorded is then the one
	// in the header. A PROXY header from any other address is refused and
	// the connection dropped.
	TrustedProxies []string
	// ProxyOptional lets trusted proxies connect without a PROXY header.
	// Off (the default), a connection from a trusted proxy without a header
	// is dropped after ProxyHeaderTimeout.
	ProxyOptional bool
	// ProxyHeaderTimeout bounds the wait for a trusted proxy's header.
	ProxyHeaderTimeout time.Duration

	// TrustedRelays lists the MTAs (CIDRs) whose topmost Received header is
	// believed: when the peer is one of them, the client address and HELO
	// recorded come from that header rather than from the connection.
	TrustedRelays []string

	// Verdict configures how scanner headers become a verdict.
	Verdict VerdictConfig

	// Actor names the writer in the message history.
	Actor string
}

// User is one AUTH PLAIN login.
type User struct {
	Name     string `toml:"name"`
	Password string `toml:"password"`
}

// DefaultConfig returns the defaults: SMTP on 127.0.0.1:10026, 64 MiB
// messages, 1000 recipients, 5-minute timeouts (RFC 5321's), 100
// connections, loopback MTAs trusted for Received headers, no PROXY.
func DefaultConfig() Config {
	return Config{
		Listen:             "127.0.0.1:10026",
		Hostname:           "localhost",
		MaxMessageBytes:    64 << 20,
		MaxRecipients:      1000,
		MaxLineLength:      2000,
		ReadTimeout:        5 * time.Minute,
		WriteTimeout:       5 * time.Minute,
		MaxConnections:     100,
		ProxyHeaderTimeout: 5 * time.Second,
		TrustedRelays:      []string{"127.0.0.0/8", "::1/128"},
		Verdict:            DefaultVerdictConfig(),
		Actor:              "smtp",
	}
}

// Validate reports the first invalid field, by name.
func (c *Config) Validate() error {
	switch {
	case c.Listen == "":
		return errors.New("listen: must not be empty")
	case c.Hostname == "":
		return errors.New("hostname: must not be empty")
	case c.MaxMessageBytes <= 0:
		return fmt.Errorf("max message bytes %d: must be positive", c.MaxMessageBytes)
	case c.MaxRecipients <= 0:
		return fmt.Errorf("max recipients %d: must be positive", c.MaxRecipients)
	case c.MaxLineLength < 512:
		return fmt.Errorf("max line length %d: must be at least 512 (RFC 5321)", c.MaxLineLength)
	case c.ReadTimeout <= 0:
		return fmt.Errorf("read timeout %v: must be positive", c.ReadTimeout)
	case c.WriteTimeout <= 0:
		return fmt.Errorf("write timeout %v: must be positive", c.WriteTimeout)
	case c.MaxConnections <= 0:
		return fmt.Errorf("max connections %d: must be positive", c.MaxConnections)
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return errors.New("tls cert and key: set both or neither")
	case len(c.TrustedProxies) > 0 && c.ProxyHeaderTimeout <= 0:
		return fmt.Errorf("proxy header timeout %v: must be positive", c.ProxyHeaderTimeout)
	case c.Actor == "":
		return errors.New("actor: must not be empty")
	}
	for i, u := range c.Users {
		if u.Name == "" || u.Password == "" {
			return fmt.Errorf("users[%d]: name and password must not be empty", i)
		}
	}
	if _, err := parsePrefixes("trusted proxies", c.TrustedProxies); err != nil {
		return err
	}
	if _, err := parsePrefixes("trusted relays", c.TrustedRelays); err != nil {
		return err
	}
	if _, err := NewVerdictReader(c.Verdict); err != nil {
		return err
	}
	return nil
}

// parsePrefixes parses CIDRs; a bare address means just that address.
func parsePrefixes(field string, list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return nil, fmt.Errorf("%s: %q is not an address or CIDR", field, s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// contains reports whether any prefix holds a (IPv4-mapped IPv6 addresses
// count as IPv4).
func contains(ps []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
