package postgres

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"scalelab/server"
)

// primaryPool is the pool to the primary with a health flag, so that
// while the primary is unreachable (stopped, paused, partitioned) its
// callers fail at once with EUNAVAILABLE (503 and Retry-After) instead of
// each waiting out a hung connection, while reads keep going to replicas
// and caches.
//
// The flag is set by a statement that failed at the connection level and
// by the router's probes of the primary (two failed in a row); only the
// router's probe, which runs every check interval with a short timeout,
// clears it. Without replicas there is no router and the
// flag is never set: every read needs the primary then anyway.
//
// Setting the flag also cancels the statements in flight on the primary,
// which would otherwise hang until their callers give up: they fail with
// EUNAVAILABLE too. A write cancelled that way may or may not have been
// applied (as for any write whose answer was lost).
type primaryPool struct {
	*pgxpool.Pool
	log     *slog.Logger
	guarded bool // a prober clears the flag; see markDown

	down  atomic.Bool
	mu    sync.Mutex
	epoch context.Context // cancelled when the flag is set
	end   context.CancelFunc
}

func newPrimaryPool(pool *pgxpool.Pool, log *slog.Logger) *primaryPool {
	p := &primaryPool{Pool: pool, log: log}
	p.epoch, p.end = context.WithCancel(context.Background())
	return p
}

// errPrimaryDown is what callers get while the flag is set.
func errPrimaryDown() error {
	return server.Errorf(server.EUNAVAILABLE, "the primary database is unreachable; writes resume when it is back")
}

// Down reports whether the primary is taken for unreachable.
func (p *primaryPool) Down() bool { return p.down.Load() }

// markDown sets the flag and cancels the statements in flight.
func (p *primaryPool) markDown(err error) {
	if !p.guarded || p.down.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down.Swap(true) {
		return
	}
	p.log.Warn("primary unreachable: writes and primary reads fail fast until the router reaches it again", "err", err)
	p.end()
	p.epoch, p.end = context.WithCancel(context.Background())
}

// markUp clears the flag; the router calls it after a probe answered.
func (p *primaryPool) markUp() {
	if p.down.Load() && p.down.Swap(false) {
		p.log.Info("primary reachable again")
	}
}

// guard returns a context for one statement, ended with the caller's or
// when the flag is set, or errPrimaryDown.
func (p *primaryPool) guard(ctx context.Context) (context.Context, func(), error) {
	if p.down.Load() {
		return nil, nil, errPrimaryDown()
	}
	if !p.guarded {
		return ctx, func() {}, nil
	}
	p.mu.Lock()
	epoch := p.epoch
	p.mu.Unlock()
	sctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(epoch, cancel)
	return sctx, func() { stop(); cancel() }, nil
}

// failed turns a statement's error into EUNAVAILABLE when the primary is
// the cause (the flag was set meanwhile, or the connection failed), and
// sets the flag for the latter.
func (p *primaryPool) failed(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err // the caller gave up: says nothing about the primary
	}
	if p.down.Load() {
		return errors.Join(errPrimaryDown(), err)
	}
	if primaryConnectionFailure(err) && !isTimeout(err) {
		// A refused or broken connection says the primary is gone; a
		// timeout alone may be a busy machine, and the router's probes
		// (several failures over primaryDownAfter) decide that case.
		p.markDown(err)
		if p.guarded {
			return errors.Join(errPrimaryDown(), err)
		}
	}
	return err
}

// primaryConnectionFailure reports whether err says the primary is gone or
// not answering, rather than that one statement failed: a shutdown or
// connection PgError, a failed connect, a network error, or a timeout.
// Errors of pgx's own (no rows, a failed scan) and of the statement are
// not.
func primaryConnectionFailure(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return connectionFailure(err)
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.Timeout(err) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Exec runs sql on the primary.
func (p *primaryPool) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	sctx, done, err := p.guard(ctx)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	defer done()
	tag, err := p.Pool.Exec(sctx, sql, args...)
	return tag, p.failed(ctx, err)
}

// Query runs sql on the primary; the rows must be closed.
func (p *primaryPool) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	sctx, done, err := p.guard(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := p.Pool.Query(sctx, sql, args...)
	if err != nil {
		done()
		return nil, p.failed(ctx, err)
	}
	return &primaryRows{Rows: rows, p: p, ctx: ctx, done: done}, nil
}

// QueryRow runs sql on the primary; its error comes with Scan.
func (p *primaryPool) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	sctx, done, err := p.guard(ctx)
	if err != nil {
		return errRow{err}
	}
	return &primaryRow{row: p.Pool.QueryRow(sctx, sql, args...), p: p, ctx: ctx, done: done}
}

// Ping checks the primary. While the flag is set it fails at once. A
// failed or slow Ping does not set the flag: readiness checks come from
// every load balancer at their own rhythm, and one slow answer on a busy
// machine must not fail the writes in flight; the router's probes decide.
func (p *primaryPool) Ping(ctx context.Context) error {
	sctx, done, err := p.guard(ctx)
	if err != nil {
		return err
	}
	defer done()
	return p.Pool.Ping(sctx)
}

type primaryRow struct {
	row  pgx.Row
	p    *primaryPool
	ctx  context.Context
	done func()
}

func (r *primaryRow) Scan(dest ...any) error {
	defer r.done()
	return r.p.failed(r.ctx, r.row.Scan(dest...))
}

type primaryRows struct {
	pgx.Rows
	p    *primaryPool
	ctx  context.Context
	done func()
	once sync.Once
}

func (r *primaryRows) Close() {
	r.Rows.Close()
	r.once.Do(r.done)
}

func (r *primaryRows) Err() error { return r.p.failed(r.ctx, r.Rows.Err()) }

func (r *primaryRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.once.Do(r.done)
	return false
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// isTimeout reports whether err is a timeout rather than a refusal.
func isTimeout(err error) bool {
	var ne net.Error
	return pgconn.Timeout(err) || (errors.As(err, &ne) && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded)
}
