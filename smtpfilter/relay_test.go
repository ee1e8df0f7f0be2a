package smtpfilter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/lazaret/lazaret"
)

// sink is a go-smtp server standing in for the next-hop MTA.
type sink struct {
	mu     sync.Mutex
	got    []sunk
	refuse map[string]int // recipient → reply code
	hangup bool           // close the connection after the data, without a reply
	dataNo int            // reply code to the data, 0 for 250
}

type sunk struct {
	from string
	to   []string
	body []byte
}

func (k *sink) start(t *testing.T) string {
	t.Helper()
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) { return &sinkSession{k: k, c: c}, nil }))
	srv.Domain = "sink.example"
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func (k *sink) messages() []sunk {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]sunk(nil), k.got...)
}

type sinkSession struct {
	k    *sink
	c    *smtp.Conn
	from string
	to   []string
}

func (s *sinkSession) Reset()        { s.from, s.to = "", nil }
func (s *sinkSession) Logout() error { return nil }
func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if code := s.k.refuse[to]; code != 0 {
		return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{code / 100, 1, 1}, Message: "<" + to + ">: no such user"}
	}
	s.to = append(s.to, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.k.hangup {
		s.c.Conn().Close()
		return nil
	}
	if s.k.dataNo != 0 {
		return &smtp.SMTPError{Code: s.k.dataNo, EnhancedCode: smtp.EnhancedCode{s.k.dataNo / 100, 0, 0}, Message: "not now"}
	}
	s.k.mu.Lock()
	defer s.k.mu.Unlock()
	s.k.got = append(s.k.got, sunk{s.from, s.to, b})
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: fmt.Sprintf("Ok: queued as Q%d", len(s.k.got))}
}

func newTestRelay(t *testing.T, addr string) *Relay {
	t.Helper()
	cfg := DefaultRelayConfig()
	cfg.Addr = addr
	cfg.DialTimeout, cfg.CommandTimeout, cfg.DataTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	r, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRelayDelivers(t *testing.T) {
	k := &sink{}
	r := newTestRelay(t, k.start(t))
	body := []byte("Subject: hi\r\n\r\n.starts with a dot\r\n\r\n.\r\nend\r\n")
	reply, err := r.Deliver(t.Context(), "a@example.org", []string{"b@example.com", "c@example.com"}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if reply != "250 2.0.0 Ok: queued as Q1" {
		t.Errorf("reply %q", reply)
	}
	got := k.messages()
	if len(got) != 1 || got[0].from != "a@example.org" || strings.Join(got[0].to, ",") != "b@example.com,c@example.com" || !bytes.Equal(got[0].body, body) {
		t.Errorf("sink got %+v", got)
	}
}

func TestRelayRefusals(t *testing.T) {
	k := &sink{refuse: map[string]int{"nobody@example.com": 550, "full@example.com": 452}}
	r := newTestRelay(t, k.start(t))
	ctx := t.Context()
	body := []byte("Subject: x\r\n\r\nx\r\n")

	_, err := r.Deliver(ctx, "a@example.org", []string{"b@example.com", "nobody@example.com"}, bytes.NewReader(body))
	var de *lazaret.DeliveryError
	if !errors.As(err, &de) || de.Stage != "rcpt" || de.Temporary || len(de.Recipients) != 1 ||
		de.Recipients[0].Recipient != "nobody@example.com" || !strings.HasPrefix(de.Recipients[0].Reply, "550 5.1.1") {
		t.Fatalf("refused recipient: %#v", err)
	}
	if !errors.Is(err, lazaret.ErrDeliveryFailed) || errors.Is(err, lazaret.ErrUnavailable) {
		t.Errorf("a permanent refusal should match ErrDeliveryFailed only: %v", err)
	}
	_, err = r.Deliver(ctx, "a@example.org", []string{"full@example.com"}, bytes.NewReader(body))
	if !errors.Is(err, lazaret.ErrUnavailable) {
		t.Errorf("a 452 should be temporary: %v", err)
	}
	if got := k.messages(); len(got) != 0 {
		t.Errorf("all-or-none broken: the sink got %+v", got)
	}

	k.dataNo = 451
	if _, err := r.Deliver(ctx, "a@example.org", []string{"b@example.com"}, bytes.NewReader(body)); !errors.As(err, &de) || de.Stage != "end of data" || !de.Temporary || de.Uncertain {
		t.Errorf("451 after data: %#v", err)
	}
	k.dataNo, k.hangup = 0, true
	if _, err := r.Deliver(ctx, "a@example.org", []string{"b@example.com"}, bytes.NewReader(body)); !errors.As(err, &de) || !de.Uncertain {
		t.Errorf("no reply after the data should be uncertain: %#v", err)
	}
}

func TestRelayAbortsOnBadBody(t *testing.T) {
	k := &sink{}
	r := newTestRelay(t, k.start(t))
	corrupt := io.MultiReader(strings.NewReader("Subject: x\r\n\r\n"+strings.Repeat("line\r\n", 1000)), errReaderOf(lazaret.ErrCorrupt))
	_, err := r.Deliver(t.Context(), "a@example.org", []string{"b@example.com"}, corrupt)
	if !errors.Is(err, lazaret.ErrCorrupt) {
		t.Errorf("Deliver of a failing body: %v, want ErrCorrupt", err)
	}
	time.Sleep(100 * time.Millisecond)
	if got := k.messages(); len(got) != 0 {
		t.Errorf("the sink accepted a message whose body failed: %d bytes", len(got[0].body))
	}
}

func TestRelayUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := newTestRelay(t, addr)
	_, err = r.Deliver(context.Background(), "", []string{"b@example.com"}, strings.NewReader("x\r\n"))
	var de *lazaret.DeliveryError
	if !errors.As(err, &de) || de.Stage != "connect" || !errors.Is(err, lazaret.ErrUnavailable) {
		t.Errorf("unreachable relay: %#v", err)
	}
}

type failing struct{ err error }

func (f failing) Read([]byte) (int, error) { return 0, f.err }

func errReaderOf(err error) io.Reader { return failing{err} }
