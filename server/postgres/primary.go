package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

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

	down atomic.Bool
	// pos is the newest WAL position the primary is known to have
	// reached: the router's last probe, or a write's recorded position.
	pos   atomic.Uint64
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

// seen raises the primary's known position to p.
func (p *primaryPool) seen(pos server.Position) {
	for {
		old := p.pos.Load()
		if uint64(pos) <= old || p.pos.CompareAndSwap(old, uint64(pos)) {
			return
		}
	}
}

// known returns the newest position the primary is known to have reached
// (0 before any probe or write).
func (p *primaryPool) known() server.Position { return server.Position(p.pos.Load()) }

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

// Write deadlines.
//
// A write whose caller gave up must not commit later. That is what a
// paused primary did: a write sent just before the pause sat in the
// backend's socket buffer; the store cancelled it (the health flag, or the
// caller's deadline) and the client got 503; when the primary resumed, the
// backend read the statement, ran it and committed it, over writes acknowledged
// meanwhile. Closing the connection does not stop that (the backend reads
// the buffered statement before it sees the end of the stream), and a
// cancel request races with it.
//
// So every write carries a deadline that the database checks inside the
// write's own transaction, right before it commits
// (scalelab_write_deadline, migration 00100): past it, the transaction
// rolls back. And a write that ended without an answer (cancelled, or the
// connection broke) is not reported as failed before its deadline (plus
// a margin for the clocks) has passed: until then it could still commit.
// The lab runs the database and the apps on one machine, one clock; a
// deployment over several needs its clocks within deadlineMargin.

// maxWriteTime bounds a write on the primary: it commits within this of
// its start, or not at all.
const maxWriteTime = 2 * time.Second

// deadlineMargin covers the difference between the app's clock and the
// database's.
const deadlineMargin = 50 * time.Millisecond

// deadlineCheck raises SQLSTATE SL408 after the deadline $1.
const deadlineCheck = `SELECT scalelab_write_deadline($1::timestamptz)`

// writeDeadline is when a write started now with ctx must have committed.
func writeDeadline(ctx context.Context) time.Time {
	d := time.Now().Add(maxWriteTime)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		d = cd
	}
	return d
}

// errWriteTimedOut is what a write that hit its deadline gets: nothing was
// applied.
func errWriteTimedOut() error {
	return server.Errorf(server.EUNAVAILABLE, "the write did not complete in time and was not applied; retry it")
}

// writeFailed turns the error of a write with deadline d into the
// caller's, once the write can no longer commit.
func (p *primaryPool) writeFailed(ctx context.Context, err error, d time.Time) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if pe.Code == "SL408" {
			return errors.Join(errWriteTimedOut(), err)
		}
		return p.failed(ctx, err) // an answer: the transaction rolled back
	}
	if server.ErrorCode(err) != server.EINTERNAL || !primaryConnectionFailure(err) &&
		!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return err // a domain error, or one of the client's own (a scan): an answer
	}
	// No answer: the write may still be in the server's buffers. It cannot
	// commit after d.
	if wait := time.Until(d.Add(deadlineMargin)); wait > 0 {
		time.Sleep(wait)
	}
	return errors.Join(errWriteTimedOut(), p.failed(ctx, err))
}

// writeRow runs sql, one write statement with a RETURNING clause, on the
// primary in one implicit transaction with its deadline check; scan reads
// the returned row (pgx.ErrNoRows when none).
func (p *primaryPool) writeRow(ctx context.Context, scan func(pgx.Row) error, sql string, args ...any) error {
	return p.writeBatch(ctx, sql, args, func(br pgx.BatchResults) error { return scan(br.QueryRow()) })
}

// writeExec runs sql, one write statement, on the primary in one implicit
// transaction with its deadline check.
func (p *primaryPool) writeExec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := p.writeBatch(ctx, sql, args, func(br pgx.BatchResults) (err error) {
		tag, err = br.Exec()
		return err
	})
	return tag, err
}

