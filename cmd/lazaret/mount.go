package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/lazaret/lazaret/fuse"
	"github.com/lazaret/lazaret/proto/rpc"
)

// mount runs `lazaret mount MOUNTPOINT`: the quarantine as a MailScanner
// tree, in the foreground, over the local node's socket. SIGINT or SIGTERM
// unmounts (lazily when the mount is in use) and exits 0. While the node is
// down, calls fail with EIO at once and the mount stays; it serves again
// as soon as the node is back.
func (m *Main) mount(ctx context.Context, args []string) error {
	fs := m.newFlags("mount", "MOUNTPOINT")
	socket := m.socketFlag(fs)
	configPath := fs.String("config", "", "TOML config file whose [fuse] and [store] tables apply (default: embedded defaults)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one MOUNTPOINT (run 'lazaret mount -h')")
	}
	cfg := DefaultConfig()
	if *configPath != "" {
		if cfg, err = LoadConfig(*configPath); err != nil {
			return err
		}
	}
	log := newLogger(m.Stderr, cfg.Log)
	fc, err := cfg.fuseConfig(log)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// Reconnect quickly once the node is back (gRPC's default backoff
	// grows to two minutes).
	c, err := rpc.DialUnix(*socket, grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
		MinConnectTimeout: 2 * time.Second,
	}))
	if err != nil {
		return err
	}
	defer c.Close()
	mnt, err := fuse.New(ctx, pos[0], c, fc)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "lazaret: quarantine tree of %s mounted on %s; Ctrl-C unmounts\n", *socket, mnt.Dir())
	gone := make(chan struct{})
	go func() { mnt.Wait(); close(gone) }()
	select {
	case <-gone:
		return nil // unmounted from outside (fusermount3 -u)
	case <-ctx.Done():
	}
	if err := mnt.Unmount(true); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "lazaret: unmounted %s\n", mnt.Dir())
	return nil
}
