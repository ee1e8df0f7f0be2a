package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/fuse"
)

// fuseMount is serve's own mount of the view ([fuse] mountpoint).
type fuseMount struct {
	m   *fuse.Mount
	log *slog.Logger
}

// startFUSE mounts the view over q when [fuse] mountpoint is set; it
// returns nil when it is not.
func startFUSE(ctx context.Context, cfg Config, q lazaret.Quarantine, log *slog.Logger, stdout io.Writer) (*fuseMount, error) {
	if cfg.FUSE.Mountpoint == "" {
		return nil, nil
	}
	fc, err := cfg.fuseConfig(log)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.FUSE.Mountpoint, 0o755); err != nil {
		return nil, fmt.Errorf("fuse: %w", err)
	}
	m, err := fuse.New(ctx, cfg.FUSE.Mountpoint, q, fc)
	if err != nil {
		return nil, fmt.Errorf("fuse: %w", err)
	}
	log.Info("fuse view mounted", "mountpoint", m.Dir())
	fmt.Fprintf(stdout, "lazaret: quarantine tree mounted on %s\n", m.Dir())
	return &fuseMount{m: m, log: log}, nil
}

// stop unmounts, lazily when the mount is still in use.
func (f *fuseMount) stop() {
	if f == nil {
		return
	}
	if err := f.m.Unmount(true); err != nil {
		f.log.Warn("fuse: unmount", "err", err)
	}
}
