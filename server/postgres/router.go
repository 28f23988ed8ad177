package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
)

// Routing defaults; see Options.
const (
	DefaultMaxReplicaLag = time.Second
	// DefaultCheckInterval is 200 ms: a plain read may then see data up
	// to DefaultMaxReplicaLag plus 200 ms old. At 50 ms the probes were
	// most of what an idle phase 3 burnt (three instances, each probing
	// the primary and both replicas twenty times a second: about 35 ms
	// of CPU a second in all); reads after a write do not depend on it
	// (a replica sampled behind the write is asked again before it reads).
	DefaultCheckInterval = 200 * time.Millisecond
	defaultCheckTimeout  = 200 * time.Millisecond
	// replicaConnectTimeout bounds a new connection to a replica when its
	// URL sets no connect_timeout: a read must not wait long on a replica
	// host that vanished (it falls back to the primary instead).
	replicaConnectTimeout = 2 * time.Second
	// historySize primary positions are kept to turn a replica's replay
	// position into a time lag: at one entry per check interval in which
	// the primary wrote, 4096 cover more than 13 minutes of writes at 200 ms.
	historySize = 4096
)

// Reasons a read that could have gone to a replica went to the primary
// (the label of scalelab_db_replica_fallbacks_total).
const (
	fallbackForced    = "forced"        // server.WithPrimary
	fallbackUnhealthy = "unhealthy"     // no replica answers
	fallbackLag       = "lag"           // replicas answer, but all lag beyond the bounds
	fallbackPosition  = "position"      // none has replayed the read's server.MinPosition yet
	fallbackError     = "replica_error" // the replica failed the read; it ran again on the primary
	fallbackSlow      = "slow"          // the replica did not answer within HedgeAfter; the read was sent elsewhere too
	fallbackNotFound  = "not_found"     // a replica not known to be current answered "not found"; a current source was asked
)

var fallbackReasons = []string{fallbackForced, fallbackUnhealthy, fallbackLag, fallbackPosition, fallbackError, fallbackSlow, fallbackNotFound}

// replica is one read replica: its pool, the router's latest view of it and
// its metrics.
type replica struct {
	name    string
	pool    *pgxpool.Pool
	probe   *pgx.ConnConfig               // the router's own connection, apart from the pool
	state   atomic.Pointer[replicaState]  // never nil once Open returns
	queries prometheus.Counter            // reads it served
	checks  map[string]prometheus.Counter // position re-checks by result
	log     *slog.Logger
}

// replicaState is one immutable view of a replica; the router and the read
// path replace it whole.
type replicaState struct {
	healthy   bool
	replay    server.Position // last WAL position replayed
	paused    bool
	lag       time.Duration
	lagBytes  int64
	sampledAt time.Time
	err       error // why it is unhealthy
}

// ReplicaStatus is the router's latest view of one replica.
type ReplicaStatus struct {
	Name      string          // replica-1, replica-2, … in the order of Options.Replicas
	Healthy   bool            // its last probe answered, and no read failed on it since
	Usable    bool            // healthy and within the lag bounds: plain reads may go to it
	Replay    server.Position // the last WAL position it replayed
	Paused    bool            // its replay is paused (pg_wal_replay_pause)
	Lag       time.Duration   // how long ago the primary was at Replay; 0 when caught up
	LagBytes  int64           // how many bytes of WAL it is behind the primary
	SampledAt time.Time       // when the router last probed it (zero before the first probe)
	Err       error           // why it is not healthy
}

// Replicas returns the router's latest view of every replica, in the order
// of Options.Replicas.
func (db *DB) Replicas() []ReplicaStatus {
	out := make([]ReplicaStatus, len(db.replicas))
	for i, r := range db.replicas {
		st := r.state.Load()
		out[i] = ReplicaStatus{Name: r.name, Healthy: st.healthy, Usable: db.usable(st), Replay: st.replay,
			Paused: st.paused, Lag: st.lag, LagBytes: st.lagBytes, SampledAt: st.sampledAt, Err: st.err}
	}
	return out
}

