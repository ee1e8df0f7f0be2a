package s3api

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Listener is the S3 API served on its own TCP address.
type Listener struct {
	srv  *http.Server
	addr net.Addr
	url  string
	errc chan error
}

// Listen serves s on addr (host:port): HTTPS with the PEM certificate and
// key in certFile and keyFile, plain HTTP when both are "". It returns
// once the address is bound.
func (s *Server) Listen(addr, certFile, keyFile string) (*Listener, error) {
	var tlsCfg *tls.Config
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("s3 certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("s3 listen: %w", err)
	}
	scheme := "http"
	if tlsCfg != nil {
		l, scheme = tls.NewListener(l, tlsCfg), "https"
	}
	ln := &Listener{
		srv: &http.Server{
			Handler: s, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute,
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		},
		addr: l.Addr(),
		url:  scheme + "://" + l.Addr().String(),
		errc: make(chan error, 1),
	}
	go func() {
		if err := ln.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			ln.errc <- err
		}
	}()
	return ln, nil
}

// URL is the endpoint clients use, e.g. "https://127.0.0.1:9000".
func (l *Listener) URL() string { return l.url }

// Failed delivers the error that stopped serving before Shutdown.
func (l *Listener) Failed() <-chan error { return l.errc }

// Shutdown stops taking requests and lets those in flight finish, up to ctx.
func (l *Listener) Shutdown(ctx context.Context) error { return l.srv.Shutdown(ctx) }
