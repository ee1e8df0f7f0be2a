package main

import (
	"fmt"
	"net"
	"time"

	"github.com/lazaret/lazaret/daemon"
)

// HTTPConfig is the [http] table: the monitoring endpoint (/metrics,
// /health, /ready).
type HTTPConfig struct {
	// Listen is host:port for the endpoint, e.g. "127.0.0.1:9127", or
	// "0.0.0.0:9127" for HAProxy health checks from another host. Empty
	// (the default) runs no HTTP endpoint; serve --http ADDR sets it.
	Listen string `toml:"listen"`
	// PProf serves Go's profiles (net/http/pprof) under /debug/pprof/ on
	// the endpoint, and samples blocking and mutex contention. Off by
	// default: it exposes internals and costs some CPU.
	PProf bool `toml:"pprof"`
}

// HealthConfig is the [health] table: when GET /health answers 503
// ("degraded") and what `lazaret status` lists as health problems. A count
// threshold of -1 and a duration or size threshold of 0 turn that check off.
type HealthConfig struct {
	// MaxUnderProtected is the most under-protected messages (taken in by
	// this node, stored with fewer shards than their code wants) before the
	// node is degraded; MaxUnderProtectedAge the oldest one's age.
	MaxUnderProtected    int64    `toml:"max_under_protected"`
	MaxUnderProtectedAge Duration `toml:"max_under_protected_age"`
	// MaxIndexBacklog and MaxIndexBacklogAge bound the PostgreSQL outbox:
	// changes waiting to reach the shared index, and the oldest one's age.
	MaxIndexBacklog    int64    `toml:"max_index_backlog"`
	MaxIndexBacklogAge Duration `toml:"max_index_backlog_age"`
	// MaxReconcileAge is the longest time without a successful metadata
	// reconciliation with any peer while other members are alive.
	MaxReconcileAge Duration `toml:"max_reconcile_age"`
	// MaxCorruptShards is the most shards that may have failed their
	// checksum since the node started.
	MaxCorruptShards int64 `toml:"max_corrupt_shards"`
	// MaxFailedMembers is the most cluster members that may be failed
	// (stopped answering gossip without leaving).
	MaxFailedMembers int64 `toml:"max_failed_members"`
	// MinFreeDisk is the least free space on the data directory's file
	// system, e.g. "1GiB".
	MinFreeDisk Size `toml:"min_free_disk"`
}

// DefaultHTTPListen is the address the README suggests for [http] listen.
const DefaultHTTPListen = "127.0.0.1:9127"

func defaultHTTPConfig() HTTPConfig { return HTTPConfig{} }

func defaultHealthConfig() HealthConfig {
	d := daemon.DefaultHealthConfig()
	return HealthConfig{
		MaxUnderProtected:    d.MaxUnderProtected,
		MaxUnderProtectedAge: Duration(d.MaxUnderProtectedAge),
		MaxIndexBacklog:      d.MaxIndexBacklog,
		MaxIndexBacklogAge:   Duration(d.MaxIndexBacklogAge),
		MaxReconcileAge:      Duration(d.MaxReconcileAge),
		MaxCorruptShards:     d.MaxCorruptShards,
		MaxFailedMembers:     d.MaxFailedMembers,
		MinFreeDisk:          Size(d.MinFreeDisk),
	}
}

// daemonHealth converts the [health] table.
func (c *HealthConfig) daemonHealth() daemon.HealthConfig {
	return daemon.HealthConfig{
		MaxUnderProtected:    c.MaxUnderProtected,
		MaxUnderProtectedAge: time.Duration(c.MaxUnderProtectedAge),
		MaxIndexBacklog:      c.MaxIndexBacklog,
		MaxIndexBacklogAge:   time.Duration(c.MaxIndexBacklogAge),
		MaxReconcileAge:      time.Duration(c.MaxReconcileAge),
		MaxCorruptShards:     c.MaxCorruptShards,
		MaxFailedMembers:     c.MaxFailedMembers,
		MinFreeDisk:          int64(c.MinFreeDisk),
	}
}

func (c *HTTPConfig) validate() error {
	if c.Listen == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("http.listen = %q: want host:port, e.g. %q, or \"\" for none", c.Listen, DefaultHTTPListen)
	}
	return nil
}

func (c *HealthConfig) validate() error {
	for _, v := range []struct {
		key string
		n   int64
	}{
		{"max_under_protected", c.MaxUnderProtected}, {"max_index_backlog", c.MaxIndexBacklog},
		{"max_corrupt_shards", c.MaxCorruptShards}, {"max_failed_members", c.MaxFailedMembers},
	} {
		if v.n < -1 {
			return fmt.Errorf("health.%s = %d: want a count, or -1 for no limit", v.key, v.n)
		}
	}
	for _, v := range []struct {
		key string
		d   Duration
	}{
		{"max_under_protected_age", c.MaxUnderProtectedAge}, {"max_index_backlog_age", c.MaxIndexBacklogAge},
		{"max_reconcile_age", c.MaxReconcileAge},
	} {
		if v.d < 0 {
			return fmt.Errorf("health.%s: must not be negative (\"0s\" for no limit)", v.key)
		}
	}
	if c.MinFreeDisk < 0 {
		return fmt.Errorf("health.min_free_disk: must not be negative (0 for no limit)")
	}
	return nil
}
