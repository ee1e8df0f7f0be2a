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
	store, err := objstore.Open(objstore.DefaultConfig(cfg.Store.Data), log, clock)
	if err != nil {
		return err
	}
	defer store.Close()
	node, err := replicator.New(cfg.replicatorConfig(), store, log.With("component", "replicator"), clock, nil)
	if err != nil {
		return err
	}
	defer node.Close()

	mode, _ := cfg.socketMode()
	l, err := rpc.ListenUnix(cfg.API.Socket, mode, cfg.API.SocketGroup)
	if err != nil {
		return err
	}
	srv := rpc.NewServer(node, log.With("component", "api"))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	log.Info("serving", "node", cfg.Node.Number, "name", cfg.Node.Name, "socket", cfg.API.Socket, "data", cfg.Store.Data, "version", version)
	fmt.Fprintf(stdout, "lazaret: node %d (%s) serving on %s, data in %s\n", cfg.Node.Number, cfg.Node.Name, cfg.API.Socket, cfg.Store.Data)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-errc:
		return fmt.Errorf("api: %w", err)
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv.Stop(stopCtx)
	os.Remove(cfg.API.Socket)
	return nil
}
