package main

import (
	"context"
	"fmt"
	"io"

	"scalelab/lab"
	"scalelab/server/app"
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
	d, err := lab.SeedUsers(ctx, store, *users, stdout, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d users into %s in %.1fs (%.0f users/s)\n",
		*users, app.RedactDSN(*dsn), d.Seconds(), float64(*users)/d.Seconds())
	return nil
}
