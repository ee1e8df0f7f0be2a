package smtpfilter

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/lazaret/lazaret"
)

// Server takes messages in by SMTP or LMTP and stores each through a
// lazaret.Quarantine. Create it with New, run it with Serve, stop it with
// Shutdown.
type Server struct {
	cfg      Config
	q        lazaret.Quarantine
	log      *slog.Logger
	verdicts *VerdictReader
	proxies  []netip.Prefix
	relays   []netip.Prefix
	users    map[string][32]byte // name → SHA-256 of the password
	smtp     *smtp.Server

	ctx    context.Context // ends when Shutdown gives up waiting
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners []net.Listener
	inflight  int           // DATA transactions running
	closing   bool          // Shutdown has begun
	idle      chan struct{} // closed when closing and inflight reaches 0
}

// New returns a Server that stores messages in q.
func New(cfg Config, q lazaret.Quarantine, log *slog.Logger) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("smtpfilter: %w", err)
	}
	s := &Server{cfg: cfg, q: q, log: log, idle: make(chan struct{})}
	s.verdicts, _ = NewVerdictReader(cfg.Verdict)
	s.proxies, _ = parsePrefixes("", cfg.TrustedProxies)
	s.relays, _ = parsePrefixes("", cfg.TrustedRelays)
	if len(cfg.Users) > 0 {
		s.users = make(map[string][32]byte, len(cfg.Users))
		for _, u := range cfg.Users {
			s.users[u.Name] = sha256.Sum256([]byte(u.Password))
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = cfg.Hostname
	srv.LMTP = cfg.LMTP
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxRecipients = cfg.MaxRecipients
	srv.MaxLineLength = cfg.MaxLineLength
	srv.ReadTimeout = cfg.ReadTimeout
	srv.WriteTimeout = cfg.WriteTimeout
	srv.AllowInsecureAuth = cfg.AllowInsecureAuth
	srv.EnableSMTPUTF8 = true
	srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("smtpfilter: tls cert %s / key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	s.smtp = srv
	return s, nil
}

// Serve accepts connections on l until Shutdown. It returns nil after
// Shutdown, or the listener's error.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.listeners = append(s.listeners, l)
	s.mu.Unlock()
	err := s.smtp.Serve(s.wrapListener(l))
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// serveConn serves one connection and returns when it ends, without the
// connection limit and PROXY handling; the Server cannot be used after it.
// The fuzz test uses it with net.Pipe.
func (s *Server) serveConn(c net.Conn) error {
	l := &oneConnListener{c: c, done: make(chan struct{})}
	go func() { <-l.done; s.smtp.Close() }()
	err := s.smtp.Serve(l)
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// Shutdown drains: it stops accepting connections, answers 421 to new
// transactions (MAIL, RCPT, DATA), waits until every message whose DATA
// had begun is stored and its reply written (or ctx ends, which aborts
// them: nothing partial is kept and their senders retry), then closes the
// remaining connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		if s.inflight == 0 {
			close(s.idle)
		}
	}
	for _, l := range s.listeners {
		l.Close()
	}
	s.listeners = nil
	s.mu.Unlock()
	var err error
	select {
	case <-s.idle:
	case <-ctx.Done():
		err = ctx.Err()
		s.cancel()
	}
	s.cancel()
	if cerr := s.smtp.Close(); err == nil && cerr != nil && !errors.Is(cerr, smtp.ErrServerClosed) && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	return err
}

func (s *Server) beginData() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.inflight++
	return true
}

func (s *Server) endData() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inflight--
	if s.closing && s.inflight == 0 {
		close(s.idle)
	}
}

// session is one SMTP connection's state.
type session struct {
	s      *Server
	conn   *smtp.Conn
	raw    *idleConn     // the accepted connection (below TLS); nil in serveConn
	xf     *xforwardConn // above raw on connections from trusted relays
	peer   netip.Addr    // after PROXY
	authed bool
	from   string
	rcpts  []string
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	peer, _ := addrOf(c.Conn().RemoteAddr())
	raw, _ := c.Conn().(*idleConn)
	xf, _ := c.Conn().(*xforwardConn)
	if xf != nil {
		raw, _ = xf.Conn.(*idleConn)
	}
	return &session{s: s, conn: c, peer: peer, raw: raw, xf: xf}, nil
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.AuthSession = (*session)(nil)
)