// usable reports whether plain reads may go to a replica in state st.
func (db *DB) usable(st *replicaState) bool {
	return st.healthy && st.lag <= db.maxLag && (db.maxLagBytes <= 0 || st.lagBytes <= db.maxLagBytes)
}

// querier is what a read runs its statements on: a pool, or one connection
// acquired from a pool.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// read runs fn, a read-only operation, where routing sends it:
//
//   - server.UsePrimary(ctx): the primary; while the primary is taken for
//     down, a replica that has replayed everything the primary is known to
//     have reached (below), else the primary, which fails at once;
//   - otherwise a usable replica (healthy, lag within MaxReplicaLag and
//     MaxReplicaLagBytes), round robin, whose last sampled replay position
//     is at least server.MinPosition(ctx);
//   - if usable replicas exist but none has sampled that far, the one that
//     has replayed the most is asked again (one cheap query on the
//     connection that then runs the read): the router's sample may be up to
//     a check interval old, and replicas are usually well under a
//     millisecond behind;
//   - otherwise the primary.
//
// A read that fails on a replica for any reason but its context runs again
// on the primary (reads are idempotent), so a replica that dies between two
// probes costs no failed requests; a connection-level failure also marks
// the replica unhealthy until the router's next probe. Every read to the
// primary that could have gone to a replica counts a fallback by reason.
func (db *DB) read(ctx context.Context, op string, fn func(q querier) error) error {
	start := time.Now()
	if len(db.replicas) > 0 {
		ctx = db.primaryOut(ctx)
		r, recheck, reason := db.route(ctx)
		if r != nil {
			var served bool
			var err error
			if recheck {
				served, err = db.readChecked(ctx, r, fn)
			} else {
				served, err = db.readOn(ctx, r, r.pool, db.current(r.state.Load()), fn)
			}
			if served {
				r.queries.Inc()
				db.replicaMetrics.Since(op, start)
				return err
			}
			switch {
			case server.ErrorCode(err) == server.ENOTFOUND:
				reason = fallbackNotFound
			case err != nil:
				reason = fallbackError
			default:
				reason = fallbackPosition
			}
		}
		db.fallbacks[reason].Inc()
	}
	err := fn(db.primary)
	db.primaryQueries.Inc()
	db.metrics.Since(op, start)
	return err
}

// primaryOut returns the context of a read that must go to the primary
// (server.UsePrimary) while the primary is taken for down: a read that
// must see everything the primary is known to have reached, its last probe
// or a write through this instance (primaryPool.known). A replica that has
// replayed that far serves it instead of the read failing with the
// primary. Its answer can only miss what the primary acknowledged to other
// instances after this one last reached it: the last check interval
// before a primary that stopped or paused, longer when only this
// instance's link to it was cut (then up to the replica's lag). Readers whose
// write hints could not be looked up (a Redis error sends their own reads
// to the primary) failed with 503 in the second after a primary resumed,
// until the router had reached it again. Other reads are unchanged.
func (db *DB) primaryOut(ctx context.Context) context.Context {
	if !server.UsePrimary(ctx) || !db.primary.Down() {
		return ctx
	}
	known := db.primary.known()
	if known == 0 {
		return ctx // nothing known to check a replica against
	}
	return server.WithMinPosition(server.WithoutPrimary(ctx), max(known, server.MinPosition(ctx)))
}

// route picks the replica for a read, or says why the primary must serve
// it. recheck means r's sample is behind the read's position and r must be
// asked again before it serves the read.
func (db *DB) route(ctx context.Context) (r *replica, recheck bool, reason string) {
	if server.UsePrimary(ctx) {
		return nil, false, fallbackForced
	}
	pos := server.MinPosition(ctx)
	n := uint64(len(db.replicas))
	first := db.next.Add(1)
	var best *replica
	var bestReplay server.Position
	healthy := false
	for i := range n {
		c := db.replicas[(first+i)%n]
		st := c.state.Load()
		healthy = healthy || st.healthy
		if !db.usable(st) {
			continue
		}
		if st.replay >= pos {
			return c, false, ""
		}
		if best == nil || st.replay > bestReplay {
			best, bestReplay = c, st.replay
		}
	}
	switch {
	case best != nil:
		return best, true, ""
	case healthy:
		return nil, false, fallbackLag
	default:
		return nil, false, fallbackUnhealthy
	}
}

