package topologies

import (
	"context"
	"log/slog"
	"sync"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5"
)

// The probe's table lives in the cluster's "postgres" database, out of the
// application's schema; replicas stream the whole cluster, so they see it
// all the same. The primary assigns seq, so that two Samplers on one
// topology never go backwards: a replica that shows seq ≥ n has replayed
// the commit of n, since row locks order the updates and replay follows
// commit order.
const (
	probeCreate = `CREATE TABLE IF NOT EXISTS scalelab_visibility_probe (
	id int PRIMARY KEY, seq bigint NOT NULL, written_at timestamptz NOT NULL)`
	probeUpsert = `INSERT INTO scalelab_visibility_probe AS p (id, seq, written_at) VALUES (1, 1, now())
ON CONFLICT (id) DO UPDATE SET seq = p.seq + 1, written_at = now()
RETURNING seq`
	probeRead = `SELECT seq FROM scalelab_visibility_probe WHERE id = 1`
)

// Polling a replica that has not yet shown a probe: a healthy replica
// shows a write within about a millisecond, so for the first probeFast
// the reads are probeFastPoll apart; after that they back off in
// proportion to how long the probe has been waiting (at least a
// millisecond, at most probeMaxPoll), so a stuck replica costs little and
// a delay is still resolved to about 5%. Reading back to back instead
// would take CPU from the replica's own WAL replay on a 2-core machine
// and make the delays longer, not shorter.
const (
	probeFast     = 5 * time.Millisecond
	probeFastPoll = 200 * time.Microsecond
	probeMaxPoll  = 50 * time.Millisecond
)

// visibilityProbe measures the write-to-visible delay that clients of the
// replicas see: every interval one goroutine writes a new seq to the
// primary and notes when the commit was acknowledged; one goroutine per
// replica, on its own connection, reads the seq back until the replica
// shows it and records the delay since the acknowledgement.
//
// The load stays small, as it shares the cores with the system under
// test: one write in flight on the primary, at most one read in flight on
// each replica, and a replica that has shown the latest write is not read
// again until the next one. Replicas do not wait for one another: a
// paused or killed replica lets its probes time out (counted apart, and at
// the timeout in the percentiles) while the others go on being measured,
// and a lagging replica's probes queue up so that every write made while
// it was behind counts with its own delay, as a client's would.
type visibilityProbe struct {
	log      *slog.Logger
	primary  pgNode
	interval time.Duration
	timeout  time.Duration
	watchers []*visibilityWatcher
	wg       sync.WaitGroup

	// Owned by the writer goroutine; read after wg.Wait.
	writes, writeErrors int
	lastWriteErr        error
}

// probeWrite is one acknowledged probe write.
type probeWrite struct {
	seq int64
	ack time.Time
}

// visibilityWatcher polls one replica.
type visibilityWatcher struct {
	replica pgNode
	timeout time.Duration
	wake    chan struct{} // a new write is pending; buffered, never blocks the writer

	mu      sync.Mutex
	pending []probeWrite // oldest first

	// Owned by the watcher goroutine; read after wg.Wait.
	hist     *hdrhistogram.Histogram // delays in µs
	timeouts int
	// start is the probe's start; perSecond holds the delays (ms) of the
	// writes acknowledged in each second since then, for the series.
	start     time.Time
	perSecond map[int][]float64
}

// visibility is one replica's write-to-visible summary.
type visibility struct {
	p50, p99, max    float64 // ms
	probes, timeouts int
	series           []VisibleSecond
}

// startVisibilityProbe starts the writer and one watcher per replica; they
// run until ctx is cancelled, then wait returns.
func startVisibilityProbe(ctx context.Context, primary pgNode, replicas []pgNode, interval, timeout time.Duration, log *slog.Logger) *visibilityProbe {
	p := &visibilityProbe{log: log, primary: primary, interval: interval, timeout: timeout}
	start := time.Now()
	for _, r := range replicas {
		w := newVisibilityWatcher(r, timeout)
		w.start = start
		p.watchers = append(p.watchers, w)
	}
	p.wg.Add(1 + len(p.watchers))
	go p.write(ctx)
	for _, w := range p.watchers {
		go func() {
			defer p.wg.Done()
			w.run(ctx, p.interval, p.log)
		}()
	}
	return p
}

// wait waits for the goroutines to end (after ctx was cancelled).
func (p *visibilityProbe) wait() { p.wg.Wait() }

// result is the summary of the replica called name; ok is false when the
// probe did not watch it. Call it after wait.
func (p *visibilityProbe) result(name string) (v visibility, ok bool) {
	for _, w := range p.watchers {
		if w.replica.name != name {
			continue
		}
		h := w.hist
		ms := func(us int64) float64 { return float64(us) / 1000 }
		v = visibility{probes: int(h.TotalCount()), timeouts: w.timeouts, series: w.series()}
		if h.TotalCount() > 0 {
			v.p50, v.p99, v.max = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99)), ms(h.Max())
		}
		return v, true
	}
	return visibility{}, false
}