func (ss *session) Reset() {
	ss.from, ss.rcpts = "", nil
}

func (ss *session) Logout() error { return nil }

func (ss *session) AuthMechanisms() []string {
	if len(ss.s.users) == 0 {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if len(ss.s.users) == 0 || mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		want, ok := ss.s.users[username]
		got := sha256.Sum256([]byte(password))
		// Compare hashes in constant time, and even for unknown users.
		match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
		if !ok || !match || (identity != "" && identity != username) {
			ss.s.log.Warn("smtp: authentication failed", "user", username, "peer", ss.peer.String())
			return smtp.ErrAuthFailed
		}
		ss.authed = true
		return nil
	}), nil
}

// errShuttingDown answers what a draining server no longer takes.
var errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Shutting down, try again later"}

// draining reports whether Shutdown has begun.
func (s *Server) draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.draining() {
		return errShuttingDown
	}
	if len(ss.s.users) > 0 && !ss.authed {
		return smtp.ErrAuthRequired
	}
	if err := envelopeAddr(from); err != nil {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Bad sender address: " + err.Error()}
	}
	ss.from, ss.rcpts = from, nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.draining() {
		return errShuttingDown
	}
	if to == "" {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address: empty"}
	}
	if err := envelopeAddr(to); err != nil {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Bad recipient address: " + err.Error()}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// envelopeAddr checks what the store will insist on: no blanks, controls or
// angle brackets, at most 320 bytes.
func envelopeAddr(a string) error {
	if len(a) > 320 {
		return errors.New("longer than 320 bytes")
	}
	for _, r := range a {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '<' || r == '>' {
			return errors.New("contains blanks, controls or angle brackets")
		}
	}
	return nil
}

// Data stores the message and returns the reply: 250 with the quarantine id
// once Put has returned (the message is durable), 451 when the store cannot
// take it now, 552 when it is too large, 554 when it is refused. The
// transaction counts as running (Shutdown waits for it) until its reply
// has been written.
func (ss *session) Data(r io.Reader) error {
	if !ss.s.beginData() {
		return errShuttingDown
	}
	if ss.raw != nil {
		defer ss.raw.owe(ss.s.endData)
	} else {
		defer ss.s.endData()
	}
	var xf xforwardAttrs
	if ss.xf != nil {
		xf = ss.xf.Attrs()
	}
	md, source, err := ss.s.store(ss.s.ctx, ss.from, ss.rcpts, client{peer: ss.peer, helo: ss.conn.Hostname(), xforward: xf}, r)
	if err != nil {
		return ss.s.reply(err, ss.peer)
	}
	ss.s.log.Info("quarantined", "id", md.ID, "from", md.Sender, "rcpts", len(md.Recipients), "size", md.Size,
		"verdict", md.Verdict.Kind.String(), "score", md.Verdict.Score, "client", md.ClientIP, "client_from", source)
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "Ok: quarantined as " + string(md.ID)}
}

// client is what a session knows of who sent the message.
type client struct {
	peer     netip.Addr // the connection's, after PROXY
	helo     string
	xforward xforwardAttrs // from a trusted relay
}

