package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/index"
	"github.com/lazaret/lazaret/index/postgres"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/smtpfilter"
)

// Config is everything a node needs to run, in the packages' own terms
// (cmd/lazaret translates its TOML file into it). The zero values of the
// optional parts (SMTP, Index, Cluster, HTTPListen) leave them off.
type Config struct {
	// Node configures the data path: node number and name (also used in
	// logs, metrics and /health), ids, limits, retention, learning,
	// release relay, version and cluster tuning. Node.Cluster.Members and
	// Node.Cluster.Peers are filled in from Cluster.
	Node replicator.Config
	// Store configures the local store; Store.Dir is the data directory.
	// Its outbox is turned on when Index is set.
	Store objstore.Config
	// API is the local gRPC socket.
	API APIConfig
	// SMTP runs the SMTP/LMTP filter when not nil.
	SMTP *smtpfilter.Config
	// Index feeds and searches a PostgreSQL index when not nil.
	Index *IndexConfig
	// Cluster makes the node a member of a cluster when not nil (peer port,
	// gossip); nil runs it on its own.
	Cluster *cluster.RuntimeConfig
	// HTTPListen is host:port of the monitoring endpoint (/metrics, /health,
	// /ready and Handlers); "" runs none.
	HTTPListen string
	// PProf serves net/http/pprof under /debug/pprof/ on HTTPListen and
	// turns on the runtime's block and mutex profiles (see pprof.go). It
	// exposes internals and costs some CPU: for measuring, not for
	// production.
	PProf bool
	// Health holds the thresholds of GET /health and of the problems
	// `lazaret status` lists.
	Health HealthConfig

	// Handlers are extra HTTP routes served on HTTPListen beside /metrics
	// (a web console, an S3 gateway on a path).
	Handlers []Handler
	// Frontends are extra ways into the node (S3, FUSE, ...) started after
	// the node opens and stopped before it closes.
	Frontends []Frontend
}

// APIConfig is the local gRPC API socket.
type APIConfig struct {
	// Socket is the unix socket path; its directory is created.
	Socket string
	// Mode is the socket's permission bits, e.g. 0o660.
	Mode os.FileMode
	// Group is the group owning the socket ("" = the process's).
	Group string
}

// IndexConfig is the shared PostgreSQL index.
type IndexConfig struct {
	// Postgres is the connection pool's configuration (DSN, pool size,
	// timeouts).
	Postgres postgres.Config
	// Feeder configures the feeder that copies the outbox into the index.
	Feeder index.FeederConfig
	// OutboxMaxRecords bounds the store's outbox (see objstore.Config).
	OutboxMaxRecords int
}

// HealthConfig holds the thresholds past which the node is degraded: GET
// /health answers 503 and `lazaret status` lists the problem. A count
// threshold of -1 and a duration or size threshold of 0 turn that check off.
type HealthConfig struct {
	// MaxUnderProtected is the most under-protected messages (taken in by
	// this node, stored with fewer shards than their code wants);
	// MaxUnderProtectedAge the oldest one's age.
	MaxUnderProtected    int64
	MaxUnderProtectedAge time.Duration
	// MaxIndexBacklog and MaxIndexBacklogAge bound the PostgreSQL outbox.
	MaxIndexBacklog    int64
	MaxIndexBacklogAge time.Duration
	// MaxReconcileAge is the longest time without a successful metadata
	// reconciliation with any peer while other members are alive.
	MaxReconcileAge time.Duration
	// MaxCorruptShards is the most shards that may have failed their
	// checksum since the node started.
	MaxCorruptShards int64
	// MaxFailedMembers is the most cluster members that may be failed.
	MaxFailedMembers int64
	// MinFreeDisk is the least free space, in bytes, on the data
	// directory's file system.
	MinFreeDisk int64
}

// DefaultHealthConfig returns the default thresholds.
func DefaultHealthConfig() HealthConfig {
	return HealthConfig{
		MaxUnderProtected:    1000,
		MaxUnderProtectedAge: 10 * time.Minute,
		MaxIndexBacklog:      10000,
		MaxIndexBacklogAge:   5 * time.Minute,
		MaxReconcileAge:      5 * time.Minute,
		MaxCorruptShards:     0,
		MaxFailedMembers:     0,
		MinFreeDisk:          1 << 30,
	}
}

// DefaultConfig returns a single node, number 1, with its data in dir and
// its socket at socket; no SMTP filter, index, cluster or HTTP endpoint.
func DefaultConfig(dir, socket string) Config {
	rc := replicator.DefaultConfig()
	rc.NodeNumber, rc.Name = 1, "lazaret1"
	return Config{
		Node:   rc,
		Store:  objstore.DefaultConfig(dir),
		API:    APIConfig{Socket: socket, Mode: 0o660},
		Health: DefaultHealthConfig(),
	}
}

// Handler is an extra HTTP route on the monitoring endpoint.
type Handler struct {
	// Pattern is an http.ServeMux pattern, e.g. "/console/".
	Pattern string
	// Name labels its requests (lazaret_requests_total{source=Name}).
	Name string
	// New builds the handler over the node.
	New func(q lazaret.Quarantine) http.Handler
}

// Frontend is an extra way into the node, run beside the gRPC socket and
// the SMTP filter: an S3 gateway, a FUSE mount, a web console on its own
// listener.
type Frontend struct {
	// Name labels its requests (lazaret_requests_total{source=Name}) and
	// its log lines, e.g. "s3".
	Name string
	// Start begins serving and returns without blocking. The returned stop
	// is called at shutdown, before the node closes; failed, if not nil,
	// delivers an error that makes Run return.
	Start func(ctx context.Context, env FrontendEnv) (stop func(context.Context) error, failed <-chan error, err error)
}

// FrontendEnv is what a Frontend is started with.
type FrontendEnv struct {
	// Quarantine is the node as the frontend sees it: its requests counted
	// as source Name, Status completed with the members and health.
	Quarantine lazaret.Quarantine
	// Log is the node's log, with component=Name.
	Log *slog.Logger
	// Clock is the node's clock.
	Clock lazaret.Clock
	// Stdout takes the one line a frontend prints when it listens.
	Stdout io.Writer
}

// validate checks what the packages' own Validate methods do not.
func (c *Config) validate() error {
	switch {
	case c.Store.Dir == "":
		return fmt.Errorf("daemon: store directory: must not be empty")
	case c.API.Socket == "":
		return fmt.Errorf("daemon: api socket: must not be empty")
	}
	for _, f := range c.Frontends {
		if f.Name == "" || f.Start == nil {
			return fmt.Errorf("daemon: a frontend needs a name and a Start func")
		}
	}
	for _, h := range c.Handlers {
		if h.Pattern == "" || h.Name == "" || h.New == nil {
			return fmt.Errorf("daemon: an HTTP handler needs a pattern, a name and a New func")
		}
	}
	return nil
}
