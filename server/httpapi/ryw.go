package httpapi

import (
	"context"
	"time"

	"github.com/maypok86/otter/v2"

	"scalelab/server"
)

// Read-your-writes.
//
// With read replicas a user's read right after their own write could be
// served by a replica that has not replayed the write yet, or by another
// instance's L1 that has not yet heard the write's invalidation. So every
// write a user makes records the primary's WAL position after its commit
// (server.PositionRecorder), and that position is kept for a few seconds
// as a marker: in Redis, shared by every instance, and in this instance's
// memory. While a marker is live, the user's own reads skip L1 and ask the
// store for data at least as new as the position (server.WithMinPosition):
// a replica that has replayed it, else the primary. L2 needs no such care:
// writes invalidate it before they are acknowledged, and its fills refuse
// versions older than the last invalidation.
//
// When Redis cannot answer, an instance cannot know whether another one
// took a write, so the user's own reads go to the primary, past L1 and L2.
// They keep doing so for markerTTL after Redis is back: markers of writes
// made during the outage never reached it (a restarted Redis is empty), and
// until every invalidation has been re-sent L1 and L2 may hold what those
// writes replaced. Anonymous reads (and other users' views) may be up to a
// replica's lag (bounded by the router) or an invalidation's flight behind;
// while the invalidation channel is down, up to Config.DegradedL1TTL
// behind (see userEntry; docs/consistency.md states the bounds).

// markerTTL is how long a write's position steers its user's reads: far
// longer than the replica lag the router tolerates and than an
// invalidation takes to reach every instance.
const markerTTL = 10 * time.Second

func newPositionMarkers() (*otter.Cache[string, server.Position], error) {
	return otter.New(&otter.Options[string, server.Position]{
		MaximumSize:      100_000,
		ExpiryCalculator: otter.ExpiryWriting[string, server.Position](markerTTL),
	})
}

// noteWrite records that user uid's write reached position p.
func (a *api) noteWrite(ctx context.Context, uid string, p server.Position) {
	if p == 0 || p == server.PositionUnknown {
		if p == server.PositionUnknown {
			// The write committed but its position is unknown: steer
			// this instance's reads to the primary for a while.
			a.markers.Set(uid, p)
		}
		return
	}
	if old, ok := a.markers.GetIfPresent(uid); !ok || old < p {
		a.markers.Set(uid, p)
	}
	if a.l2 != nil && p != server.PositionUnknown {
		if err := a.l2.Remember(ctx, "ryw:"+uid, p.String(), markerTTL); err != nil {
			a.log.DebugContext(ctx, "read-your-writes marker not shared", "user", uid, "err", err)
		}
	}
}

// ownReadContext returns the context for user uid's read of their own data
// and whether the read must bypass L1 because a recent write may be newer
// than what L1 or a replica holds.
func (a *api) ownReadContext(ctx context.Context, uid string) (context.Context, bool) {
	p, _ := a.markers.GetIfPresent(uid)
	if a.l2 != nil {
		if time.Since(a.l2.LastTrouble()) < markerTTL {
			return server.WithPrimary(ctx), true
		}
		s, ok, err := a.l2.Recall(ctx, "ryw:"+uid)
		switch {
		case err != nil:
			return server.WithPrimary(ctx), true
		case ok:
			if shared, perr := server.ParsePosition(s); perr == nil && shared > p {
				p = shared
			}
		}
	}
	switch {
	case p == server.PositionUnknown:
		return server.WithPrimary(ctx), true
	case p > 0:
		return server.WithMinPosition(ctx, p), true
	}
	return ctx, false
}

// withRecorder returns a context whose store writes record their position.
func withRecorder(ctx context.Context) (context.Context, *server.PositionRecorder) {
	return server.WithPositionRecorder(ctx)
}