// writeBatch sends sql and the deadline check in one pipeline with one
// Sync: one round trip, one implicit transaction that commits only if the
// check, run last, passes.
func (p *primaryPool) writeBatch(ctx context.Context, sql string, args []any, first func(pgx.BatchResults) error) error {
	d := writeDeadline(ctx)
	sctx, done, err := p.guard(ctx)
	if err != nil {
		return err
	}
	defer done()
	sctx, cancel := context.WithDeadline(sctx, d)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(sql, args...)
	b.Queue(deadlineCheck, d)
	br := p.Pool.SendBatch(sctx, b)
	ferr := first(br)
	if ferr != nil && !errors.Is(ferr, pgx.ErrNoRows) {
		br.Close()
		return p.writeFailed(ctx, ferr, d)
	}
	if _, err := br.Exec(); err != nil {
		br.Close()
		return p.writeFailed(ctx, err, d)
	}
	if err := br.Close(); err != nil {
		return p.writeFailed(ctx, err, d)
	}
	return ferr
}

// writes is what write transactions begin on (pgx.BeginFunc(ctx,
// db.primary.writes(), …)): transactions with a deadline.
func (p *primaryPool) writes() writeTxs { return writeTxs{p} }

type writeTxs struct{ p *primaryPool }

// Begin starts a transaction on the primary that commits only before its
// deadline (see deadlineTx). It fails at once while the primary is taken
// for down, and its statements are cancelled when the flag is set.
func (w writeTxs) Begin(ctx context.Context) (pgx.Tx, error) {
	p := w.p
	d := writeDeadline(ctx)
	sctx, done, err := p.guard(ctx)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithDeadline(sctx, d)
	end := func() { cancel(); done() }
	tx, err := p.Pool.Begin(sctx)
	if err != nil {
		end()
		return nil, p.writeFailed(ctx, err, d)
	}
	return &deadlineTx{Tx: tx, p: p, ctx: sctx, deadline: d, end: end}, nil
}

// deadlineTx is a transaction on the primary whose statements run under
// its deadline and the health flag, and whose COMMIT is sent together with
// the deadline check in one message: the check and the commit run back to
// back in the server, with no round trip between them in which a pause
// could leave the COMMIT waiting in a buffer.
type deadlineTx struct {
	pgx.Tx
	p        *primaryPool
	ctx      context.Context // ended by the deadline or the health flag
	deadline time.Time
	end      func()
}

// bind returns a context ended by ctx, the deadline or the health flag.
func (t *deadlineTx) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(t.ctx, cancel)
	return c, func() { stop(); cancel() }
}

func (t *deadlineTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c, cancel := t.bind(ctx)
	defer cancel()
	return t.Tx.Exec(c, sql, args...)
}

func (t *deadlineTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	// Rows outlive the call: bound by the transaction's own context.
	return t.Tx.Query(t.ctx, sql, args...)
}

func (t *deadlineTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return t.Tx.QueryRow(t.ctx, sql, args...)
}

// Commit sends the deadline check and COMMIT in one simple-protocol
// message: if the check raises, COMMIT is not run and the transaction
// rolls back. The message ends with BEGIN, an empty transaction that pgx's
// own Commit then closes, so that pgx's bookkeeping of the transaction
// (and the pool's release of its connection) stays its own.
func (t *deadlineTx) Commit(ctx context.Context) error {
	defer t.end()
	c, cancel := t.bind(ctx)
	defer cancel()
	sql := fmt.Sprintf(`SELECT scalelab_write_deadline('%s'::timestamptz); COMMIT; BEGIN`, t.deadline.UTC().Format(time.RFC3339Nano))
	if _, err := t.Tx.Conn().PgConn().Exec(c, sql).ReadAll(); err != nil {
		t.Tx.Rollback(context.WithoutCancel(ctx))
		return t.p.writeFailed(ctx, err, t.deadline)
	}
	if err := t.Tx.Commit(context.WithoutCancel(ctx)); err != nil {
		// The write committed; only closing the empty transaction failed.
		t.p.log.Warn("write committed, but closing the transaction after it failed", "err", err)
	}
	return nil
}

func (t *deadlineTx) Rollback(ctx context.Context) error {
	defer t.end()
	return t.Tx.Rollback(ctx)
}
