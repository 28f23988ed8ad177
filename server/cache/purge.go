package cache

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Purger removes a path from the CDN tier (L3; Varnish in phase 4) after a
// write, by sending `PURGE <path>` to each configured CDN base URL.
//
// A purge must never fail or slow the write that caused it, so Purge only
// puts the path on a bounded queue and returns; one worker goroutine, owned
// by the Purger (Start, Close), sends the requests and retries failures
// with exponential backoff. A purge that keeps failing (the CDN is down)
// is handed over to the job queue when PurgerOptions.Handoff is set (phase
// 4: a River job that `scalelab worker` retries for the hour the CDN may
// keep the old copy, and that survives this instance), and counted
// "queued". Without a Handoff, or when the handoff fails, it is given up;
// a full queue drops the purge. Both are counted
// (scalelab_cdn_purges_total{result="dropped"|"failed"}) and then the CDN
// serves the old public view until its s-maxage runs out: the bound on
// staleness that the Cache-Control header states anyway.
//
// One purge is not enough on its own. A CDN fetch that read the old value
// before the write, and is still in flight when the purge arrives, stores
// that old value after the purge (there was nothing to purge yet), for the
// whole s-maxage; so does a fetch served by an instance whose L1 has not
// yet received the write's invalidation. With Repeat set, each purge is
// sent once more that long after it succeeded, which bounds such a stale
// copy to Repeat instead of an hour.
type Purger struct {
	bases    []string
	host     string
	client   *http.Client
	attempts int
	backoff  time.Duration
	maxWait  time.Duration
	timeout  time.Duration
	repeat   time.Duration
	handoff  func(ctx context.Context, target, host string) error
	log      *slog.Logger
	results  *prometheus.CounterVec

	mu      sync.RWMutex // guards closed against sends on a closed queue
	closed  bool
	started bool
	queue   chan purgeJob
	cancel  context.CancelFunc
	done    chan struct{}
}

// PurgerOptions configure a Purger. Zero values take the documented
// defaults.
type PurgerOptions struct {
	// BaseURLs are the CDN nodes, e.g. "http://127.0.0.1:6081". Each gets
	// every purge.
	BaseURLs []string
	// Host, when set, is the Host header of PURGE requests: the host the
	// public URLs are cached under, if it differs from the base URL's.
	Host string
	// QueueSize bounds purges waiting to be sent; default 1024.
	QueueSize int
	// Attempts is how often one purge is tried in all; default 4.
	Attempts int
	// Backoff is the wait before the first retry, doubling after each,
	// at most MaxBackoff; defaults 100ms and 2s.
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Timeout bounds one PURGE request; default 2s.
	Timeout time.Duration
	// Repeat, when positive, sends every purge once more this long after
	// it succeeded (see Purger); 0 sends each once. It must outlast a CDN
	// fetch and an invalidation's way to every instance.
	Repeat time.Duration
	// Handoff, when set, takes a purge that failed every attempt (or
	// still waits for a retry at Close), e.g. to insert it into a durable
	// job queue (jobs.Queue.EnqueuePurge), with the full URL to purge and
	// the Host header (Host, or ""). It runs on the Purger's worker
	// goroutine, bounded by Timeout.
	Handoff func(ctx context.Context, target, host string) error
	// Client sends the requests; a client that follows no redirects when
	// nil.
	Client *http.Client
	// Registerer receives scalelab_cdn_purges_total; nil = not registered.
	Registerer prometheus.Registerer
	// Logger gets purges given up; nil discards.
	Logger *slog.Logger
}

type purgeJob struct {
	base, path string
	attempt    int       // attempts made so far
	at         time.Time // when a retry (or the repeat) is due
	repeat     bool      // this is the repeat of a purge that succeeded
}

