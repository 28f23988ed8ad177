package jobs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/riverqueue/river"

	"scalelab/server/cache"
)

// PurgeArgs asks for one CDN purge that the API server could not send:
// cache.Purger tries a purge a few times within seconds, then hands it
// over here (cache.PurgerOptions.Handoff), where it outlives the instance
// and is retried for as long as the CDN may still hold the old copy.
type PurgeArgs struct {
	// URL is the CDN node's base URL and the path, e.g.
	// http://127.0.0.1:6081/api/v1/users/<id>.
	URL string `json:"url"`
	// Host is the Host header to send, when set.
	Host string `json:"host,omitempty"`
}

// Kind names the job in River's table.
func (PurgeArgs) Kind() string { return "cdn_purge" }

// purgeAttempts × purgeMaxBackoff spans the hour the CDN keeps a public
// view (s-maxage=3600), after which a purge has nothing left to remove.
const (
	purgeAttempts   = 70
	purgeMaxBackoff = time.Minute
	purgeUseless    = time.Hour
)

// InsertOpts: see purgeAttempts.
func (PurgeArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: purgeAttempts} }

// EnqueuePurge inserts a CDN purge of target (base URL and path) with Host
// header host ("" for the URL's own).
func (q *Queue) EnqueuePurge(ctx context.Context, target, host string) error {
	if _, err := q.client.Insert(ctx, PurgeArgs{URL: target, Host: host}, nil); err != nil {
		return fmt.Errorf("enqueue cdn purge of %s: %w", target, err)
	}
	return nil
}

// purgeWorker sends one PURGE per attempt.
type purgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	client *http.Client
}

func (w *purgeWorker) Work(ctx context.Context, job *river.Job[PurgeArgs]) error {
	if time.Since(job.CreatedAt) > purgeUseless {
		return river.JobCancel(fmt.Errorf("purge %s: the CDN's copy has expired by now", job.Args.URL))
	}
	err := cache.PurgeOnce(ctx, w.client, job.Args.URL, job.Args.Host)
	if errors.Is(err, cache.ErrPurgeRefused) {
		return river.JobCancel(err) // retrying cannot help
	}
	return err
}

// NextRetry backs off from one second, doubling, to at most a minute:
// River's default (attempt⁴ seconds) would wait hours by the tenth try,
// long after the CDN's copy expired.
func (w *purgeWorker) NextRetry(job *river.Job[PurgeArgs]) time.Time {
	wait := time.Second
	if n := job.Attempt; n > 1 {
		wait = min(time.Second<<min(n-1, 6), purgeMaxBackoff)
	}
	return time.Now().Add(wait)
}

// Timeout bounds one PURGE, as the API server's purger does.
func (w *purgeWorker) Timeout(*river.Job[PurgeArgs]) time.Duration { return 5 * time.Second }
