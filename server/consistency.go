package server

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
)

// Position is a point in the primary database's history: a PostgreSQL WAL
// location (LSN), 0 meaning none. It is how read-your-writes works across
// app instances (phase 3):
//
//  1. a write reports the position at or after its commit
//     (WithPositionRecorder, then PositionRecorder.Position);
//  2. the client carries that position to its next reads, through whatever
//     instance serves them (the HTTP layer decides how: a response header
//     the client sends back, or a per-user marker in Redis);
//  3. a read given the position (WithMinPosition) is served only by a
//     replica that has replayed at least that far, and by the primary
//     otherwise.
//
// Why a position and not the alternatives:
//   - Time-based stickiness ("read the primary for 5 s after a write") needs
//     per-client state that every instance shares, guesses a bound that a
//     replica lagging longer breaks, and sends reads to the primary long
//     after the replicas caught up.
//   - Version checks (compare a row's version with one the client saw) work
//     per row, not for "my write must be visible in every list I read next";
//     the cache tiers use versions against stale sets, a different problem.
//   - A position is a single number the client carries: no shared state
//     between instances, exact (a replica whose replay position is at or
//     past it has replayed the commit), and replicas serve the read as soon
//     as they catch up. It costs one cheap query after each write.
//
// Stores with one database (SQLite) ignore positions: every read sees every
// committed write.
type Position uint64

// PositionUnknown compares above every real position, so a read that must
// see it always goes to the primary. A store reports it when a write
// committed but its position could not be read (the primary stopped
// answering right after the commit). Callers that keep the largest position
// a client has seen keep this one too, until they reset it: hold it no
// longer than the write's own follow-up reads.
const PositionUnknown = Position(math.MaxUint64)

// String returns the position in PostgreSQL's LSN text form, "16/B374D848"
// (upper 32 bits, slash, lower 32 bits, both hexadecimal); "0/0" for none.
func (p Position) String() string {
	return fmt.Sprintf("%X/%X", uint64(p)>>32, uint64(p)&0xFFFFFFFF)
}

// ParsePosition parses the LSN text form that Position.String writes and
// PostgreSQL prints (hexadecimal in either case). An empty string is
// position 0.
func ParsePosition(s string) (Position, error) {
	if s == "" {
		return 0, nil
	}
	hi, lo, ok := strings.Cut(s, "/")
	if !ok || hi == "" || lo == "" || len(hi) > 8 || len(lo) > 8 {
		return 0, Errorf(EBADREQUEST, "invalid position %q: want an LSN such as 16/B374D848", s)
	}
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, Errorf(EBADREQUEST, "invalid position %q: want an LSN such as 16/B374D848", s)
	}
	return Position(h<<32 | l), nil
}

type ctxKey int

const (
	minPositionKey ctxKey = iota
	primaryKey
	recorderKey
)

// WithMinPosition returns a context whose reads must see everything up to
// p: a store serves them from a replica only once it has replayed p. A
// context that already carries a later position keeps it.
func WithMinPosition(ctx context.Context, p Position) context.Context {
	if p == 0 || p <= MinPosition(ctx) {
		return ctx
	}
	return context.WithValue(ctx, minPositionKey, p)
}

// MinPosition returns the position ctx's reads must see, 0 for none.
func MinPosition(ctx context.Context) Position {
	p, _ := ctx.Value(minPositionKey).(Position)
	return p
}

// WithPrimary returns a context whose reads go to the primary, whatever the
// replicas' state: for a caller that found a replica's answer older than it
// needs (a version behind a cache's invalidation marker, say).
func WithPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, primaryKey, true)
}

// WithoutPrimary undoes WithPrimary: for a store whose primary is out,
// which serves the read from a replica that has caught up with it.
func WithoutPrimary(ctx context.Context) context.Context {
	return context.WithValue(ctx, primaryKey, false)
}

// UsePrimary reports whether ctx's reads must go to the primary
// (WithPrimary).
func UsePrimary(ctx context.Context) bool {
	v, _ := ctx.Value(primaryKey).(bool)
	return v
}

// PositionRecorder receives the positions of the writes made with its
// context: the largest one wins, so one recorder may serve several writes,
// concurrent ones included. Its methods are safe for concurrent use.
type PositionRecorder struct {
	p      atomic.Uint64
	parent *PositionRecorder // the recorder of the context this one was made from
}

// WithPositionRecorder returns a context whose writes report their
// positions to the returned recorder (and to any recorder ctx already
// carries). Read it with Position after the store call returns.
func WithPositionRecorder(ctx context.Context) (context.Context, *PositionRecorder) {
	r := &PositionRecorder{parent: recorder(ctx)}
	return context.WithValue(ctx, recorderKey, r), r
}

// Position returns the largest position recorded so far, 0 for none (no
// write, or a store without positions).
func (r *PositionRecorder) Position() Position { return Position(r.p.Load()) }

// RecordPosition is for stores: it reports that a write made with ctx
// committed at or before p. It does nothing when ctx has no recorder.
func RecordPosition(ctx context.Context, p Position) {
	for r := recorder(ctx); r != nil; r = r.parent {
		for {
			old := r.p.Load()
			if uint64(p) <= old || r.p.CompareAndSwap(old, uint64(p)) {
				break
			}
		}
	}
}

// WantsPosition reports whether a write made with ctx should report its
// position (ctx carries a recorder), so a store can skip the query that
// reads it when nobody asks.
func WantsPosition(ctx context.Context) bool { return recorder(ctx) != nil }

func recorder(ctx context.Context) *PositionRecorder {
	r, _ := ctx.Value(recorderKey).(*PositionRecorder)
	return r
}