// NewPurger returns a Purger; call Start before Purge has any effect.
func NewPurger(o PurgerOptions) (*Purger, error) {
	if len(o.BaseURLs) == 0 {
		return nil, errors.New("cdn purger: no base url")
	}
	var bases []string
	for _, b := range o.BaseURLs {
		u, err := url.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("cdn purger: base url %q: %w", b, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return nil, fmt.Errorf("cdn purger: base url %q: want http(s)://host[:port][/prefix]", b)
		}
		bases = append(bases, strings.TrimRight(b, "/"))
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 1024
	}
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Backoff <= 0 {
		o.Backoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 2 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scalelab_cdn_purges_total",
		Help: "CDN purge requests by result: ok, retry (a failed try that will be retried), queued (failed every try, handed over to the job queue), failed (given up), dropped (queue full or closed).",
	}, []string{"result"})
	for _, r := range []string{"ok", "retry", "queued", "failed", "dropped"} {
		results.WithLabelValues(r) // show zeros from the start
	}
	if o.Registerer != nil {
		if err := o.Registerer.Register(results); err != nil {
			return nil, fmt.Errorf("register cdn purge metrics: %w", err)
		}
	}
	return &Purger{
		bases:    bases,
		host:     o.Host,
		client:   o.Client,
		attempts: o.Attempts,
		backoff:  o.Backoff,
		maxWait:  o.MaxBackoff,
		timeout:  o.Timeout,
		repeat:   o.Repeat,
		handoff:  o.Handoff,
		log:      o.Logger,
		results:  results,
		queue:    make(chan purgeJob, o.QueueSize),
		done:     make(chan struct{}),
	}, nil
}

// Start starts the worker. It stops when ctx ends (dropping what is left)
// or on Close (sending what is queued first). Call it once.
func (p *Purger) Start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.closed {
		return
	}
	p.started = true
	ctx, p.cancel = context.WithCancel(ctx)
	go p.run(ctx)
}

// Purge queues a purge of the public URL path (e.g. "/api/v1/users/<id>")
// on every CDN node and returns at once. It never blocks: when the queue is
// full, or the Purger is closed, the purge is dropped and counted.
func (p *Purger) Purge(path string) {
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	for _, b := range p.bases {
		if p.closed {
			p.results.WithLabelValues("dropped").Inc()
			continue
		}
		select {
		case p.queue <- purgeJob{base: b, path: path}:
		default:
			p.results.WithLabelValues("dropped").Inc()
			p.log.Warn("cdn purge dropped: queue full", "url", b+path)
		}
	}
}

// Close stops accepting purges, lets the worker send those already queued
// (first tries only: retries still waiting are handed over, or given up
// without a Handoff) and waits for it until ctx ends, when it abandons the
// rest.
func (p *Purger) Close(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.queue)
	started := p.started
	p.mu.Unlock()
	if !started {
		return nil
	}
	select {
	case <-p.done:
		p.cancel()
		return nil
	case <-ctx.Done():
		p.cancel()
		<-p.done
		return fmt.Errorf("close cdn purger: %w", ctx.Err())
	}
}

// run is the worker: it takes queued purges and retries that are due, one
// request at a time.
func (p *Purger) run(ctx context.Context) {
	defer close(p.done)
	var retries retryHeap
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	giveUp := func() {
		// The handoff runs even when ctx ended: it is what keeps the
		// waiting purges from being lost with this instance.
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.timeout)
		defer cancel()
		for _, j := range retries {
			if j.repeat {
				p.results.WithLabelValues("failed").Inc()
				continue
			}
			p.handOver(hctx, j, errors.New("the purger stopped before its retry"))
		}
	}
	for {
		var due <-chan time.Time
		if len(retries) > 0 {
			timer.Reset(time.Until(retries[0].at))
			due = timer.C
		}
		select {
		case <-ctx.Done():
			giveUp()
			return
		case j, ok := <-p.queue:
			if !ok {
				giveUp()
				return
			}
			p.try(ctx, j, &retries)
		case <-due:
			now := time.Now()
			for len(retries) > 0 && !retries[0].at.After(now) && ctx.Err() == nil {
				p.try(ctx, heap.Pop(&retries).(purgeJob), &retries)
			}
		}
	}
}

