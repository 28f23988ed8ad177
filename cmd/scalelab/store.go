package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/postgres"
	"scalelab/server/sqlite"
)

// seedStore is a store that can bulk-load seeded users.
type seedStore interface {
	server.Store
	Seed(ctx context.Context, users int, passwordHash string, progress func(done int)) error
}

// openStore opens the database named by dsn: sqlite:PATH or postgres://URL,
// with read replicas (postgres://URL each) for a PostgreSQL primary.
func openStore(ctx context.Context, dsn string, reg prometheus.Registerer, log *slog.Logger, replicas ...string) (seedStore, error) {
	return openStoreWith(ctx, dsn, "", reg, log, replicas...)
}

// openStoreWith is openStore with the URL migrations run on: a pgbouncer in
// transaction mode cannot hold the migrations' session advisory lock, so
// they go straight to the primary.
func openStoreWith(ctx context.Context, dsn, migrationDSN string, reg prometheus.Registerer, log *slog.Logger, replicas ...string) (seedStore, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, &exitError{code: 2, msg: "--db sqlite: needs a path, as in sqlite:scalelab.db"}
		}
		if len(replicas) > 0 {
			return nil, &exitError{code: 2, msg: "--replica needs a PostgreSQL --db (postgres://URL); SQLite has no replicas"}
		}
		db, err := sqlite.Open(ctx, path, sqlite.Options{Registerer: reg, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
		}
		return db, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		db, err := postgres.Open(ctx, dsn, postgres.Options{Registerer: reg, Logger: log, Replicas: replicas, MigrationURL: migrationDSN})
		if err != nil {
			return nil, fmt.Errorf("open postgres database %s: %w", redactDSN(dsn), err)
		}
		return db, nil
	}
	return nil, &exitError{code: 2, msg: fmt.Sprintf("--db %q: want sqlite:PATH or postgres://URL", redactDSN(dsn))}
}
