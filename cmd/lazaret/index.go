package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/index"
	"github.com/lazaret/lazaret/index/postgres"
	"github.com/lazaret/lazaret/objstore"
)

// IndexConfig is the [index] table: the shared PostgreSQL index. Without a
// DSN there is none, and List is served from the node's own metadata.
type IndexConfig struct {
	// Postgres is the DSN, e.g. "postgres://lazaret:pw@db:5432/lazaret?sslmode=verify-full&sslrootcert=/etc/lazaret/pg-ca.pem";
	// TLS options (sslmode, sslrootcert, sslcert, sslkey) go in it.
	Postgres string `toml:"postgres"`
	// PoolSize is the most connections this node opens.
	PoolSize int `toml:"pool_size"`
	// BatchSize is the most changes written in one transaction.
	BatchSize int `toml:"batch_size"`
	// FlushInterval is how often the outbox is checked when idle, e.g. "1s".
	FlushInterval Duration `toml:"flush_interval"`
	// RetryMax caps the back-off while PostgreSQL is unreachable.
	RetryMax Duration `toml:"retry_max"`
	// OutboxMaxRecords bounds the outbox; past it a full resynchronisation
	// replaces the dropped records when PostgreSQL is back.
	OutboxMaxRecords int `toml:"outbox_max_records"`
	// ConnectTimeout and QueryTimeout bound a connection attempt and one
	// query or batch.
	ConnectTimeout Duration `toml:"connect_timeout"`
	QueryTimeout   Duration `toml:"query_timeout"`
}

func defaultIndexConfig() IndexConfig {
	pc := postgres.DefaultConfig("")
	fc := index.DefaultFeederConfig()
	return IndexConfig{
		PoolSize: pc.PoolSize, BatchSize: fc.BatchSize, FlushInterval: Duration(fc.FlushInterval),
		RetryMax: Duration(fc.RetryMax), OutboxMaxRecords: objstore.DefaultConfig("").OutboxMaxRecords,
		ConnectTimeout: Duration(pc.ConnectTimeout), QueryTimeout: Duration(pc.QueryTimeout),
	}
}

func (c *IndexConfig) validate() error {
	switch {
	case c.PoolSize < 1 || c.PoolSize > 1000:
		return fmt.Errorf("index.pool_size = %d: want 1..1000", c.PoolSize)
	case c.BatchSize < 1 || c.BatchSize > 100000:
		return fmt.Errorf("index.batch_size = %d: want 1..100000", c.BatchSize)
	case c.FlushInterval <= 0:
		return fmt.Errorf("index.flush_interval: must be positive")
	case c.RetryMax < c.FlushInterval:
		return fmt.Errorf("index.retry_max: must be at least index.flush_interval")
	case c.OutboxMaxRecords < 1:
		return fmt.Errorf("index.outbox_max_records = %d: must be positive", c.OutboxMaxRecords)
	case c.ConnectTimeout <= 0 || c.QueryTimeout <= 0:
		return fmt.Errorf("index.connect_timeout and index.query_timeout: must be positive")
	}
	return nil
}

func (c *IndexConfig) pgConfig() postgres.Config {
	pc := postgres.DefaultConfig(c.Postgres)
	pc.PoolSize = c.PoolSize
	pc.ConnectTimeout = time.Duration(c.ConnectTimeout)
	pc.QueryTimeout = time.Duration(c.QueryTimeout)
	return pc
}

func (c *Config) feederConfig() index.FeederConfig {
	fc := index.DefaultFeederConfig()
	fc.Node, fc.Hostname = c.Node.Number, c.Node.Name
	fc.BatchSize = c.Index.BatchSize
	fc.FlushInterval = time.Duration(c.Index.FlushInterval)
	fc.RetryMax = time.Duration(c.Index.RetryMax)
	fc.Retention = time.Duration(c.Retention.Days) * 24 * time.Hour
	return fc
}

// index runs `lazaret index migrate|rebuild`.
func (m *Main) index(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(m.Stderr, "usage: lazaret index migrate [--config FILE] [--postgres DSN]")
		fmt.Fprintln(m.Stderr, "       lazaret index rebuild [--config FILE] [--data DIR] [--postgres DSN] [--truncate]")
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	switch args[0] {
	case "migrate":
		return m.indexMigrate(ctx, args[1:])
	case "rebuild":
		return m.indexRebuild(ctx, args[1:])
	}
	return usagef("unknown subcommand %q (want migrate or rebuild)", args[0])
}

