package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lazaret/lazaret/index"
)

// migrationLock is the pg_advisory_lock key that serialises migrations of
// every node sharing a database ("lazaret" in ASCII).
const migrationLock = 0x6c617a61726574

// Migrate applies the embedded migrations the database lacks; Init calls it
// once. It returns the versions it applied. Several nodes may run it at
// once: an advisory lock makes them take turns, and each sees what the
// others applied.
func (db *DB) Migrate(ctx context.Context) ([]int, error) {
	var applied []int
	err := db.withMigrationLock(ctx, func(conn *pgx.Conn) error {
		var err error
		applied, err = migrateLocked(ctx, conn)
		return err
	})
	if err != nil {
		return applied, db.wrap("migrate", err)
	}
	return applied, nil
}

func (db *DB) migrate(ctx context.Context) error {
	applied, err := db.Migrate(ctx)
	for _, v := range applied {
		db.log.Info("applied index migration", "version", v)
	}
	return err
}

func (db *DB) withMigrationLock(ctx context.Context, fn func(*pgx.Conn) error) error {
	c, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer c.Release()
	conn := c.Conn()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return err
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock)); err != nil {
			// The lock is the session's: closing the connection frees it.
			_ = conn.Close(context.Background())
		}
	}()
	return fn(conn)
}

func migrateLocked(ctx context.Context, conn *pgx.Conn) ([]int, error) {
	migs, err := index.Migrations()
	if err != nil {
		return nil, err
	}
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS lazaret_schema_migrations (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT version FROM lazaret_schema_migrations")
	if err != nil {
		return nil, err
	}
	have, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	for _, v := range have {
		done[int(v)] = true
	}
	var applied []int
	for _, m := range migs {
		if done[m.Version] {
			continue
		}
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO lazaret_schema_migrations (version, name) VALUES ($1, $2)", m.Version, m.Name)
			return err
		})
		if err != nil {
			return applied, fmt.Errorf("migration %s: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// SchemaVersion returns the highest migration version applied to the
// database, or 0 if none.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int32
	err := db.pool.QueryRow(ctx, `SELECT COALESCE(max(version), 0) FROM lazaret_schema_migrations`).Scan(&v)
	if err != nil {
		return 0, db.wrap("schema version", err)
	}
	return int(v), nil
}
