// Package postgres is the PostgreSQL side of Lazaret's shared metadata
// index: connection, schema migrations, batched idempotent writes (an
// index.Sink) and List searches with the same results and cursors as a
// node's local index. See package index for the schema and the rules.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lazaret/lazaret"
)

// Config configures a DB. Start from DefaultConfig.
type Config struct {
	// DSN is a libpq connection string or URL, e.g.
	// "postgres://lazaret:secret@db.example.com:5432/lazaret?sslmode=verify-full&sslrootcert=/etc/lazaret/pg-ca.pem".
	// TLS is configured in it (sslmode, sslrootcert, sslcert, sslkey).
	DSN string
	// PoolSize is the most connections the node opens.
	PoolSize int
	// ConnectTimeout bounds establishing one connection.
	ConnectTimeout time.Duration
	// QueryTimeout bounds one search or one batch write.
	QueryTimeout time.Duration
}

// DefaultConfig returns a pool of 4 connections, a 5 s connect timeout and
// a 30 s query timeout.
func DefaultConfig(dsn string) Config {
	return Config{DSN: dsn, PoolSize: 4, ConnectTimeout: 5 * time.Second, QueryTimeout: 30 * time.Second}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	switch {
	case c.DSN == "":
		return errors.New("postgres: empty DSN")
	case c.PoolSize < 1 || c.PoolSize > 1000:
		return fmt.Errorf("postgres: pool size %d outside [1, 1000]", c.PoolSize)
	case c.ConnectTimeout <= 0 || c.QueryTimeout <= 0:
		return fmt.Errorf("postgres: connect timeout %v and query timeout %v must be positive", c.ConnectTimeout, c.QueryTimeout)
	}
	return nil
}

// DB is a pool of connections to the index database. It is safe for
// concurrent use.
type DB struct {
	cfg  Config
	pool *pgxpool.Pool
	log  *slog.Logger
	// where names the server for messages (host:port/database), never
	// the password.
	where string

	mu       sync.Mutex
	migrated bool
}

// Open parses cfg.DSN and returns a DB; it does not connect (see Init). A
// malformed DSN or TLS setting is an error wrapping
// lazaret.ErrInvalidArgument.
func Open(cfg Config, log *slog.Logger) (*DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", lazaret.ErrInvalidArgument, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		// pgconn's parse errors redact the password.
		return nil, fmt.Errorf("%w: postgres DSN: %v", lazaret.ErrInvalidArgument, err)
	}
	pc.MaxConns = int32(cfg.PoolSize)
	pc.MinConns = 0
	pc.MaxConnIdleTime = 5 * time.Minute
	pc.HealthCheckPeriod = 30 * time.Second
	pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		pc.ConnConfig.RuntimeParams["application_name"] = "lazaret"
	}
	where := fmt.Sprintf("%s/%s", net.JoinHostPort(pc.ConnConfig.Host, fmt.Sprint(pc.ConnConfig.Port)), pc.ConnConfig.Database)
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("%w: postgres %s: %v", lazaret.ErrInvalidArgument, where, err)
	}
	return &DB{cfg: cfg, pool: pool, log: log.With("component", "postgres", "db", where), where: where}, nil
}

// Close closes the pool's connections.
func (db *DB) Close() { db.pool.Close() }

// Where returns host:port/database of the server, for messages.
func (db *DB) Where() string { return db.where }

// Init connects, checks the server and applies the migrations the database
// lacks. An error that retrying cannot fix (authentication refused, no such
// database, TLS refused, insufficient privilege) is returned as it is; one
// that can (server down or starting, network) wraps lazaret.ErrUnavailable:
// see Transient.
func (db *DB) Init(ctx context.Context) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.migrated {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, db.cfg.QueryTimeout+db.cfg.ConnectTimeout)
	defer cancel()
	if err := db.migrate(ctx); err != nil {
		return db.wrap("init", err)
	}
	db.migrated = true
	return nil
}

// Transient reports whether err (from Init or any other method) is an
// outage that retrying may fix, rather than a configuration problem.
func Transient(err error) bool { return errors.Is(err, lazaret.ErrUnavailable) }

// wrap describes err, naming the server, and marks outages with
// lazaret.ErrUnavailable.
func (db *DB) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if isTransient(err) {
		return fmt.Errorf("postgres %s at %s: %w: %v", op, db.where, lazaret.ErrUnavailable, err)
	}
	return fmt.Errorf("postgres %s at %s: %w", op, db.where, err)
}

func isTransient(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code[:2] {
		case "08", "53", "57", "40": // connection, resources, operator intervention (shutdown, starting up), rollback (deadlock)
			return true
		}
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return dns.IsTemporary || dns.IsTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return true
	}
	return pgconn.Timeout(err) || pgconn.SafeToRetry(err)
}
