package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/daemon"
)

// serve runs a node until ctx is cancelled (SIGINT, SIGTERM).
func (m *Main) serve(ctx context.Context, args []string) error {
	fs := m.newFlags("serve", "")
	configPath := fs.String("config", "", "TOML config file (default: embedded defaults)")
	data := fs.String("data", "", "data directory (overrides store.data)")
	socket := fs.String("socket", "", "API socket path (overrides api.socket)")
	smtpAddr := fs.String("smtp", "", "run the SMTP filter on ADDR, e.g. 127.0.0.1:10026 (overrides smtp.listen, sets smtp.enabled)")
	relay := fs.String("relay", "", "deliver released messages to HOST:PORT (overrides release.relay)")
	postgres := fs.String("postgres", "", "feed and search the PostgreSQL index at DSN (overrides index.postgres)")
	clockFile := fs.String("test-clock-offset-file", "", "tests only: shift this node's clock by the duration in FILE, re-read every second")
	httpAddr := fs.String("http", "", "serve /metrics, /health and /ready on ADDR, e.g. "+DefaultHTTPListen+" (overrides http.listen)")
	s3Addr := fs.String("s3", "", "serve the S3 API on ADDR, e.g. 127.0.0.1:9000 (overrides s3.listen)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfigOr(*configPath)
	if err != nil {
		return err
	}
	if *data != "" {
		cfg.Store.Data = *data
	}
	if *socket != "" {
		cfg.API.Socket = *socket
	}
	if *smtpAddr != "" {
		cfg.SMTP.Enabled, cfg.SMTP.Listen = true, *smtpAddr
	}
	if *relay != "" {
		cfg.Release.Relay = *relay
	}
	if *postgres != "" {
		cfg.Index.Postgres = *postgres
	}
	if *httpAddr != "" {
		cfg.HTTP.Listen = *httpAddr
	}
	if *s3Addr != "" {
		cfg.S3.Listen = *s3Addr
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := newLogger(m.Stderr, cfg.Log)
	var clock lazaret.Clock = lazaret.SystemClock{}
	if *clockFile != "" {
		clock = newOffsetClock(*clockFile)
		log.Warn("test clock: this node's clock is shifted by the offset in the file", "file", *clockFile)
	}
	return runNode(ctx, cfg, log, clock, m.Stdout)
}

func newLogger(w io.Writer, c LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runNode runs the node cfg describes until ctx ends (package daemon).
func runNode(ctx context.Context, cfg Config, log *slog.Logger, clock lazaret.Clock, stdout io.Writer) error {
	d, err := daemon.Open(ctx, cfg.daemonConfig(), daemon.Env{Log: log, Clock: clock, Stdout: stdout})
	if err != nil {
		return err
	}
	return d.Run(ctx)
}
