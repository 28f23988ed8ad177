package postgres

import (
	"context"
	"time"

	"scalelab/server"
)

// defaultHedgeAfter is how long a replica may take to answer a read before
// the read is also sent elsewhere (Options.HedgeAfter). Replica reads take
// well under a millisecond; a busy two-core machine stretches the tail to
// tens of milliseconds, not to a tenth of a second.
const defaultHedgeAfter = 100 * time.Millisecond

// readHedged runs fn, a read-only operation, where routing sends it (see
// read), but does not wait long for a replica: if the replica has not
// answered within HedgeAfter (paused, partitioned, or stuck behind a lock),
// the same read is sent to another usable replica that has reached the
// read's position, or else to the primary, and the first answer wins.
//
// The attempts that lose are not cancelled: they finish, and their
// connections go back to their pools (see attemptDeadline). Cancelling one
// would close its connection (pgx's way with a cancelled query), and a
// replica that is only slow, because the machine is busy, would then pay
// for a new session (a fork, authentication, the catalog caches) for
// every read that gave up on it: more work for the server that is already
// behind, so more reads give up on it. Seen in phase 4: replicas spending
// 1–2 ms of CPU per request on new sessions where 0.2 ms does the reads.
//
// Not every result is an answer:
//
//   - a failure (the replica broke, or the primary is taken for down) lets
//     the attempts still in flight answer, and when none is, the read goes
//     to the next source: another usable replica, then the primary;
//   - "not found" (ENOTFOUND) from a replica that is not known to be
//     current (see current) may only mean that it has not replayed the
//     row's insert yet: the primary was paused before it shipped the WAL,
//     say, while the router's lag, frozen while the primary is out, still
//     calls the replica usable. It wins no race: the read waits for the
//     other attempt, or asks a current source, and if no current source
//     answers (the primary is down) the read fails with the primary's
//     error instead of answering "not found" for a row that may exist.
//
// Unlike read's, fn returns its result instead of setting variables it
// closes over: two attempts may run at once, and each must write only its
// own result. fn must run its statements under the ctx it is given.
func readHedged[T any](ctx context.Context, db *DB, op string, fn func(ctx context.Context, q querier) (T, error)) (T, error) {
	start := time.Now()
	var r *replica
	var reason string
	if len(db.replicas) > 0 {
		ctx = db.primaryOut(ctx)
		var recheck bool
		r, recheck, reason = db.route(ctx)
		if recheck {
			// Rare (the router's sample lags the read's position): the
			// plain path, which re-checks on the connection it reads on.
			var v T
			err := db.read(ctx, op, func(q querier) (err error) {
				v, err = fn(ctx, q)
				return err
			})
			return v, err
		}
	}
	if r == nil {
		if reason != "" {
			db.fallbacks[reason].Inc()
		}
		v, err := fn(ctx, db.primary)
		db.primaryQueries.Inc()
		db.metrics.Since(op, start)
		return v, err
	}

	h := &hedge[T]{db: db, ctx: ctx, fn: fn, tried: map[*replica]bool{}, results: make(chan attemptResult[T], len(db.replicas)+1),
		deadline: attemptDeadline(ctx)}
	h.launch(r)

	timer := time.NewTimer(db.hedgeAfter)
	defer timer.Stop()
	slowHedged := false
	var unsure, failed *attemptResult[T]
	for {
		select {
		case res := <-h.results:
			h.running--
			switch res.kind {
			case answered:
				db.count(op, start, res.replica)
				return res.v, res.err
			case notFoundBehind:
				unsure = &res
			default:
				failed = &res
			}
			if h.running > 0 {
				continue // another attempt may still answer
			}
			// Nothing in flight: the next source, a current one if what
			// is missing is an answer to "not found".
			next, ok := h.next(unsure != nil)
			if !ok {
				return h.giveUp(unsure, failed)
			}
			if unsure != nil && res.kind == notFoundBehind {
				db.fallbacks[fallbackNotFound].Inc()
			} else {
				db.fallbacks[fallbackError].Inc()
			}
			h.launch(next)
		case <-timer.C:
			if slowHedged || h.running == 0 {
				continue
			}
			slowHedged = true
			if next, ok := h.next(false); ok {
				db.fallbacks[fallbackSlow].Inc()
				h.launch(next)
			}
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
}

// outcome classifies one attempt's result.
type outcome int

const (
	answered       outcome = iota // a row, a domain error, or the caller gave up: the read's result
	notFoundBehind                // ENOTFOUND from a replica not known to be current
	attemptFailed                 // the source failed; another may answer
)

type attemptResult[T any] struct {
	v       T
	err     error
	kind    outcome
	replica *replica // nil: the primary
}

// hedge is one hedged read's attempts.
type hedge[T any] struct {
	db      *DB
	ctx     context.Context // the caller's
	fn      func(ctx context.Context, q querier) (T, error)
	results chan attemptResult[T] // buffered for every source: a loser never blocks
	running int
	tried   map[*replica]bool
	primary bool // the primary was tried
	// deadline ends every attempt (see attemptDeadline): each runs under
	// the caller's values but not its cancellation.
	deadline time.Time
}

// lingerAfterDeadline is how long a losing attempt may run past the
// caller's deadline before its context ends it (and pgx closes its
// connection): a replica that takes longer is hung, not busy.
const lingerAfterDeadline = time.Second

// noDeadlineBudget bounds the attempts of a read whose caller set no
// deadline.
const noDeadlineBudget = 30 * time.Second

// attemptDeadline is when the attempts of a read under ctx must end.
func attemptDeadline(ctx context.Context) time.Time {
	if d, ok := ctx.Deadline(); ok {
		return d.Add(lingerAfterDeadline)
	}
	return time.Now().Add(noDeadlineBudget)
}

// launch starts an attempt on replica on (nil: the primary).
func (h *hedge[T]) launch(on *replica) {
	if on == nil {
		h.primary = true
	} else {
		h.tried[on] = true
	}
	h.running++
	// Whether the replica is known to be current is decided before the
	// read: its snapshot is at least as new as the position sampled now.
	current := on == nil || h.db.current(on.state.Load())
	go func() {
		actx, cancel := context.WithDeadline(context.WithoutCancel(h.ctx), h.deadline)
		defer cancel()
		var q querier = h.db.primary
		if on != nil {
			q = on.pool
		}
		v, err := h.fn(actx, q)
		res := attemptResult[T]{v: v, err: err, replica: on, kind: classify(h.ctx, err, on, current)}
		if res.kind == attemptFailed && on != nil && actx.Err() == nil {
			on.failed(err)
		}
		h.results <- res
	}()
}

// classify says whether err, from an attempt on replica on (nil: the
// primary), is the read's answer.
func classify(ctx context.Context, err error, on *replica, current bool) outcome {
	switch code := server.ErrorCode(err); {
	case err == nil, ctx.Err() != nil:
		return answered
	case code == server.ENOTFOUND && !current:
		return notFoundBehind
	case code == server.EINTERNAL:
		return attemptFailed
	case code == server.EUNAVAILABLE && on == nil:
		// The primary is taken for down: a replica may still answer.
		return attemptFailed
	}
	return answered
}

// next picks the next source of a read after the sources tried so far: a
// usable replica that has replayed the read's position (and, with
// needCurrent, everything the primary is known to have written), else the
// primary; ok is false when none is left.
func (h *hedge[T]) next(needCurrent bool) (r *replica, ok bool) {
	db := h.db
	if !server.UsePrimary(h.ctx) {
		pos := server.MinPosition(h.ctx)
		for _, c := range db.replicas {
			if h.tried[c] {
				continue
			}
			st := c.state.Load()
			if db.usable(st) && st.replay >= pos && (!needCurrent || db.current(st)) {
				return c, true
			}
		}
	}
	if !h.primary {
		return nil, true
	}
	return nil, false
}

// giveUp is the result of a read that no source answered: the last
// failure (the primary down, say) rather than a "not found" that no
// current source confirmed.
func (h *hedge[T]) giveUp(unsure, failed *attemptResult[T]) (T, error) {
	if failed != nil {
		return failed.v, failed.err
	}
	return unsure.v, unsure.err
}

// current reports whether a replica in state st has replayed everything
// the primary is known to have written (its last probed position, and the
// positions of this instance's writes): its "not found" is then as good as
// the primary's.
func (db *DB) current(st *replicaState) bool {
	return st.healthy && st.replay >= db.primary.known()
}

// count records a read served by r (nil: the primary).
func (db *DB) count(op string, start time.Time, r *replica) {
	if r == nil {
		db.primaryQueries.Inc()
		db.metrics.Since(op, start)
		return
	}
	r.queries.Inc()
	db.replicaMetrics.Since(op, start)
}
