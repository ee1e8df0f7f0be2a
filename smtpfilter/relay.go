package smtpfilter

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/lazaret/lazaret"
)

// RelayConfig configures a Relay. Start from DefaultRelayConfig.
type RelayConfig struct {
	// Addr is the next hop, host:port.
	Addr string
	// Hostname is the name given in EHLO.
	Hostname string
	// StartTLS requires STARTTLS; delivery fails if the relay lacks it.
	StartTLS bool
	// TLSServerName is the name to verify the relay's certificate against;
	// default the host of Addr.
	TLSServerName string
	// TLSInsecureSkipVerify accepts any certificate (a relay on loopback
	// with a self-signed certificate).
	TLSInsecureSkipVerify bool
	// DialTimeout bounds connecting; CommandTimeout each command's reply
	// and each write of the data; DataTimeout the reply after the data.
	DialTimeout, CommandTimeout, DataTimeout time.Duration
}

// DefaultRelayConfig returns the defaults: the local MTA on 127.0.0.1:25,
// plain SMTP, 30 s to connect, 5 minutes per command, 10 after the data.
func DefaultRelayConfig() RelayConfig {
	return RelayConfig{
		Addr: "127.0.0.1:25", Hostname: "localhost",
		DialTimeout: 30 * time.Second, CommandTimeout: 5 * time.Minute, DataTimeout: 10 * time.Minute,
	}
}

// Validate reports the first invalid field, by name.
func (c *RelayConfig) Validate() error {
	if _, _, err := net.SplitHostPort(c.Addr); err != nil || c.Addr == "" {
		return fmt.Errorf("relay %q: want host:port", c.Addr)
	}
	switch {
	case c.Hostname == "":
		return errors.New("relay hostname: must not be empty")
	case c.DialTimeout <= 0 || c.CommandTimeout <= 0 || c.DataTimeout <= 0:
		return errors.New("relay timeouts: must be positive")
	}
	return nil
}

// Relay delivers released messages to the next hop by SMTP. It implements
// lazaret.Deliverer and is safe for concurrent use: each delivery has its
// own connection.
type Relay struct {
	cfg RelayConfig
}

var _ lazaret.Deliverer = (*Relay)(nil)

// NewRelay returns a Relay.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("smtpfilter: %w", err)
	}
	return &Relay{cfg: cfg}, nil
}

// Addr returns the relay's address.
func (r *Relay) Addr() string { return r.cfg.Addr }

// Deliver sends body to recipients, all or none, and returns the relay's
// reply to the end of data ("250 2.0.0 Ok: queued as 4Zx1y2"). The body is
// sent unchanged apart from SMTP's dot-stuffing and line ends made CRLF.
func (r *Relay) Deliver(ctx context.Context, sender string, recipients []string, body io.Reader) (string, error) {
	fail := func(stage string, err error) error {
		de := &lazaret.DeliveryError{Relay: r.cfg.Addr, Stage: stage, Err: err, Temporary: true}
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			de.Reply = smtpReply(se)
			de.Temporary = se.Code/100 == 4
		}
		return de
	}
	if len(recipients) == 0 {
		return "", fmt.Errorf("%w: no recipients", lazaret.ErrInvalidArgument)
	}
	d := net.Dialer{Timeout: r.cfg.DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", r.cfg.Addr)
	if err != nil {
		return "", fail("connect", err)
	}
	conn := &idleConn{Conn: raw, read: r.cfg.CommandTimeout, write: r.cfg.CommandTimeout}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	var c *smtp.Client
	if r.cfg.StartTLS {
		host, _, _ := net.SplitHostPort(r.cfg.Addr)
		tc := &tls.Config{ServerName: r.cfg.TLSServerName, InsecureSkipVerify: r.cfg.TLSInsecureSkipVerify, MinVersion: tls.VersionTLS12}
		if tc.ServerName == "" {
			tc.ServerName = host
		}
		if c, err = smtp.NewClientStartTLS(conn, tc); err != nil {
			raw.Close()
			return "", fail("starttls", err)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()
	c.CommandTimeout, c.SubmissionTimeout = r.cfg.CommandTimeout, r.cfg.DataTimeout
	if err := c.Hello(r.cfg.Hostname); err != nil {
		return "", fail("hello", err)
	}
	if err := c.Mail(sender, nil); err != nil {
		return "", fail("mail", err)
	}
	var refused []lazaret.RecipientError
	temporary := true
	for _, rc := range recipients {
		if err := c.Rcpt(rc, nil); err != nil {
			var se *smtp.SMTPError
			if !errors.As(err, &se) {
				return "", fail("rcpt", err)
			}
			refused = append(refused, lazaret.RecipientError{Recipient: rc, Reply: smtpReply(se)})
			temporary = temporary && se.Code/100 == 4
		}
	}
	if len(refused) > 0 {
		// All or none: abandon the transaction before any data is sent.
		_ = c.Reset()
		_ = c.Quit()
		return "", &lazaret.DeliveryError{Relay: r.cfg.Addr, Stage: "rcpt", Recipients: refused, Temporary: temporary}
	}
	w, err := c.Data()
	if err != nil {
		return "", fail("data", err)
	}
	br := &errReader{r: body}
	if _, err := io.Copy(w, br); err != nil {
		// Close the connection without ending the data: the relay
		// discards the partial message.
		raw.Close()
		if br.err != nil {
			return "", fmt.Errorf("reading the stored message: %w", br.err)
		}
		return "", fail("data", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return "", fail("end of data", err)
		}
		return "", &lazaret.DeliveryError{Relay: r.cfg.Addr, Stage: "end of data", Uncertain: true, Temporary: true, Err: err}
	}
	_ = c.Quit()
	return "250 " + strings.TrimSpace(resp.StatusText), nil
}

// smtpReply formats a reply as the relay sent it: "550 5.1.1 text".
func smtpReply(se *smtp.SMTPError) string {
	if se.EnhancedCode == (smtp.EnhancedCode{}) || se.EnhancedCode == smtp.NoEnhancedCode {
		return fmt.Sprintf("%d %s", se.Code, se.Message)
	}
	return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
}

// errReader remembers its reader's error, to tell a failing body from a
// failing connection.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}