// readOn runs fn on a replica's pool or connection. served is false when
// the read must run again on the primary (err then says why, for logs).
// current says whether the replica had replayed everything the primary is
// known to have written when the read began (see DB.current): only then
// is its "not found" an answer, and not a row it has yet to replay.
func (db *DB) readOn(ctx context.Context, r *replica, q querier, current bool, fn func(q querier) error) (served bool, err error) {
	err = fn(q)
	code := server.ErrorCode(err)
	if ctx.Err() != nil || err == nil || code == server.ENOTFOUND && current || code != server.EINTERNAL && code != server.ENOTFOUND {
		// An answer (a domain error is one), or the caller gave up: the
		// primary would not do better.
		return true, err
	}
	if code == server.EINTERNAL {
		r.failed(err)
	}
	return false, err
}

// readChecked asks replica r how far it has replayed, on the connection
// that then runs fn if r has passed the read's position. served is false
// when the primary must serve the read: r is behind, or failed (err).
//
// Checking first and reading after, in separate statements, is what makes
// this exact: the startup process marks a transaction committed before it
// advances the replay position past the commit record, and the read's
// snapshot is taken after the check returned, so it sees the commit.
func (db *DB) readChecked(ctx context.Context, r *replica, fn func(q querier) error) (served bool, err error) {
	pos := server.MinPosition(ctx)
	// fail ends the read with err: served (the caller gives up) when the
	// read's own context ended, else unserved, for the primary to retry.
	fail := func(err error) (bool, error) {
		if ctx.Err() != nil {
			return true, err
		}
		r.checks["error"].Inc()
		r.failed(err)
		return false, err
	}
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fail(err)
	}
	defer conn.Release()
	var text *string
	err = conn.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text`).Scan(&text)
	var replay server.Position
	if err == nil && text == nil {
		err = errors.New("pg_last_wal_replay_lsn() is null: not a replica")
	}
	if err == nil {
		replay, err = server.ParsePosition(*text)
	}
	if err != nil {
		return fail(err)
	}
	r.sawReplay(replay)
	if replay < pos {
		r.checks["behind"].Inc()
		return false, nil
	}
	r.checks["caught_up"].Inc()
	return db.readOn(ctx, r, conn, replay >= db.primary.known(), fn)
}

// sawReplay raises the replica's known replay position to p, learned by a
// read's re-check, so that following reads need not check again before the
// router's next probe. A probe that raced with it wins; it is newer or
// equal.
func (r *replica) sawReplay(p server.Position) {
	st := r.state.Load()
	if !st.healthy || p <= st.replay {
		return
	}
	ns := *st
	ns.replay = p
	r.state.CompareAndSwap(st, &ns)
}

// failed handles a read that failed on the replica. A connection-level
// failure (the server stopped, crashed or is unreachable) marks it
// unhealthy until the router's next probe succeeds, and drops its pooled
// connections, which are likely dead too. Other errors (a query cancelled
// by a recovery conflict, say) only send that one read to the primary.
func (r *replica) failed(err error) {
	if !connectionFailure(err) {
		r.log.Debug("read failed on replica, retrying on the primary", "replica", r.name, "err", err)
		return
	}
	st := r.state.Load()
	if !st.healthy {
		return
	}
	ns := *st
	ns.healthy, ns.err = false, err
	if r.state.CompareAndSwap(st, &ns) {
		r.log.Warn("replica failed a read: unhealthy until its next probe; reads go elsewhere", "replica", r.name, "err", err)
		r.pool.Reset()
	}
}

// connectionFailure reports whether err says the server is gone rather
// than that one statement failed.
func connectionFailure(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return true // no answer from the server at all
	}
	switch pe.Code[:2] {
	case "57", "08": // operator intervention (shutdown), connection exception
		return true
	}
	return false
}

// router probes every replica, and the primary's position, every check
// interval, and keeps each replica's state up to date. It owns its probe
// connections; stop it with Close.
type router struct {
	primary *pgx.ConnConfig
	// primaryHealth learns each probe's result: the probe is what clears
	// the primary's health flag.
	primaryHealth *primaryPool
	primaryFails  int       // consecutive failed probes of the primary; the router's goroutine only
	primarySeen   time.Time // when a probe last reached the primary
	primaryTried  time.Time // when the primary was last probed
	// attempt receives the result of the probe of a primary taken for
	// down that is in flight; nil when none is. The router's goroutine
	// only; attempts counts the probes' goroutines, which close waits for.
	attempt  chan primaryAttemptResult
	attempts sync.WaitGroup
	replicas []*replica
	interval time.Duration
	timeout  time.Duration
	usable   func(*replicaState) bool
	log      *slog.Logger
	history  lsnHistory

	stop context.CancelFunc
	done chan struct{}
}

// start runs the router until Close. The first round runs before start
// returns, so a DB leaves Open with every replica probed once.
func (rt *router) start() {
	ctx, stop := context.WithCancel(context.Background())
	rt.stop, rt.done = stop, make(chan struct{})
	primary := &probeConn{cfg: rt.primary}
	probes := make([]*probeConn, len(rt.replicas))
	for i, r := range rt.replicas {
		probes[i] = &probeConn{cfg: r.probe}
	}
	rt.round(ctx, primary, probes)
	go func() {
		defer close(rt.done)
		defer func() {
			rt.attempts.Wait() // ctx is cancelled: they end
			if rt.attempt != nil {
				if res := <-rt.attempt; res.conn != nil {
					res.conn.close()
				}
			}
			primary.close()
			for _, p := range probes {
				p.close()
			}
		}()
		t := time.NewTicker(rt.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				rt.round(ctx, primary, probes)
			}
		}
	}()
}

// close stops the router and waits for it.
func (rt *router) close() {
	rt.stop()
	<-rt.done
}

// round samples the primary's WAL position, then every replica at once.
// Sampling the primary first means a replica's position is compared with
// one the primary had before it: the lag is never overstated by the time a
// probe takes.
//
// The primary's position is its insert position, not pg_current_wal_lsn()
// (what it has written out): with synchronous_commit = off a commit is
// visible on the primary up to wal_writer_delay before it is written and
// can reach a replica, and a reader sees that as lag too.
func (rt *router) round(ctx context.Context, primary *probeConn, probes []*probeConn) {
	// Once the primary is taken for down, one patient probe at a time
	// (probeDownPrimary). Before that, a primary whose probes fail is
	// probed every primaryRetry with a longer timeout, until it has been
	// unanswered for primaryDownAfter.
	if rt.primaryHealth.Down() {
		rt.probeDownPrimary(ctx, primary)
		rt.probeReplicas(ctx, probes)
		return
	}
	failing := rt.primaryFails >= 2
	if failing && time.Since(rt.primaryTried) < primaryRetry {
		rt.probeReplicas(ctx, probes)
		return
	}
	rt.primaryTried = time.Now()
	timeout := rt.timeout
	if failing {
		timeout = max(timeout, primaryRetry)
	}
	lsn, err := primary.insertPosition(ctx, timeout)
	if err == nil {
		rt.primaryReached(primary, lsn)
	} else if ctx.Err() == nil {
		rt.primaryFailed(primary, err, timeout)
	}
	rt.probeReplicas(ctx, probes)
}

// primaryReached records a probe that reached the primary at lsn: it
// clears the health flag.
func (rt *router) primaryReached(primary *probeConn, lsn server.Position) {
	rt.history.add(lsn, time.Now())
	rt.primaryHealth.seen(lsn)
	if primary.failing {
		rt.log.Info("router reaches the primary again")
	}
	primary.failing = false
	rt.primaryFails = 0
	rt.primarySeen = time.Now()
	rt.primaryHealth.markUp()
}

// primaryFailed records a probe of the primary that failed with err,
// after the timeout it was given.
func (rt *router) primaryFailed(primary *probeConn, err error, timeout time.Duration) {
	// Several in a row over primaryDownAfter: a few probes slower
	// than their timeout on a busy machine must not fail the writes
	// in flight. A probe whose timeout fired long after it was due
	// says that this process, or the whole machine, stalled (seen on
	// the 2-core test box: stalls of seconds), not that the primary
	// is gone: it is no evidence either way.
	stalled := isTimeout(err) && time.Since(rt.primaryTried) > 2*timeout
	if stalled {
		rt.log.Debug("primary probe timed out late: this process stalled; not counted", "took", time.Since(rt.primaryTried), "timeout", timeout)
	} else if rt.primaryFails++; rt.primaryFails >= 3 && time.Since(rt.primarySeen) >= primaryDownAfter {
		rt.primaryHealth.markDown(err)
	}
	// Lags are then measured against the last position seen; reads
	// keep going to replicas, which serve them while the primary is out.
	if !primary.failing {
		rt.log.Warn("router cannot read the primary's WAL position", "err", err)
	}
	primary.failing = true
}

// A primary taken for down is probed patiently. A stopped primary (paused,
// or its machine stalled) still completes TCP handshakes: each connection
// attempt waits in its accept queue, and one that times out stays there
// after its client gave up. Dialling afresh every primaryRetry, as the
// router did, left two such attempts a second per instance, and on resuming
// the primary worked through the whole queue (at about 20 a second here)
// before it answered the probe at its end: writes failed for 3 to 4 s after
// a 5 s pause. Now one attempt at a time waits up to primaryPatience, and
// a primary that resumes answers it among the first.

// primaryPatience bounds one connection attempt to a primary taken for
// down.
const primaryPatience = 30 * time.Second

// primaryAttemptResult is what one probe of a primary taken for down,
// running in its own goroutine, found.
type primaryAttemptResult struct {
	conn *probeConn // connected, on success
	lsn  server.Position
	err  error
}

// probeDownPrimary starts an attempt when none is in flight (at most one
// every primaryRetry: a primary that refuses at once is not hammered), or
// collects the one that finished. It never waits.
func (rt *router) probeDownPrimary(ctx context.Context, primary *probeConn) {
	if rt.attempt != nil {
		select {
		case res := <-rt.attempt:
			rt.attempt = nil
			if res.err == nil {
				primary.close()
				primary.conn = res.conn.conn
				rt.primaryReached(primary, res.lsn)
			} else if ctx.Err() == nil {
				rt.primaryFailed(primary, res.err, primaryPatience)
			}
		default:
		}
		return
	}
	if time.Since(rt.primaryTried) < primaryRetry {
		return
	}
	rt.primaryTried = time.Now()
	primary.close()
	done := make(chan primaryAttemptResult, 1)
	rt.attempt = done
	rt.attempts.Go(func() {
		c := &probeConn{cfg: rt.primary}
		lsn, err := c.insertPosition(ctx, primaryPatience)
		if err != nil {
			c.close()
			done <- primaryAttemptResult{err: err}
			return
		}
		done <- primaryAttemptResult{conn: c, lsn: lsn}
	})
}

// insertPosition reads the primary's WAL insert position, as the end of
// the record before it.
func (p *probeConn) insertPosition(ctx context.Context, timeout time.Duration) (server.Position, error) {
	var text *string
	if err := p.queryRow(ctx, timeout, `SELECT pg_current_wal_insert_lsn()::text`, &text); err != nil {
		return 0, err
	}
	if text == nil {
		return 0, errors.New("pg_current_wal_insert_lsn() is null")
	}
	lsn, err := server.ParsePosition(*text)
	if err != nil {
		return 0, err
	}
	return recordEnd(lsn), nil
}

// primaryDownAfter is how long the primary must have gone unanswered
// before writes fail fast: long enough that a loaded machine's slow
// probes do not take it for gone, short enough that no write hangs for
// seconds while it is.
const primaryDownAfter = time.Second

// primaryRetry is how often a failing primary is probed at most.
const primaryRetry = 500 * time.Millisecond

// probeReplicas samples every replica at once.
func (rt *router) probeReplicas(ctx context.Context, probes []*probeConn) {
	var wg sync.WaitGroup
	for i, r := range rt.replicas {
		wg.Go(func() { rt.probe(ctx, r, probes[i]) })
	}
	wg.Wait()
}

// probe samples one replica and replaces its state.
func (rt *router) probe(ctx context.Context, r *replica, conn *probeConn) {
	var (
		inRecovery bool
		text       *string
		paused     bool
	)
	err := conn.queryRow(ctx, rt.timeout, `SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,
		CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END`, &inRecovery, &text, &paused)
	if ctx.Err() != nil {
		return // closing
	}
	now := time.Now()
	if err == nil && (!inRecovery || text == nil) {
		err = errors.New("not a replica: the server is not in recovery (promoted, or a primary's URL)")
	}
	var replay server.Position
	if err == nil {
		replay, err = server.ParsePosition(*text)
	}
	old := r.state.Load()
	ns := &replicaState{sampledAt: now}
	if err != nil {
		ns.err = fmt.Errorf("probe %s: %w", r.name, err)
		// Keep the last known position and lag for the metrics; the
		// replica is unusable anyway.
		ns.replay, ns.lag, ns.lagBytes, ns.paused = old.replay, old.lag, old.lagBytes, old.paused
	} else {
		ns.healthy, ns.replay, ns.paused = true, replay, paused
		// While the primary does not answer, it commits nothing (our
		// writes fail fast, and a paused or cut-off primary takes none):
		// a replica's lag is what it was when the primary was last seen,
		// not growing by the clock, so replicas keep serving reads.
		at := now
		if rt.primaryFails > 0 && !rt.primarySeen.IsZero() {
			at = rt.primarySeen
		}
		ns.lag, ns.lagBytes = rt.history.lag(replay, at)
	}
	r.state.Store(ns)
	rt.logChange(r, old, ns)
}

// logChange logs a replica becoming unhealthy or usable again, or going
// over or under the lag bounds, once per change.
func (rt *router) logChange(r *replica, old, ns *replicaState) {
	switch {
	case !ns.healthy && (old.healthy || old.sampledAt.IsZero()):
		rt.log.Warn("replica unhealthy: reads go elsewhere", "replica", r.name, "err", ns.err)
	case ns.healthy && !old.healthy:
		rt.log.Info("replica healthy", "replica", r.name, "replay", ns.replay, "lag", ns.lag)
	}
	if ns.healthy && old.healthy {
		was, is := rt.usable(old), rt.usable(ns)
		switch {
		case was && !is:
			rt.log.Warn("replica lags beyond the bound: plain reads go elsewhere", "replica", r.name,
				"lag", ns.lag.Round(time.Millisecond), "lag_bytes", ns.lagBytes, "paused", ns.paused)
		case !was && is:
			rt.log.Info("replica caught up", "replica", r.name, "lag", ns.lag.Round(time.Millisecond))
		}
	}
}

// probeConn is one connection of the router's, opened on first use and
// again after any failure, so that probes never wait behind reads for a
// pooled connection.
type probeConn struct {
	cfg     *pgx.ConnConfig
	conn    *pgx.Conn
	failing bool
}

func (p *probeConn) queryRow(ctx context.Context, timeout time.Duration, sql string, dest ...any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if p.conn == nil {
		c, err := pgx.ConnectConfig(ctx, p.cfg)
		if err != nil {
			return err
		}
		p.conn = c
	}
	if err := p.conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		p.close()
		return err
	}
	return nil
}

func (p *probeConn) close() {
	if p.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		p.conn.Close(ctx)
		p.conn = nil
	}
}

// walPageSize is PostgreSQL's WAL page size (XLOG_BLCKSZ), fixed when the
// server is compiled; 8 KiB in every distribution's build.
const walPageSize = 8192

// recordEnd turns an insert position into the end of the WAL before it.
// After a record that ends exactly at a page boundary, the insert position
// points past the next page's header, while a replica that replayed that
// record reports the boundary: without this, it would look a header behind
// for as long as the primary stays idle, lag by the clock, and a read with
// that position would never find it caught up.
//
// Only the 24-byte short header is undone. Offset 24 is always right after
// one (no record ends there: even a continued record's tail needs bytes of
// its own), but offset 40, after a segment's 40-byte long header, can also
// end a record's 16-byte tail on an ordinary page, so lowering it could
// pass a replica that lacks that tail. After a record that fills a whole
// segment exactly, reads with its position therefore go to the primary
// until the next WAL record, at most about 15 s later on an idle server
// (the background writer's standby snapshot): a cost, never a stale read.
func recordEnd(p server.Position) server.Position {
	if p%walPageSize == 24 {
		return p - 24
	}
	return p
}

// lsnHistory remembers when the primary was at which WAL position, to turn
// a replica's replay position into a time lag: "the primary was where this
// replica is now this long ago".
//
// That is the lag a reader feels, and it stays right when the primary is
// idle, unlike now() - pg_last_xact_replay_timestamp() on the replica,
// which grows while nothing is written (the last replayed transaction just
// gets older) and is therefore useless as a routing bound. The resolution
// is the check interval: between two samples the position is interpolated
// as if the primary wrote at a constant rate.
type lsnHistory struct {
	base  time.Time  // times are kept as offsets from base
	buf   []lsnEntry // a ring of the last len(buf) distinct positions
	start int
	n     int
}

type lsnEntry struct {
	lsn         server.Position
	first, last time.Duration // when the primary was first and last seen at lsn
}

func (h *lsnHistory) at(i int) *lsnEntry { return &h.buf[(h.start+i)%len(h.buf)] }

// add records that the primary was at lsn at time t.
func (h *lsnHistory) add(lsn server.Position, t time.Time) {
	if h.buf == nil {
		h.base, h.buf = t, make([]lsnEntry, historySize)
	}
	d := t.Sub(h.base)
	if h.n > 0 {
		if last := h.at(h.n - 1); lsn <= last.lsn {
			last.last = d
			return
		}
	}
	if h.n == len(h.buf) {
		h.start = (h.start + 1) % len(h.buf)
		h.n--
	}
	*h.at(h.n) = lsnEntry{lsn: lsn, first: d, last: d}
	h.n++
}

// lag returns how long before t the primary was at position replay, and
// how many bytes the primary's last known position is past it. A position
// older than the whole history gets a lower bound.
func (h *lsnHistory) lag(replay server.Position, t time.Time) (time.Duration, int64) {
	if h.n == 0 {
		return 0, 0
	}
	latest := h.at(h.n - 1)
	if replay >= latest.lsn {
		return 0, 0
	}
	// The first entry past replay; the one before it (if any) is at or
	// before replay.
	i := sort.Search(h.n, func(i int) bool { return h.at(i).lsn > replay })
	next := h.at(i)
	passed := next.first
	if i > 0 {
		prev := h.at(i - 1)
		frac := float64(replay-prev.lsn) / float64(next.lsn-prev.lsn)
		passed = prev.last + time.Duration(frac*float64(next.first-prev.last))
	}
	return max(t.Sub(h.base)-passed, 0), int64(latest.lsn - replay)
}
