package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server/jobs"
)

// openQueue opens the job queue on a PostgreSQL --db, after running River's
// migrations (under the app's migration lock, on --migration-db when set):
// the server only inserts and looks up jobs; `scalelab worker` works them.
// With SQLite there is no queue and the export routes answer 501.
func openQueue(ctx context.Context, c Config, reg prometheus.Registerer, log *slog.Logger) (*jobs.Queue, func(), error) {
	if !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		return nil, func() {}, nil
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
	q, err := jobs.New(pool, jobs.Options{Registerer: reg, Logger: log})
	if err != nil {
		pool.Close()
		return nil, nil, fmt.Errorf("queue: %w", err)
	}
	return q, pool.Close, nil
}
