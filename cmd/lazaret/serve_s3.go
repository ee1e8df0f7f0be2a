package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/s3api"
)

// s3Service is the running S3 API of a node.
type s3Service struct {
	srv  *http.Server
	errc chan error
}

// startS3 serves the S3 API over q when [s3] listen is set; nil otherwise.
func startS3(cfg Config, q lazaret.Quarantine, log *slog.Logger, clock lazaret.Clock, stdout io.Writer) (*s3Service, error) {
	if cfg.S3.Listen == "" {
		return nil, nil
	}
	keys, err := cfg.s3Keys()
	if err != nil {
		return nil, err
	}
	api, err := s3api.New(cfg.s3apiConfig(), q, keys, log.With("component", "s3"), clock)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", cfg.S3.Listen)
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	scheme := "http"
	if cfg.S3.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.S3.Cert, cfg.S3.Key)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("s3: certificate: %w", err)
		}
		l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	s := &s3Service{
		srv:  &http.Server{Handler: api, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)},
		errc: make(chan error, 1),
	}
	go func() {
		if err := s.srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
			s.errc <- err
		}
	}()
	log.Info("s3 api listening", "addr", l.Addr().String(), "bucket", cfg.S3.Bucket, "scheme", scheme)
	fmt.Fprintf(stdout, "lazaret: S3 API on %s://%s, bucket %s\n", scheme, l.Addr(), cfg.S3.Bucket)
	return s, nil
}

// failed reports the server's Serve error; never for a nil service.
func (s *s3Service) failed() <-chan error {
	if s == nil {
		return nil
	}
	return s.errc
}

// stop lets requests in flight finish, up to ctx.
func (s *s3Service) stop(ctx context.Context) {
	if s == nil {
		return
	}
	s.srv.Shutdown(ctx)
}
