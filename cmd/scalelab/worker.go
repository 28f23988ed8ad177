package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"scalelab/server/app"
	"scalelab/server/jobs"
	"scalelab/server/postgres"
)

// runWorker works the queue's jobs until ctx ends, then lets running jobs
// finish (up to 30s).
func runWorker(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("worker", stderr)
	var c jobs.WorkerConfig
	c.RegisterFlags(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.LogLevel)
	if err != nil {
		return err
	}
	if c.Name != "" {
		log = log.With("instance", c.Name)
	}
	if !strings.HasPrefix(c.DB, "postgres://") && !strings.HasPrefix(c.DB, "postgresql://") {
		return &exitError{code: 2, msg: fmt.Sprintf("worker --db %q: want postgres://URL (the queue is River, on Postgres)", app.RedactDSN(c.DB))}
	}
	if c.Concurrency < 1 {
		return &exitError{code: 2, msg: fmt.Sprintf("worker --concurrency %d: want 1 or more", c.Concurrency)}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// The store runs the app's migrations too, so a worker started before
	// any app instance finds the tables it reads; --partitions gives them
	// the layout the apps ask for (the first to migrate chooses it).
	store, err := postgres.Open(ctx, c.DB, postgres.Options{MigrationURL: c.MigrationDB, Partitions: c.Partitions, Logger: log})
	if err != nil {
		return fmt.Errorf("worker: open %s: %w", app.RedactDSN(c.DB), err)
	}
	defer store.Close()
	migrationDB := c.MigrationDB
	if migrationDB == "" {
		migrationDB = c.DB
	}
	mpool, err := pgxpool.New(ctx, migrationDB)
	if err != nil {
		return fmt.Errorf("worker: connect %s: %w", app.RedactDSN(migrationDB), err)
	}
	err = jobs.Migrate(ctx, mpool)
	mpool.Close()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	pool, err := pgxpool.New(ctx, c.DB)
	if err != nil {
		return fmt.Errorf("worker: connect %s: %w", app.RedactDSN(c.DB), err)
	}
	defer pool.Close()
	q, err := jobs.New(pool, jobs.Options{Records: store, Deleter: store, Concurrency: c.Concurrency, Registerer: reg, Logger: log})
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}

	// /readyz on the metrics listener answers 200 once jobs are worked:
	// what the topology runner waits for.
	var ready atomic.Bool
	var metrics *http.Server
	merrc := make(chan error, 1)
	if c.MetricsAddr != "" {
		ln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return fmt.Errorf("worker: listen on --metrics-addr %s: %w", c.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
			if !ready.Load() {
				http.Error(w, "not working jobs yet", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		metrics = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		fmt.Fprintf(stdout, "scalelab worker metrics on http://%s/metrics\n", ln.Addr())
		go func() { merrc <- metrics.Serve(ln) }()
		defer func() {
			metrics.Close()
			<-merrc
		}()
	}

	// River's own work ends when its start context does: give it one that
	// outlives ctx, so that Stop can let running jobs finish.
	if err := q.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	ready.Store(true)
	fmt.Fprintf(stdout, "scalelab worker running %d jobs at once\n", c.Concurrency)
	log.Info("worker started", "db", app.RedactDSN(c.DB), "concurrency", c.Concurrency)
	select {
	case <-ctx.Done():
	case err := <-merrc:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
		merrc <- err // for the deferred close
	}
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := q.Stop(sctx); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	log.Info("worker stopped")
	return nil
}
