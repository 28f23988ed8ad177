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
// read's position, or else to the primary, and the first answer wins; the
// other attempt is cancelled. A replica that fails outright is handled as
// read does (the read runs again on the primary).
//
// Unlike read's, fn returns its result instead of setting variables it
// closes over: two attempts may run at once, and each must write only its
// own result. fn must run its statements under the ctx it is given.
func readHedged[T any](ctx context.Context, db *DB, op string, fn func(ctx context.Context, q querier) (T, error)) (T, error) {
	start := time.Now()
	var r *replica
	var reason string
	if len(db.replicas) > 0 {
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

	type result struct {
		v       T
		err     error
		served  bool // an answer (a domain error is one), not a failure
		replica *replica
	}
	results := make(chan result, 2) // buffered: the loser never blocks
	attempt := func(actx context.Context, on *replica) {
		var q querier = db.primary
		if on != nil {
			q = on.pool
		}
		v, err := fn(actx, q)
		served := err == nil || server.ErrorCode(err) != server.EINTERNAL || ctx.Err() != nil
		if !served && on != nil && actx.Err() == nil {
			on.failed(err)
		}
		results <- result{v: v, err: err, served: served, replica: on}
	}
	firstCtx, cancelFirst := context.WithCancel(ctx)
	defer cancelFirst()
	go attempt(firstCtx, r)

	timer := time.NewTimer(db.hedgeAfter)
	defer timer.Stop()
	hedgeCtx, cancelHedge := context.WithCancel(ctx)
	defer cancelHedge()
	running := 1
	var last result
	hedged := false
	for running > 0 {
		select {
		case res := <-results:
			running--
			if res.served {
				db.count(op, start, res.replica)
				return res.v, res.err
			}
			last = res
			if !hedged {
				// The replica failed before the budget ran out: on the
				// primary now, as read does.
				hedged = true
				timer.Stop()
				db.fallbacks[fallbackError].Inc()
				running++
				go attempt(hedgeCtx, nil)
			}
		case <-timer.C:
			if hedged {
				continue
			}
			hedged = true
			other := db.hedgeTarget(ctx, r)
			db.fallbacks[fallbackSlow].Inc()
			running++
			go attempt(hedgeCtx, other)
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
	return last.v, last.err
}

// hedgeTarget picks where a read that replica r is slow to answer goes
// too: another usable replica that has replayed the read's position, else
// the primary (nil).
func (db *DB) hedgeTarget(ctx context.Context, r *replica) *replica {
	if server.UsePrimary(ctx) {
		return nil
	}
	pos := server.MinPosition(ctx)
	for _, c := range db.replicas {
		if c == r {
			continue
		}
		if st := c.state.Load(); db.usable(st) && st.replay >= pos {
			return c
		}
	}
	return nil
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
