package app

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/jobs"
)

// registerQueueFlags defines the flags of the work the server leaves to
// the job queue.
func (c *Config) registerQueueFlags(fs *flag.FlagSet) {
	fs.Int64Var(&c.AsyncDeleteRecords, "async-delete-records", 0,
		"a DELETE of a user with at least this many records answers 202: the user is gone at once, its records are deleted by `scalelab worker` in batches (PostgreSQL only; a worker must run). 0 = every delete is synchronous (204)")
}

// isPostgres reports whether dsn names a PostgreSQL database.
func isPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// openQueue opens the job queue on a PostgreSQL --db, after running River's
// migrations (under the app's migration lock, on --migration-db when set):
// the server only inserts and looks up jobs; `scalelab worker` works them.
// With SQLite there is no queue: the export routes answer 501 and every
// delete is synchronous.
func openQueue(ctx context.Context, c Config, store server.Store, reg prometheus.Registerer, log *slog.Logger) (*jobs.Queue, func(), error) {
	if c.AsyncDeleteRecords < 0 {
		return nil, nil, configErrorf("--async-delete-records %d: want 0 (off) or more", c.AsyncDeleteRecords)
	}
	if !isPostgres(c.DB) {
		if c.AsyncDeleteRecords > 0 {
			return nil, nil, configErrorf("--async-delete-records needs the job queue, which runs on PostgreSQL (--db postgres://URL)")
		}
		return nil, func() {}, nil
	}
	opts := jobs.Options{Registerer: reg, Logger: log}
	if c.AsyncDeleteRecords > 0 {
		d, ok := store.(jobs.UserDetacher)
		if !ok {
			return nil, nil, fmt.Errorf("queue: the store %T cannot delete a user apart from its records", store)
		}
		opts.Detacher, opts.DeferRecords = d, c.AsyncDeleteRecords
	}
	mdb := c.MigrationDB
	if mdb == "" {
		mdb = c.DB
	}
	mpool, err := pgxpool.New(ctx, mdb)
	if err != nil {
		return nil, nil, fmt.Errorf("queue: connect %s: %w", RedactDSN(mdb), err)
	}
	err = jobs.Migrate(ctx, mpool)
	mpool.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("queue: %w", err)
	}
	pool, err := pgxpool.New(ctx, c.DB)
	if err != nil {
		return nil, nil, fmt.Errorf("queue: connect %s: %w", RedactDSN(c.DB), err)
	}
	q, err := jobs.New(pool, opts)
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("queue: %w", err)
	}
	return q, pool.Close, nil
}
