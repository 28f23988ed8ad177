// Package sqlite is scalelab's default store: an embedded SQLite database in
// WAL mode, for phase 1.
//
// It uses github.com/mattn/go-sqlite3 (cgo) rather than the pure-Go
// modernc.org/sqlite: on this lab's machines a minimal GET-by-id server on
// mattn/go-sqlite3 served about 1.4x the requests of the same server on
// modernc.org/sqlite, and GET by id is the hot path the lab measures. The
// price is a C compiler at build time.
//
// SQLite allows one writer at a time, and a writer that finds the database
// locked waits (busy_timeout) or fails. So a DB holds two pools: one writer
// connection, through which every write is serialized inside this process
// without ever meeting SQLITE_BUSY, and a pool of read-only connections that
// WAL lets read concurrently with the writer. Only one process should write a
// database file.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
	"github.com/pressly/goose/v3"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/internal/dbmetrics"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configures a DB. The zero value is fine.
type Options struct {
	// ReadConns is the size of the read-only pool; 0 means
	// max(4, GOMAXPROCS). Each connection keeps its own page cache and
	// prepared statements, so they are kept open, never churned.
	ReadConns int
	// Registerer receives the store's metrics (package doc of
	// server/internal/dbmetrics: query durations, pool stats); nil
	// registers none.
	Registerer prometheus.Registerer
	// Logger receives migrations and seeding progress; nil discards.
	Logger *slog.Logger
	// Quota bounds each user's stored records; the zero value none.
	Quota server.Quota
}

// DB is a server.Store on one SQLite database file.
type DB struct {
	writer  *sql.DB // exactly one connection
	reader  *sql.DB // read-only connections
	stmts   stmts
	metrics *dbmetrics.Queries
	log     *slog.Logger
	quota   server.Quota
}

var _ server.Store = (*DB)(nil)

// ops are the operation labels of the query duration metric.
var ops = []string{"create_user", "user", "user_by_login", "update_user", "delete_user",
	"create_record", "create_records", "record", "records", "update_record", "delete_record", "stats"}

// Open opens (creating if needed) the database file at path, in WAL mode
// with synchronous=NORMAL, busy_timeout and foreign keys on, and applies the
// embedded migrations.
func Open(ctx context.Context, path string, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db := &DB{log: log, quota: opts.Quota}
	// _txlock=immediate: a write transaction takes the write lock at BEGIN,
	// not at its first write, so it cannot fail half-way with SQLITE_BUSY.
	// _mutex=no: database/sql never shares a connection between goroutines.
	db.writer = sql.OpenDB(connector{dsn: dsn(abs, url.Values{
		"_journal_mode": {"WAL"}, "_synchronous": {"NORMAL"}, "_busy_timeout": {"5000"},
		"_foreign_keys": {"1"}, "_txlock": {"immediate"}, "_mutex": {"no"},
	})})
	db.writer.SetMaxOpenConns(1)
	db.writer.SetMaxIdleConns(1)
	db.writer.SetConnMaxLifetime(0)
	db.writer.SetConnMaxIdleTime(0)
	if err := db.migrate(ctx); err != nil {
		db.writer.Close()
		return nil, err
	}

	// The writer's connection (open from now on) has made the file a WAL
	// database with its -shm file, which read-only connections need.
	n := opts.ReadConns
	if n <= 0 {
		n = max(4, runtime.GOMAXPROCS(0))
	}
	db.reader = sql.OpenDB(connector{dsn: dsn(abs, url.Values{
		"mode": {"ro"}, "_busy_timeout": {"5000"}, "_mutex": {"no"},
	})})
	db.reader.SetMaxOpenConns(n)
	db.reader.SetMaxIdleConns(n)
	db.reader.SetConnMaxLifetime(0)
	db.reader.SetConnMaxIdleTime(0)

	if err := db.stmts.prepare(ctx, db.writer, db.reader); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	qs, err := dbmetrics.NewQueries(opts.Registerer, "sqlite", ops, "primary")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: register metrics: %w", path, err)
	}
	db.metrics = qs[0]
	err = dbmetrics.RegisterPools(opts.Registerer, "sqlite",
		dbmetrics.Pool{Name: "writer", Stats: poolStats(db.writer)},
		dbmetrics.Pool{Name: "reader", Stats: poolStats(db.reader)})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: register pool metrics: %w", path, err)
	}
	return db, nil
}

// dsn builds a file: URI (so SQLite itself sees mode=ro) with mattn's
// parameters.
func dsn(path string, params url.Values) string {
	return (&url.URL{Scheme: "file", Path: path, RawQuery: params.Encode()}).String()
}

// connector opens connections without registering a driver name, which is
// process-wide state.
type connector struct{ dsn string }

func (c connector) Connect(context.Context) (driver.Conn, error) {
	return c.Driver().Open(c.dsn)
}

func (c connector) Driver() driver.Driver { return &sqlite3.SQLiteDriver{} }

func (db *DB) migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db.writer, fsys, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate sqlite: %w", err)
	}
	for _, r := range results {
		db.log.Info("sqlite migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration.Round(time.Microsecond))
	}
	return nil
}

func poolStats(db *sql.DB) func() dbmetrics.PoolStats {
	return func() dbmetrics.PoolStats {
		s := db.Stats()
		return dbmetrics.PoolStats{Open: s.OpenConnections, InUse: s.InUse, Idle: s.Idle,
			MaxOpen: s.MaxOpenConnections, WaitCount: s.WaitCount, WaitDuration: s.WaitDuration}
	}
}

