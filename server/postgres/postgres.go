// Package postgres is scalelab's PostgreSQL store (phases 2 to 4), on a
// pgx/v5 connection pool.
//
// Every query goes to the primary for now. Reads are issued through
// DB.readPool, the one place where phase 3's replica routing (lag-aware,
// read-your-writes) will choose a replica pool; writes use DB.primary.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/internal/dbmetrics"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configures a DB. The zero value is fine.
type Options struct {
	// MaxConns is the pool size; 0 keeps the URL's pool_max_conns or pgx's
	// default, max(4, number of CPUs).
	MaxConns int32
	// ExecMode is how pgx runs queries; 0 keeps the URL's
	// default_query_exec_mode or pgx's default, QueryExecModeCacheStatement
	// (named prepared statements, one round trip). Behind pgbouncer in
	// transaction mode use pgx.QueryExecModeCacheDescribe: named prepared
	// statements live on a server connection that pgbouncer hands to other
	// clients ("prepared statement already exists").
	ExecMode pgx.QueryExecMode
	// MigrationURL is where migrations run; "" means the store's URL. Point
	// it straight at the primary when the store's URL is a pgbouncer in
	// transaction mode: migrations hold a session-level advisory lock, which
	// transaction pooling cannot keep.
	MigrationURL string
	// Registerer receives the store's metrics (see server/internal/dbmetrics:
	// query durations, pool stats); nil registers none.
	Registerer prometheus.Registerer
	// Logger receives migrations and seeding progress; nil discards.
	Logger *slog.Logger
}

// DB is a server.Store on a PostgreSQL database.
type DB struct {
	primary *pgxpool.Pool
	metrics *dbmetrics.Queries
	log     *slog.Logger
}

var _ server.Store = (*DB)(nil)

// ops are the operation labels of the query duration metric.
var ops = []string{"create_user", "user", "user_by_login", "update_user", "delete_user",
	"create_record", "record", "records", "update_record", "delete_record"}

// migrationLockID is the advisory lock that serializes migrations of app
// instances starting at once ("scalelab" in ASCII).
const migrationLockID int64 = 0x7363616c656c6162

// Open connects to the database at url (postgres://...), applies the
// embedded migrations (one instance at a time when several start together),
// and returns the store.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err) // pgx keeps passwords out of this error
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.ExecMode != 0 {
		cfg.ConnConfig.DefaultQueryExecMode = opts.ExecMode
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)

	migrationURL := opts.MigrationURL
	if migrationURL == "" {
		migrationURL = url
	}
	if err := migrate(ctx, migrationURL, opts.ExecMode, log); err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	db := &DB{primary: pool, log: log}
	if db.metrics, err = dbmetrics.NewQueries(opts.Registerer, "postgres", "primary", ops); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: register metrics: %w", where, err)
	}
	if err := dbmetrics.RegisterPools(opts.Registerer, "postgres", dbmetrics.Pool{Name: "primary", Stats: poolStats(pool)}); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: register pool metrics: %w", where, err)
	}
	return db, nil
}

// readPool is the pool reads use. Phase 3 routes reads to a replica here.
func (db *DB) readPool() *pgxpool.Pool { return db.primary }

// migrate applies the embedded migrations through database/sql (goose's
// interface) under an advisory lock.
func migrate(ctx context.Context, url string, mode pgx.QueryExecMode, log *slog.Logger) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if mode != 0 {
		cfg.DefaultQueryExecMode = mode
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys,
		goose.WithDisableGlobalRegistry(true), goose.WithSessionLocker(advisoryLock{id: migrationLockID}))
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	start := time.Now()
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("postgres migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration.Round(time.Microsecond))
	}
	log.Debug("postgres migrations checked", "applied", len(results), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// advisoryLock is a goose session locker that waits in pg_advisory_lock
// (until ctx ends) instead of polling pg_try_advisory_lock as goose's own
// does every few seconds: app instances starting together run their
// migrations one after the other without sleeping.
type advisoryLock struct{ id int64 }

func (l advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	return nil
}

func (l advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", l.id).Scan(&ok); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	if !ok {
		return errors.New("release migration lock: not held")
	}
	return nil
}

func poolStats(pool *pgxpool.Pool) func() dbmetrics.PoolStats {
	return func() dbmetrics.PoolStats {
		s := pool.Stat()
		return dbmetrics.PoolStats{Open: int(s.TotalConns()), InUse: int(s.AcquiredConns()), Idle: int(s.IdleConns()),
			MaxOpen: int(s.MaxConns()), WaitCount: s.EmptyAcquireCount(), WaitDuration: s.EmptyAcquireWaitTime()}
	}
}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.readPool().Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be released.
func (db *DB) Close() error {
	db.primary.Close()
	return nil
}

// mapError turns constraint violations into domain errors, by constraint
// name (the migration names every constraint).
func mapError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "23505": // unique_violation
		switch pe.ConstraintName {
		case "users_email_key":
			return &server.Error{Code: server.ECONFLICT, Field: "email", Message: "email is already taken"}
		case "users_username_key":
			return &server.Error{Code: server.ECONFLICT, Field: "username", Message: "username is already taken"}
		case "users_pkey", "records_pkey":
			return &server.Error{Code: server.ECONFLICT, Field: "id", Message: "id already exists"}
		}
	case "23503": // foreign_key_violation: a record for a user that is gone
		return server.Errorf(server.ENOTFOUND, "user not found")
	}
	return err
}
