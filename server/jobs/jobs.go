// Package jobs is scalelab's queue for heavy work, on River
// (github.com/riverqueue/river): jobs are rows in Postgres, inserted in the
// same database the API writes to, and worked by `scalelab worker`
// processes. The API server uses a Queue to insert and look up jobs; a
// worker process uses one with Concurrency > 0 to work them.
//
// The jobs: a data export (every record of a user as one gzip-compressed
// JSON document, kept in the table scalelab_exports); the deletion of a
// deleted user's records, in batches (the user itself is gone at once);
// and CDN purges that the API server could not send within seconds.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"scalelab/server"
)

// migrationLockID serializes River's migrations and this package's table
// across processes started at once (every app instance and the worker
// migrate at start). It is the lock server/postgres holds around goose's
// Up, so that River's schema and the app's are never changed at once.
const migrationLockID int64 = 0x7363616c656c6162 // "scalelab" in ASCII

// Migrate brings River's tables and scalelab_exports up to date, under the
// migration advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate jobs: acquire: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
		return fmt.Errorf("migrate jobs: lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLockID)

	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("migrate jobs: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	// The export files live in a table, not a folder: every app instance
	// can serve any export without shared storage, the file goes when the
	// user goes (the cascade), and backups hold it. Exports are a few MiB
	// at most (the per-user quota bounds them), well within bytea's reach.
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS scalelab_exports (
    job_id     bigint      NOT NULL PRIMARY KEY,
    user_id    uuid        NOT NULL,
    encoding   text        NOT NULL,
    body       bytea       NOT NULL,
    records    bigint      NOT NULL,
    raw_bytes  bigint      NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return fmt.Errorf("migrate jobs: scalelab_exports: %w", err)
	}
	return nil
}

// Options configure a Queue.
type Options struct {
	// Records is where exports read from, Deleter what deletes a deleted
	// user's records; both needed only with Concurrency.
	Records server.RecordStore
	Deleter RecordDeleter
	// Concurrency is how many jobs this process works at once; 0 makes
	// a Queue that only inserts and looks up jobs (the API server's).
	Concurrency int
	// Detacher and DeferRecords make DeleteUserLater defer the records of
	// a user with at least DeferRecords of them to a job; without them
	// (or with DeferRecords 0) every deletion is left to the caller.
	Detacher     UserDetacher
	DeferRecords int64
	Registerer   prometheus.Registerer
	Logger       *slog.Logger
}

// Queue inserts jobs, and with Options.Concurrency works them.
type Queue struct {
	pool    *pgxpool.Pool
	client  *river.Client[pgx.Tx]
	log     *slog.Logger
	metrics *metrics
	working bool
	// detacher and deferRecords: see Options.
	detacher     UserDetacher
	deferRecords int64
	done         chan struct{} // closed when the event loop ends
	cancel       func()        // ends the event subscription
}

// New returns a Queue on pool. Call Migrate first.
func New(pool *pgxpool.Pool, opts Options) (*Queue, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registerer == nil {
		opts.Registerer = prometheus.NewRegistry()
	}
	q := &Queue{pool: pool, log: opts.Logger, working: opts.Concurrency > 0, detacher: opts.Detacher, deferRecords: opts.DeferRecords}
	cfg := &river.Config{Logger: opts.Logger}
	if q.working {
		if opts.Records == nil || opts.Deleter == nil {
			return nil, errors.New("jobs: a working queue needs Records and Deleter")
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, &exportWorker{records: opts.Records, pool: pool})
		river.AddWorker(workers, &deleteRecordsWorker{records: opts.Deleter})
		river.AddWorker(workers, &purgeWorker{client: &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}})
		cfg.Workers = workers
		cfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: opts.Concurrency}}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	q.client = client
	q.metrics = newMetrics(opts.Registerer, pool, q.working)
	return q, nil
}