// try sends j once and schedules a retry when it may help.
func (p *Purger) try(ctx context.Context, j purgeJob, retries *retryHeap) {
	j.attempt++
	err := p.send(ctx, j.base+j.path)
	switch {
	case err == nil:
		p.results.WithLabelValues("ok").Inc()
		if p.repeat > 0 && !j.repeat {
			if retries.Len() >= cap(p.queue) {
				p.results.WithLabelValues("dropped").Inc()
				return
			}
			heap.Push(retries, purgeJob{base: j.base, path: j.path, at: time.Now().Add(p.repeat), repeat: true})
		}
	case ctx.Err() != nil:
		p.results.WithLabelValues("failed").Inc()
	case errors.Is(err, ErrPurgeRefused):
		p.results.WithLabelValues("failed").Inc()
		p.log.Warn("cdn purge refused; the CDN serves the old copy until it expires", "url", j.base+j.path, "err", err)
	case j.attempt >= p.attempts, retries.Len() >= cap(p.queue):
		// Out of attempts, or as many retries wait as the queue holds
		// (the CDN is down, and keeping more would only grow memory).
		hctx, cancel := context.WithTimeout(ctx, p.timeout)
		p.handOver(hctx, j, err)
		cancel()
	default:
		p.results.WithLabelValues("retry").Inc()
		wait := min(p.backoff<<(j.attempt-1), p.maxWait)
		j.at = time.Now().Add(wait)
		heap.Push(retries, j)
	}
}

// handOver gives a purge that failed (with err) to the Handoff, or gives
// it up without one.
func (p *Purger) handOver(ctx context.Context, j purgeJob, err error) {
	target := j.base + j.path
	if p.handoff == nil {
		p.results.WithLabelValues("failed").Inc()
		p.log.Warn("cdn purge failed; the CDN serves the old copy until it expires",
			"url", target, "attempts", j.attempt, "err", err)
		return
	}
	if herr := p.handoff(ctx, target, p.host); herr != nil {
		p.results.WithLabelValues("failed").Inc()
		p.log.Warn("cdn purge failed, and handing it to the job queue failed too; the CDN serves the old copy until it expires",
			"url", target, "attempts", j.attempt, "err", err, "handoff_err", herr)
		return
	}
	p.results.WithLabelValues("queued").Inc()
	p.log.Info("cdn purge failed; handed to the job queue", "url", target, "attempts", j.attempt, "err", err)
}

// ErrPurgeRefused marks a purge the CDN refused: retrying cannot help.
var ErrPurgeRefused = errors.New("refused, not retryable")

func (p *Purger) send(ctx context.Context, target string) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	return PurgeOnce(ctx, p.client, target, p.host)
}

// PurgeOnce makes one PURGE request of target (the CDN node's base URL and
// the path), with Host header host when not "". 2xx is success, and so is
// 404 (nothing cached under that URL: some CDNs say so). 408, 429 and 5xx
// are worth a retry; any other status means the CDN refuses purges (a VCL
// without a PURGE rule answers 405), and the error is ErrPurgeRefused.
func PurgeOnce(ctx context.Context, client *http.Client, target, host string) error {
	req, err := http.NewRequestWithContext(ctx, "PURGE", target, nil)
	if err != nil {
		return fmt.Errorf("purge %s: %w: %w", target, ErrPurgeRefused, err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("purge %s: %w", target, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300, c == http.StatusNotFound:
		return nil
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c >= 500:
		return fmt.Errorf("purge %s: %s", target, resp.Status)
	default:
		return fmt.Errorf("purge %s: %s: %w", target, resp.Status, ErrPurgeRefused)
	}
}

// retryHeap orders waiting retries by due time.
type retryHeap []purgeJob

func (h retryHeap) Len() int           { return len(h) }
func (h retryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h retryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *retryHeap) Push(x any)        { *h = append(*h, x.(purgeJob)) }
func (h *retryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
