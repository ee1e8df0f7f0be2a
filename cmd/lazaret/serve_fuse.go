package main

import (
	"context"
	"fmt"
	"os"

	"github.com/lazaret/lazaret/daemon"
	"github.com/lazaret/lazaret/fuse"
)

// fuseFrontend is serve's own mount of the view ([fuse] mountpoint), run
// by the daemon beside the socket; nil when no mountpoint is set.
func (c *Config) fuseFrontend() *daemon.Frontend {
	if c.FUSE.Mountpoint == "" {
		return nil
	}
	return &daemon.Frontend{Name: "fuse", Start: func(ctx context.Context, env daemon.FrontendEnv) (func(context.Context) error, <-chan error, error) {
		fc, err := c.fuseConfig(env.Log)
		if err != nil {
			return nil, nil, err
		}
		fc.Clock = env.Clock
		if err := os.MkdirAll(c.FUSE.Mountpoint, 0o755); err != nil {
			return nil, nil, fmt.Errorf("fuse: %w", err)
		}
		m, err := fuse.New(ctx, c.FUSE.Mountpoint, env.Quarantine, fc)
		if err != nil {
			return nil, nil, fmt.Errorf("fuse: %w", err)
		}
		env.Log.Info("quarantine tree mounted", "mountpoint", m.Dir())
		fmt.Fprintf(env.Stdout, "lazaret: quarantine tree mounted on %s\n", m.Dir())
		// Unmounted lazily when still in use, so a shell or web server with
		// a file open there never holds the node up.
		stop := func(context.Context) error { return m.Unmount(true) }
		return stop, nil, nil
	}}
}
