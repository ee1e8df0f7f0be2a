package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/proto/rpc"
	"github.com/lazaret/lazaret/replicator"
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
	httpAddr := fs.String("http", "", "serve /metrics, /health and /ready on ADDR, e.g. "+DefaultHTTPListen+" (overrides http.listen)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg := DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = LoadConfig(*configPath); err != nil {
			return err
		}
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
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	log := newLogger(m.Stderr, cfg.Log)
	return runNode(ctx, cfg, log, lazaret.SystemClock{}, m.Stdout)
}

func newLogger(w interface{ Write([]byte) (int, error) }, c LogConfig) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runNode opens the store, starts the node and its API, and shuts them down in
// order when ctx ends: stop taking requests, let in-flight puts finish, then
// close the store.
func runNode(ctx context.Context, cfg Config, log *slog.Logger, clock lazaret.Clock, stdout interface{ Write([]byte) (int, error) }) error {
	if err := os.MkdirAll(cfg.Store.Data, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.API.Socket), 0o755); err != nil {
		return fmt.Errorf("socket directory: %w", err)
	}
	idx, err := openIndex(ctx, cfg, log) // index.go; nil without a PostgreSQL DSN
	if err != nil {
		return err
	}
	defer idx.close()
	mon := newMonitor(cfg, log, clock) // httpapi.go: registry, /metrics, /health
	idx.useRegistry(mon.reg)
	store, err := objstore.Open(idx.storeConfig(objstore.DefaultConfig(cfg.Store.Data)), log, clock)
	if err != nil {
		return err
	}
	defer store.Close()
	cl, err := openCluster(cfg, log, clock) // cluster.go; nil unless [cluster] enabled
	if err != nil {
		return err
	}
	defer cl.close()
	node, err := replicator.New(cl.replicatorConfig(cfg.replicatorConfig()), store, log.With("component", "replicator"), clock, nil)
	if err != nil {
		return err
	}
	defer node.Close()
	if err := cl.start(node); err != nil { // peer port and gossip; refuses a taken node number
		return err
	}
	defer cl.close() // leave the cluster before the node and store close
	if err := idx.start(ctx, store, node, clock); err != nil {
		return err
	}
	defer idx.close() // stops the feeder before the store closes
	mon.attach(store, node, cl, idx)

	mode, _ := cfg.socketMode()
	l, err := rpc.ListenUnix(cfg.API.Socket, mode, cfg.API.SocketGroup)
	if err != nil {
		return err
	}
	srv := rpc.NewServer(mon.wrap(cl.quarantine(node), "api"), log.With("component", "api"))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	smtpSvc, err := startSMTP(cfg, mon.wrap(node, "smtp"), log, stdout)
	if err != nil {
		srv.Stop(context.Background())
		return err
	}
	fm, err := startFUSE(ctx, cfg, mon.wrap(cl.quarantine(node), "fuse"), log, stdout) // serve_fuse.go
	if err != nil {
		smtpSvc.stop(context.Background(), log)
		srv.Stop(context.Background())
		return err
	}
	defer fm.stop() // before the node and store close
	if err := mon.start(stdout); err != nil {
		smtpSvc.stop(context.Background(), log)
		srv.Stop(context.Background())
		return err
	}
	defer mon.stop()
	log.Info("serving", "node", cfg.Node.Number, "name", cfg.Node.Name, "socket", cfg.API.Socket, "data", cfg.Store.Data, "version", version)
	fmt.Fprintf(stdout, "lazaret: node %d (%s) serving on %s, data in %s\n", cfg.Node.Number, cfg.Node.Name, cfg.API.Socket, cfg.Store.Data)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	case err := <-smtpSvc.failed():
		srv.Stop(context.Background())
		return fmt.Errorf("smtp: %w", err)
	}
	mon.shuttingDown() // /health and /ready answer 503 from now on
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	smtpSvc.stop(stopCtx, log)
	srv.Stop(stopCtx)
	os.Remove(cfg.API.Socket)
	return nil
}