// Start works jobs until Stop; only a Queue with Concurrency does.
func (q *Queue) Start(ctx context.Context) error {
	if !q.working {
		return nil
	}
	events, cancel := q.client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled)
	q.cancel, q.done = cancel, make(chan struct{})
	go func() {
		defer close(q.done)
		for ev := range events {
			q.metrics.observe(ev)
		}
	}()
	if err := q.client.Start(ctx); err != nil {
		cancel()
		<-q.done
		return fmt.Errorf("start river: %w", err)
	}
	return nil
}

// Stop lets running jobs finish until ctx ends, then stops the queue.
func (q *Queue) Stop(ctx context.Context) error {
	if !q.working {
		return nil
	}
	err := q.client.Stop(ctx)
	if q.cancel != nil {
		q.cancel() // closes the events channel
		<-q.done
	}
	if err != nil {
		return fmt.Errorf("stop river: %w", err)
	}
	return nil
}

// EnqueueExport inserts an export of userID's records and returns its
// job id.
func (q *Queue) EnqueueExport(ctx context.Context, userID string) (int64, error) {
	res, err := q.client.Insert(ctx, ExportArgs{UserID: userID}, nil)
	if err != nil {
		return 0, fmt.Errorf("enqueue export of %s: %w", userID, err)
	}
	return res.Job.ID, nil
}

// Job statuses (of exports and deletions), as the API reports them.
const (
	StatusQueued  = "queued"
	StatusRunning = "running"
	StatusDone    = "done"
	StatusFailed  = "failed"
)

// ExportStatus is an export job as its owner sees it.
type ExportStatus struct {
	JobID  int64
	UserID string
	Status string
	// Error is the last attempt's error, when there was one.
	Error string
}

// ExportStatus looks up export job id; a job that is not userID's export
// is ENOTFOUND, as an unknown one is.
func (q *Queue) ExportStatus(ctx context.Context, userID string, id int64) (*ExportStatus, error) {
	job, err := q.client.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return nil, server.Errorf(server.ENOTFOUND, "export %d not found", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get export %d: %w", id, err)
	}
	args, err := decodeExportArgs(job)
	if err != nil || args.UserID != userID {
		return nil, server.Errorf(server.ENOTFOUND, "export %d not found", id)
	}
	st := &ExportStatus{JobID: id, UserID: userID, Status: jobStatus(job.State)}
	if n := len(job.Errors); n > 0 {
		st.Error = job.Errors[n-1].Error
	}
	return st, nil
}

// jobStatus is a job's state as the API reports it.
func jobStatus(s rivertype.JobState) string {
	switch s {
	case rivertype.JobStateRunning, rivertype.JobStateRetryable:
		return StatusRunning
	case rivertype.JobStateCompleted:
		return StatusDone
	case rivertype.JobStateDiscarded, rivertype.JobStateCancelled:
		return StatusFailed
	}
	return StatusQueued // available, scheduled, pending
}

// ExportFile is a finished export.
type ExportFile struct {
	Encoding string // the Content-Encoding of Body
	Body     []byte
	Records  int64
	RawBytes int64 // the JSON's size before compression
}

// ExportFile returns userID's finished export id, ENOTFOUND when there is
// none (unknown, another user's, or not done yet).
func (q *Queue) ExportFile(ctx context.Context, userID string, id int64) (*ExportFile, error) {
	var f ExportFile
	err := q.pool.QueryRow(ctx, `SELECT encoding, body, records, raw_bytes FROM scalelab_exports WHERE job_id = $1 AND user_id = $2`,
		id, userID).Scan(&f.Encoding, &f.Body, &f.Records, &f.RawBytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, server.Errorf(server.ENOTFOUND, "export %d has no file", id)
	}
	if err != nil {
		return nil, fmt.Errorf("load export %d: %w", id, err)
	}
	return &f, nil
}

// timeout bounds a metric's query at scrape time.
const scrapeTimeout = 2 * time.Second