// indexFlags parses the flags shared by the index subcommands and returns
// the configuration with the DSN set.
func (m *Main) indexFlags(name string, args []string, more func(*flag.FlagSet)) (Config, error) {
	fs := m.newFlags("index "+name, "")
	configPath := fs.String("config", "", "TOML config file (default: embedded defaults)")
	dsn := fs.String("postgres", "", "PostgreSQL DSN (overrides index.postgres)")
	data := fs.String("data", "", "data directory (overrides store.data)")
	if more != nil {
		more(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return Config{}, err
	}
	if len(pos) > 0 {
		return Config{}, usagef("unexpected argument %q", pos[0])
	}
	cfg := DefaultConfig()
	if *configPath != "" {
		if cfg, err = LoadConfig(*configPath); err != nil {
			return cfg, err
		}
	}
	if *dsn != "" {
		cfg.Index.Postgres = *dsn
	}
	if *data != "" {
		cfg.Store.Data = *data
	}
	if cfg.Index.Postgres == "" {
		return cfg, usagef("no PostgreSQL DSN: set index.postgres in --config or pass --postgres")
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return cfg, nil
}

func (m *Main) indexMigrate(ctx context.Context, args []string) error {
	cfg, err := m.indexFlags("migrate", args, nil)
	if err != nil {
		return err
	}
	db, err := postgres.Open(cfg.Index.pgConfig(), nil)
	if err != nil {
		return err
	}
	defer db.Close()
	applied, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(m.Stdout, "index at %s is up to date (schema version %d)\n", db.Where(), v)
		return nil
	}
	fmt.Fprintf(m.Stdout, "index at %s: applied migrations %v; schema version %d\n", db.Where(), applied, v)
	return nil
}

// indexRebuild writes every metadata record of a (stopped) node's store
// into the index. Rows of newer versions already there are kept.
func (m *Main) indexRebuild(ctx context.Context, args []string) error {
	var truncate *bool
	cfg, err := m.indexFlags("rebuild", args, func(fs *flag.FlagSet) {
		truncate = fs.Bool("truncate", false, "empty the messages table first (every node must then rebuild or resynchronise)")
	})
	if err != nil {
		return err
	}
	log := newLogger(m.Stderr, LogConfig{Level: "warn", Format: cfg.Log.Format})
	db, err := postgres.Open(cfg.Index.pgConfig(), log)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Init(ctx); err != nil {
		return err
	}
	sc := objstore.DefaultConfig(cfg.Store.Data)
	sc.Outbox, sc.OutboxMaxRecords = true, cfg.Index.OutboxMaxRecords
	store, err := objstore.Open(sc, log, nil)
	if err != nil {
		if strings.Contains(err.Error(), "directory lock") {
			return fmt.Errorf("store %s is in use: stop lazaret serve first (a running node resynchronises by itself when the index does not know it): %w", cfg.Store.Data, err)
		}
		return err
	}
	defer store.Close()
	if *truncate {
		if err := db.Truncate(ctx); err != nil {
			return err
		}
	}
	f, err := index.NewFeeder(cfg.feederConfig(), store, db, log, nil, nil)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := store.SetOutboxOverflow(); err != nil {
		return err
	}
	// Live messages: the records of deleted ones are written too, so the
	// bar's total grows if it proves low.
	var total int64
	if st, err := store.Stats(); err == nil {
		total = st.Messages
	}
	rep := m.progress("index rebuild", "msgs", total)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				rep.Set(f.Status().Applied)
			}
		}
	}()
	err = f.Drain(ctx)
	close(stop)
	<-watched
	if err != nil {
		return err
	}
	rep.Set(f.Status().Applied)
	rep.Finish()
	took := time.Since(start)
	n := f.Status().Applied
	fmt.Fprintf(m.Stdout, "rebuilt index at %s from %s: %d messages in %s (%.0f/s)\n",
		db.Where(), cfg.Store.Data, n, took.Round(time.Millisecond), float64(n)/max(took.Seconds(), 1e-9))
	return nil
}

// printIndexStatus adds the index feed's rows to `lazaret status`.
func printIndexStatus(w io.Writer, st *lazaret.IndexStatus) {
	if st == nil {
		fmt.Fprintf(w, "index\tlocal only (no PostgreSQL configured)\n")
		return
	}
	state := "reachable"
	if !st.Reachable {
		state = "UNREACHABLE"
		if st.LastError != "" {
			state += ": " + st.LastError
		}
	}
	fmt.Fprintf(w, "index\t%s, %s\n", st.Backend, state)
	backlog := fmt.Sprintf("%d changes", st.Backlog)
	if st.Backlog > 0 {
		backlog += fmt.Sprintf(", oldest %s", st.BacklogAge.Round(time.Second))
	}
	if st.Resync {
		backlog += ", full resynchronisation pending"
	}
	fmt.Fprintf(w, "index backlog\t%s\n", backlog)
	last := "never"
	if !st.LastFlush.IsZero() {
		last = st.LastFlush.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(w, "index written\t%d changes since start, last %s\n", st.Applied, last)
}

// listFilterFlags adds `lazaret ls` flags for the List filters that are not
// strings; the returned func applies them after parsing.
func listFilterFlags(fs *flag.FlagSet, q *lazaret.ListQuery) func() error {
	node := fs.Int("node", -1, "taken in by this node number")
	minScore := fs.String("min-score", "", "spam score at least")
	maxScore := fs.String("max-score", "", "spam score at most")
	return func() error {
		if *node >= 0 {
			q.Node = node
		}
		for _, f := range []struct {
			name string
			s    *string
			dst  **float64
		}{{"--min-score", minScore, &q.MinScore}, {"--max-score", maxScore, &q.MaxScore}} {
			if *f.s == "" {
				continue
			}
			v, err := strconv.ParseFloat(*f.s, 64)
			if err != nil {
				return usagef("%s: bad number %q", f.name, *f.s)
			}
			*f.dst = &v
		}
		return nil
	}
}