// store reads the header, works out verdict and client, and puts the
// message. source says where the client address came from: "xforward",
// "received" (a trusted relay's header) or "connection" (TCP or PROXY).
func (s *Server) store(ctx context.Context, from string, rcpts []string, cl client, r io.Reader) (md *lazaret.Metadata, source string, err error) {
	head, err := readHeader(r, lazaret.MaxHeaderBytes)
	if err != nil {
		return nil, "", err
	}
	fields := HeaderFields(head)
	req := lazaret.PutRequest{
		Sender: from, Recipients: rcpts, Helo: cleanHelo(cl.helo),
		Verdict: s.verdicts.FromFields(fields), Actor: s.cfg.Actor,
	}
	source = "connection"
	if cl.peer.IsValid() {
		req.ClientIP = cl.peer.String()
	}
	switch {
	case cl.xforward.Addr.IsValid():
		// Only trusted relays get an XFORWARD-capable connection.
		req.ClientIP, req.Helo, source = cl.xforward.Addr.String(), cleanHelo(cl.xforward.Helo), "xforward"
	case cl.peer.IsValid() && contains(s.relays, cl.peer):
		if v, ok := topReceived(fields); ok {
			if ip, h, ok := ReceivedClient(v); ok {
				req.ClientIP, req.Helo, source = ip.String(), cleanHelo(h), "received"
			}
		}
	}
	md, err = s.q.Put(ctx, req, io.MultiReader(bytes.NewReader(head), r))
	return md, source, err
}

// readHeader reads from r until the header has ended (an empty line) or max
// bytes have been read, and returns what it read.
func readHeader(r io.Reader, max int) ([]byte, error) {
	buf := make([]byte, 0, 8<<10)
	scanned := 0
	for len(buf) < max {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):min(cap(buf), max)])
		buf = buf[:len(buf)+n]
		if headerEnded(buf, &scanned) {
			return buf, nil
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// headerEnded reports whether buf holds an empty line; scanned keeps how far
// earlier calls looked.
func headerEnded(buf []byte, scanned *int) bool {
	if len(buf) > 0 && (buf[0] == '\n' || bytes.HasPrefix(buf, []byte("\r\n"))) {
		return true
	}
	from := max(0, *scanned-2)
	*scanned = len(buf)
	rest := buf[from:]
	return bytes.Contains(rest, []byte("\n\n")) || bytes.Contains(rest, []byte("\n\r\n"))
}

// reply turns a Put error into the SMTP reply that makes the MTA do the
// right thing: retry what may succeed later, bounce what never will.
func (s *Server) reply(err error, peer netip.Addr) error {
	var se *smtp.SMTPError
	switch {
	case errors.As(err, &se) && se.Code == smtp.ErrDataTooLarge.Code:
		return smtp.ErrDataTooLarge
	case errors.Is(err, lazaret.ErrTooLarge):
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too large: " + err.Error()}
	case errors.Is(err, lazaret.ErrInvalidArgument), errors.Is(err, lazaret.ErrInvalidID):
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Message refused: " + oneLine(err.Error())}
	}
	// A client that went away mid-DATA is not worth a warning about the store.
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) || isTimeout(err) {
		s.log.Info("smtp: message not stored: client connection failed", "peer", peer.String(), "err", err)
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Connection failed during DATA; nothing stored"}
	}
	s.log.Warn("smtp: message not stored; the MTA will retry", "peer", peer.String(), "err", err)
	if errors.Is(err, lazaret.ErrDiskFull) {
		// RFC 5321 452 / RFC 3463 4.3.1: mail system full; the MTA keeps
		// the message and retries.
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage, try again later: " + oneLine(err.Error())}
	}
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Quarantine temporarily unavailable, try again later: " + oneLine(err.Error())}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// oneLine keeps an error text to one printable reply line.
func oneLine(s string) string {
	s = clean(s)
	if len(s) > 400 {
		s = s[:400]
	}
	return s
}

// oneConnListener hands out one connection, then reports closed once that
// connection is closed.
type oneConnListener struct {
	mu   sync.Mutex
	c    net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return &notifyConn{Conn: c, closed: func() { l.once.Do(func() { close(l.done) }) }}, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return pipeAddr{} }

type notifyConn struct {
	net.Conn
	closed func()
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.closed()
	return err
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// cleanHelo makes a HELO name safe to store (see clean) and cuts it to
// lazaret.MaxHeloBytes: an overlong HELO is the client's fault, not the
// message's, and must not get the message refused.
func cleanHelo(h string) string {
	h = clean(h)
	if len(h) <= lazaret.MaxHeloBytes {
		return h
	}
	cut := lazaret.MaxHeloBytes
	for cut > 0 && !utf8.RuneStart(h[cut]) {
		cut--
	}
	return h[:cut]
}
