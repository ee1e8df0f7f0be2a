package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/index"
	"github.com/lazaret/lazaret/index/postgres"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
	"github.com/prometheus/client_golang/prometheus"
)

// indexService is a node's PostgreSQL index: the pool and the feeder. A nil
// *indexService (no DSN configured) does nothing.
type indexService struct {
	cfg    IndexConfig
	db     *postgres.DB
	log    *slog.Logger
	feeder *index.Feeder
	reg    prometheus.Registerer // the feeder's metrics go here (useRegistry)
}

// openIndex connects to the configured PostgreSQL and applies migrations.
// A bad DSN, refused authentication, a missing database or TLS failure is
// an error (serve refuses to start); an unreachable server is not: changes
// wait in the outbox until it is back.
func openIndex(ctx context.Context, cfg *IndexConfig, log *slog.Logger) (*indexService, error) {
	if cfg == nil {
		return nil, nil
	}
	db, err := postgres.Open(cfg.Postgres, log)
	if err != nil {
		return nil, fmt.Errorf("index.postgres: %w", err)
	}
	if err := db.Init(ctx); err != nil {
		if !postgres.Transient(err) {
			db.Close()
			return nil, fmt.Errorf("index.postgres: %w", err)
		}
		log.Warn("postgres index unreachable at start; metadata changes wait in the outbox", "db", db.Where(), "err", err)
	}
	return &indexService{cfg: *cfg, db: db, log: log}, nil
}

// storeConfig turns on the store's outbox when there is an index.
func (s *indexService) storeConfig(sc objstore.Config) objstore.Config {
	if s != nil {
		sc.Outbox = true
		sc.OutboxMaxRecords = s.cfg.OutboxMaxRecords
	}
	return sc
}

// start runs the feeder and makes List use the index. The feeder runs
// until close.
func (s *indexService) start(store *objstore.Store, node *replicator.Node, clock lazaret.Clock) error {
	if s == nil {
		return nil
	}
	f, err := index.NewFeeder(s.cfg.Feeder, store, s.db, s.log, clock, s.reg)
	if err != nil {
		return err
	}
	s.feeder = f
	f.Start(context.Background())
	node.SetIndex(s.db, f)
	return nil
}

// close stops the feeder and closes the pool; it may be called again.
func (s *indexService) close() {
	if s == nil {
		return
	}
	if s.feeder != nil {
		s.feeder.Close()
	}
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
}

// useRegistry makes the index feeder register its metrics with reg.
func (s *indexService) useRegistry(reg prometheus.Registerer) {
	if s != nil {
		s.reg = reg
	}
}
