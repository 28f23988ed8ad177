package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/postgres"
	"scalelab/server/sqlite"
)

// SeedStore is a store that can bulk-load seeded users.
type SeedStore interface {
	server.Store
	Seed(ctx context.Context, users int, passwordHash string, progress func(done int)) error
}

// StoreOptions name a database and how to open it.
type StoreOptions struct {
	// DSN is sqlite:PATH or postgres://URL.
	DSN string
	// MigrationDSN is the URL migrations run on: a pgbouncer in
	// transaction mode cannot hold the migrations' session advisory lock,
	// so they go straight to the primary. Empty: DSN.
	MigrationDSN string
	// Replicas are read replicas (postgres://URL each) of a PostgreSQL
	// primary.
	Replicas   []string
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Quota bounds each user's stored records; the zero value none.
	Quota server.Quota
	// Partitions is the PostgreSQL table layout (postgres.Options); with
	// RequireLayout a database of another layout is a configuration error,
	// without it the store takes the database's layout (seed, worker).
	Partitions    int
	RequireLayout bool
	// ReplicaCheckInterval and MaxReplicaLag tune the read router
	// (postgres.Options); 0 takes its defaults.
	ReplicaCheckInterval time.Duration
	MaxReplicaLag        time.Duration
	// PoolSize is each PostgreSQL pool's size (postgres.Options.MaxConns);
	// 0 takes the URL's or pgx's.
	PoolSize int
}

// OpenStore opens the database o names.
func OpenStore(ctx context.Context, o StoreOptions) (SeedStore, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch dsn := o.DSN; {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, configErrorf("--db sqlite: needs a path, as in sqlite:scalelab.db")
		}
		if len(o.Replicas) > 0 {
			return nil, configErrorf("--replica needs a PostgreSQL --db (postgres://URL); SQLite has no replicas")
		}
		if o.Partitions != 0 {
			return nil, configErrorf("--partitions needs a PostgreSQL --db (postgres://URL)")
		}
		db, err := sqlite.Open(ctx, path, sqlite.Options{Registerer: o.Registerer, Logger: log, Quota: o.Quota})
		if err != nil {
			return nil, fmt.Errorf("open sqlite database %s: %w", path, err)
		}
		return db, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if p := o.Partitions; p < 0 || p == 1 || p > postgres.MaxPartitions {
			return nil, configErrorf("--partitions %d: want 0 (plain tables) or 2 to %d", p, postgres.MaxPartitions)
		}
		db, err := postgres.Open(ctx, dsn, postgres.Options{Registerer: o.Registerer, Logger: log, Replicas: o.Replicas, MigrationURL: o.MigrationDSN, Quota: o.Quota,
			Partitions: o.Partitions, RequireLayout: o.RequireLayout, ReplicaCheckInterval: o.ReplicaCheckInterval, MaxReplicaLag: o.MaxReplicaLag, MaxConns: int32(o.PoolSize)})
		var layout *postgres.LayoutError
		if errors.As(err, &layout) {
			return nil, configErrorf("--partitions %d: %s: %v", o.Partitions, RedactDSN(dsn), layout)
		}
		if err != nil {
			return nil, fmt.Errorf("open postgres database %s: %w", RedactDSN(dsn), err)
		}
		return db, nil
	}
	return nil, configErrorf("--db %q: want sqlite:PATH or postgres://URL", RedactDSN(o.DSN))
}
