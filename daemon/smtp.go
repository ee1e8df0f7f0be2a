package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/smtpfilter"
)

// smtpService is the running SMTP filter of a node.
type smtpService struct {
	srv  *smtpfilter.Server
	errc chan error
}

// startSMTP starts the SMTP filter over q when the config has one; it
// returns nil when it does not.
func startSMTP(cfg Config, q lazaret.Quarantine, log *slog.Logger, stdout io.Writer) (*smtpService, error) {
	if cfg.SMTP == nil {
		return nil, nil
	}
	fc := *cfg.SMTP
	srv, err := smtpfilter.New(fc, q, log.With("component", "smtp"))
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", fc.Listen)
	if err != nil {
		return nil, fmt.Errorf("smtp: %w", err)
	}
	s := &smtpService{srv: srv, errc: make(chan error, 1)}
	go func() { s.errc <- srv.Serve(l) }()
	proto := "smtp"
	if fc.LMTP {
		proto = "lmtp"
	}
	log.Info("smtp filter listening", "addr", l.Addr().String(), "protocol", proto, "relay", cfg.Node.RelayName)
	fmt.Fprintf(stdout, "lazaret: %s filter on %s, releasing to %s\n", proto, l.Addr(), cfg.Node.RelayName)
	return s, nil
}

// failed reports the filter's Serve error; it never fires for a nil service.
func (s *smtpService) failed() <-chan error {
	if s == nil {
		return nil
	}
	return s.errc
}

// stop waits for messages being received to be stored, then closes.
func (s *smtpService) stop(ctx context.Context, log *slog.Logger) {
	if s == nil {
		return
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		log.Warn("smtp filter: shutdown", "err", err)
	}
}
