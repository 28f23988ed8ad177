package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"scalelab/loadgen"
	"scalelab/server"
	"scalelab/server/app"
	"scalelab/server/auth"
)

func runSeed(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("seed", stderr)
	dsn := fs.String("db", "sqlite:scalelab.db", "database: sqlite:PATH or postgres://URL")
	users := fs.Int("users", 10000, "number of users to seed")
	logLevel := fs.String("log-level", "warn", "debug, info, warn or error")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *users < 1 {
		return &exitError{code: 2, msg: "--users must be at least 1"}
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	store, err := app.OpenStore(ctx, app.StoreOptions{DSN: *dsn, Logger: log})
	if err != nil {
		return usageError(err)
	}
	defer store.Close()
	d, err := seed(ctx, store, *users, stdout, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d users into %s in %.1fs (%.0f users/s)\n",
		*users, app.RedactDSN(*dsn), d.Seconds(), float64(*users)/d.Seconds())
	return nil
}

// seed bulk-loads users seeded users with one shared password hash and
// shows a progress bar.
func seed(ctx context.Context, store app.SeedStore, users int, w io.Writer, log *slog.Logger) (time.Duration, error) {
	// One hash for every seeded user, at the server's default cost, so
	// token requests for seeded users cost what real ones do.
	hash, err := auth.Hash(server.SeedPassword, auth.DefaultParams())
	if err != nil {
		return 0, err
	}
	fmt.Fprintf(w, "seeding %d users (all share one password hash of %q; seeded ids are deterministic)\n",
		users, server.SeedPassword)
	bar := loadgen.StartBar(ctx, w, "seed", int64(users))
	start := time.Now()
	var last int
	err = store.Seed(ctx, users, hash, func(done int) {
		bar.Add(int64(done - last))
		last = done
	})
	bar.Stop()
	if err != nil {
		return 0, fmt.Errorf("seed %d users: %w", users, err)
	}
	d := time.Since(start)
	log.Info("seeded", "users", users, "seconds", d.Seconds())
	return d, nil
}