// write is the writer goroutine.
func (p *visibilityProbe) write(ctx context.Context) {
	defer p.wg.Done()
	var conn *pgx.Conn
	defer func() { closeConn(conn) }()
	created := false
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		err := func() error {
			// A stalled primary must not hold the writer forever.
			wctx, cancel := context.WithTimeout(ctx, p.timeout)
			defer cancel()
			if conn == nil {
				c, err := pgx.Connect(wctx, p.primary.url)
				if err != nil {
					return err
				}
				conn = c
			}
			if !created {
				if _, err := conn.Exec(wctx, probeCreate); err != nil {
					return err
				}
				created = true
			}
			var seq int64
			if err := conn.QueryRow(wctx, probeUpsert).Scan(&seq); err != nil {
				return err
			}
			w := probeWrite{seq: seq, ack: time.Now()}
			for _, wt := range p.watchers {
				wt.push(w)
			}
			return nil
		}()
		if ctx.Err() != nil {
			return
		}
		p.writes++
		if err != nil {
			p.writeErrors++
			p.lastWriteErr = err
			p.log.Debug("visibility probe: write", "err", err)
			if conn != nil && conn.IsClosed() {
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func newVisibilityWatcher(r pgNode, timeout time.Duration) *visibilityWatcher {
	return &visibilityWatcher{
		replica: r,
		timeout: timeout,
		wake:    make(chan struct{}, 1),
		// 1 µs to an hour, 3 significant digits.
		hist: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3),
	}
}

func (w *visibilityWatcher) push(pw probeWrite) {
	w.mu.Lock()
	w.pending = append(w.pending, pw)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// oldest counts the pending probes older than the timeout as timeouts and
// returns the oldest of the rest.
func (w *visibilityWatcher) oldest(now time.Time) (probeWrite, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := 0
	for i < len(w.pending) && now.Sub(w.pending[i].ack) >= w.timeout {
		w.record(w.pending[i], w.timeout)
		i++
	}
	w.pending = w.pending[i:]
	if len(w.pending) == 0 {
		return probeWrite{}, false
	}
	return w.pending[0], true
}

// seen records the delay of every pending probe up to seq, which a read
// that returned at t showed, and returns the oldest one left, if any.
func (w *visibilityWatcher) seen(seq int64, t time.Time) (probeWrite, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	i := 0
	for i < len(w.pending) && w.pending[i].seq <= seq {
		// A read that began before the acknowledgement may already show
		// the write: visible before the writer knew it, a delay of 0.
		w.record(w.pending[i], t.Sub(w.pending[i].ack))
		i++
	}
	w.pending = w.pending[i:]
	if len(w.pending) == 0 {
		return probeWrite{}, false
	}
	return w.pending[0], true
}

// flush records the probes still pending when the probe stops at their
// age so far: a lower bound, but dropping them would hide a replica that
// is stuck at the end of a run.
func (w *visibilityWatcher) flush(now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, pw := range w.pending {
		w.record(pw, now.Sub(pw.ack))
	}
	w.pending = nil
}

// record adds the delay of probe write pw; one of the timeout or more
// counts as a timeout, at the timeout. Call it with mu held.
func (w *visibilityWatcher) record(pw probeWrite, d time.Duration) {
	if d >= w.timeout {
		w.timeouts++
		d = w.timeout
	}
	d = max(d, 0)
	_ = w.hist.RecordValue(d.Microseconds()) // only values over an hour fail
	if sec := int(pw.ack.Sub(w.start) / time.Second); sec >= 0 {
		if w.perSecond == nil {
			w.perSecond = map[int][]float64{}
		}
		w.perSecond[sec] = append(w.perSecond[sec], float64(d.Microseconds())/1000)
	}
}

// run is the watcher goroutine: while a probe is pending it reads the
// replica's seq. A paused (SIGSTOP) replica holds a read until it resumes
// or the read's own timeout breaks the connection; the probes that waited
// longer than the timeout count as timeouts whenever they are resolved,
// so nothing hurries the read, and reconnecting at most once per timeout
// does not pile connections up in the paused server's listen queue.
func (w *visibilityWatcher) run(ctx context.Context, retry time.Duration, log *slog.Logger) {
	var conn *pgx.Conn
	defer func() {
		w.flush(time.Now())
		closeConn(conn)
	}()
	// Connect before the first probe, whose delay would otherwise include
	// the connection's start-up.
	cctx, cancel := context.WithTimeout(ctx, w.timeout)
	conn, _ = pgx.Connect(cctx, w.replica.url)
	cancel()
	for {
		if _, ok := w.oldest(time.Now()); !ok {
			select {
			case <-ctx.Done():
				return
			case <-w.wake:
				continue
			}
		}
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, w.timeout)
			c, err := pgx.Connect(cctx, w.replica.url)
			cancel()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Debug("visibility probe: connect", "replica", w.replica.name, "err", err)
				// A killed replica refuses at once: do not spin on it.
				if !sleepCtx(ctx, retry) {
					return
				}
				continue
			}
			conn = c
		}
		qctx, cancel := context.WithTimeout(ctx, w.timeout)
		var seq int64
		err := conn.QueryRow(qctx, probeRead).Scan(&seq)
		cancel()
		t := time.Now()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if conn.IsClosed() { // timed out or lost: connect afresh
				log.Debug("visibility probe: read", "replica", w.replica.name, "err", err)
				conn = nil
				continue
			}
			// No row or no table yet (the write has not arrived), or a
			// query cancelled by recovery: not visible yet.
			seq = 0
		}
		left, ok := w.seen(seq, t)
		if !ok {
			continue
		}
		age := t.Sub(left.ack)
		if age < probeFast {
			shortSleep(probeFastPoll)
			continue
		}
		if !sleepCtx(ctx, min(max(age/20, time.Millisecond), probeMaxPoll)) {
			return
		}
	}
}

// sleepCtx sleeps for d or until ctx is done, and reports whether ctx is
// still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// shortSleep sleeps for d, less than a millisecond, in the calling thread:
// a Go timer that short still takes a millisecond or more when the process
// is otherwise idle (the runtime waits in epoll with millisecond
// resolution), which would be most of a healthy replica's delay.
func shortSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	_ = syscall.Nanosleep(&ts, nil) // EINTR: a shorter sleep is fine
}

// closeConn closes c, if any, without waiting on a server that may be
// paused.
func closeConn(c *pgx.Conn) {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c.Close(ctx)
}