// Ping reports whether the database answers a read. It does not use the
// writer, which a long seed may hold.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.stmts.ping.QueryRowContext(ctx).Scan(&one); err != nil {
		return fmt.Errorf("ping sqlite: %w", err)
	}
	return nil
}

// Close closes both pools, after letting SQLite refresh its query planner
// statistics (PRAGMA optimize, as SQLite recommends on close).
func (db *DB) Close() error {
	db.stmts.close()
	var errs []error
	if db.reader != nil {
		errs = append(errs, db.reader.Close())
	}
	if _, err := db.writer.Exec("PRAGMA optimize"); err != nil {
		db.log.Warn("sqlite optimize on close", "err", err)
	}
	errs = append(errs, db.writer.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}

// stmts are the prepared statements of every operation. database/sql
// prepares each once per connection, on first use there.
type stmts struct {
	ping, user, userByLogin, userExists, record, recordsFirst, recordsAfter      *sql.Stmt // reader
	createUser, updateUser, deleteUser, createRecord, updateRecord, deleteRecord *sql.Stmt // writer
}

const userCols = `id, email, username, password_hash, name, avatar, created_at, updated_at, version`
const recordCols = `id, user_id, data, created_at, updated_at`

func (s *stmts) prepare(ctx context.Context, writer, reader *sql.DB) error {
	for _, p := range []struct {
		db   *sql.DB
		dst  **sql.Stmt
		text string
	}{
		{reader, &s.ping, `SELECT 1`},
		{reader, &s.user, `SELECT ` + userCols + ` FROM users WHERE id = ?`},
		{reader, &s.userByLogin, `SELECT ` + userCols + ` FROM users WHERE email_key = ?1 OR username_key = ?1`},
		{reader, &s.userExists, `SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)`},
		{reader, &s.record, `SELECT ` + recordCols + ` FROM records WHERE id = ? AND user_id = ?`},
		{reader, &s.recordsFirst, `SELECT ` + recordCols + ` FROM records WHERE user_id = ? ORDER BY id DESC LIMIT ?`},
		{reader, &s.recordsAfter, `SELECT ` + recordCols + ` FROM records WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT ?`},
		{writer, &s.createUser, `INSERT INTO users (id, email, email_key, username, username_key, password_hash, name, avatar, created_at, updated_at, version)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		// One statement, so no transaction is needed: absent (NULL) fields
		// keep their value, and updated_at = max(now, old + 1µs) is
		// server.NextUpdate.
		{writer, &s.updateUser, `UPDATE users SET
			email = coalesce(?1, email), email_key = coalesce(?2, email_key),
			username = coalesce(?3, username), username_key = coalesce(?4, username_key),
			password_hash = coalesce(?5, password_hash), name = coalesce(?6, name), avatar = coalesce(?7, avatar),
			updated_at = max(?8, updated_at + 1), version = version + 1
			WHERE id = ?9 AND (?10 IS NULL OR version = ?10) RETURNING ` + userCols},
		{writer, &s.deleteUser, `DELETE FROM users WHERE id = ?`},
		{writer, &s.createRecord, `INSERT INTO records (` + recordCols + `) VALUES (?, ?, ?, ?, ?)`},
		{writer, &s.updateRecord, `UPDATE records SET data = ?1, updated_at = max(?2, updated_at + 1)
			WHERE id = ?3 AND user_id = ?4 RETURNING ` + recordCols},
		{writer, &s.deleteRecord, `DELETE FROM records WHERE id = ? AND user_id = ?`},
	} {
		st, err := p.db.PrepareContext(ctx, p.text)
		if err != nil {
			return fmt.Errorf("prepare %s: %w", strings.Join(strings.Fields(p.text), " "), err)
		}
		*p.dst = st
	}
	return nil
}

func (s *stmts) close() {
	for _, st := range []*sql.Stmt{s.ping, s.user, s.userByLogin, s.userExists, s.record, s.recordsFirst,
		s.recordsAfter, s.createUser, s.updateUser, s.deleteUser, s.createRecord, s.updateRecord, s.deleteRecord} {
		if st != nil {
			st.Close()
		}
	}
}

// micros and fromMicros convert times to and from the stored Unix
// microseconds.
func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// mapError turns constraint violations into domain errors.
func mapError(err error) error {
	var se sqlite3.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.ExtendedCode {
	case sqlite3.ErrConstraintUnique, sqlite3.ErrConstraintPrimaryKey:
		// The message names the column: "UNIQUE constraint failed: users.email_key".
		msg := se.Error()
		switch {
		case strings.Contains(msg, "users.email_key"):
			return &server.Error{Code: server.ECONFLICT, Field: "email", Message: "email is already taken"}
		case strings.Contains(msg, "users.username_key"):
			return &server.Error{Code: server.ECONFLICT, Field: "username", Message: "username is already taken"}
		case strings.Contains(msg, "users.id"), strings.Contains(msg, "records.id"):
			return &server.Error{Code: server.ECONFLICT, Field: "id", Message: "id already exists"}
		}
	case sqlite3.ErrConstraintForeignKey:
		return server.Errorf(server.ENOTFOUND, "user not found")
	}
	return err
}
