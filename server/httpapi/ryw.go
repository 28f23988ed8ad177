package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/maypok86/otter/v2"

	"scalelab/server"
)

// Read-your-writes.
//
// With read replicas a user's read right after their own write could be
// served by a replica that has not replayed the write yet, or by another
// instance's L1 that has not yet heard the write's invalidation. So every
// write a user makes records the primary's WAL position after its commit
// (server.PositionRecorder). While a write is recent (markerTTL), the
// user's own reads skip L1 and ask the store for data at least as new as
// its position (server.WithMinPosition): a replica that has replayed it,
// else the primary. L2 needs no such care: writes invalidate it before they
// are acknowledged, and its fills refuse versions older than the last
// invalidation.
//
// How a read learns of the write, cheapest first:
//
//   - From the client: the write's response carries a write hint in the
//     X-Scalelab-Wrote header (a signed position and time, see
//     auth.Issuer.SealHint), and a client that sends the latest hint it got
//     back with its requests (or "none" before its first write) tells any
//     instance all it needs. Such a client's reads never ask Redis about
//     markers: the read-your-writes round trip is paid by clients that
//     wrote in the last markerTTL, and by them only in the hint's bytes.
//     This is the session guarantee of Terry et al. (1994), the one
//     Cosmos DB's session tokens and MongoDB's causal sessions give: the
//     writes this client made; another client of the same user (a second
//     device) sees them within the bound that holds for anyone.
//   - From this instance's memory (markers): the writes it took itself.
//   - From Redis: every write also leaves its position under ryw:<user>
//     for markerTTL, shared by every instance, for clients that send no
//     hint (or one this server did not issue): their own reads ask Redis,
//     as every own read once did, and see every write of the user through
//     any client.
//
// When Redis cannot answer, an instance cannot know whether another one
// took a write, so the user's own reads go to the primary, past L1 and L2.
// They keep doing so for markerTTL after Redis is back: markers of writes
// made during the outage never reached it (a restarted Redis is empty), and
// until every invalidation has been re-sent L1 and L2 may hold what those
// writes replaced. This holds for clients with hints too: a hint names the
// write, but not whether its invalidations reached the caches. Anonymous
// reads (and other users' views) may be up to a replica's lag (bounded by
// the router) or an invalidation's flight behind; while the invalidation
// channel is down, up to Config.DegradedL1TTL behind (see userEntry;
// docs/consistency.md states the bounds).

// wroteHeader carries write hints: set on the response of a write, sent
// back by the client on its next requests.
const wroteHeader = "X-Scalelab-Wrote"

// wroteNone is the hint of a client that keeps hints and has none yet.
const wroteNone = "none"

// maxHints is how many write hints one request may carry.
const maxHints = 8

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

// noteWrite records that user uid's write reached position p: in this
// instance's markers, in Redis, and in the write hint of the response
// when the request came through writeHints.
func (a *api) noteWrite(ctx context.Context, uid string, p server.Position) {
	if p == 0 {
		return // a store without positions: every read sees every write
	}
	if h, ok := ctx.Value(hintHeaderKey{}).(http.Header); ok && a.tokens != nil {
		h.Set(wroteHeader, a.tokens.SealHint(uid, p))
	}
	if p == server.PositionUnknown {
		// The write committed but its position is unknown: steer this
		// instance's reads (and those of clients that send the hint) to
		// the primary for a while.
		a.markers.Set(uid, p)
		return
	}
	if old, ok := a.markers.GetIfPresent(uid); !ok || old < p {
		a.markers.Set(uid, p)
	}
	if a.l2 != nil {
		if err := a.l2.Remember(ctx, "ryw:"+uid, p.String(), markerTTL); err != nil {
			a.log.DebugContext(ctx, "read-your-writes marker not shared", "user", uid, "err", err)
		}
	}
}

// hintHeaderKey keys the response header of a write request in its
// context, so that noteWrite can set the write hint wherever the write
// happens (grpc-go's SetHeader(ctx, md) works the same way).
type hintHeaderKey struct{}

// writeHints makes h's writes answer with a write hint (see noteWrite).
// Reads pass through untouched, at no cost.
func (a *api) writeHints(h httprouter.Handle) httprouter.Handle {
	if a.tokens == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h(w, r, ps)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), hintHeaderKey{}, w.Header())), ps)
	}
}

// readHints returns what the write hints in header h say about user uid's
// recent writes: the largest position among the hints of writes made in
// the last markerTTL (0 for none), and whether the client keeps hints at
// all. A client keeps them when it sends at least one hint, or "none", and
// nothing else: one hint that this server did not issue for uid (forged,
// of another user, under another secret) and the client's account cannot
// be trusted, so its reads fall back to the shared marker. Several hints,
// in one header or several, are allowed: a client whose writes overlap may
// send each one it holds, up to maxHints (more are not checked: each costs
// an HMAC).
func (a *api) readHints(h http.Header, uid string) (p server.Position, keeps bool) {
	vs := h[wroteHeader]
	if len(vs) == 0 || a.tokens == nil {
		return 0, false
	}
	now := time.Now()
	n := 0
	for _, v := range vs {
		for hint := range strings.SplitSeq(v, ",") {
			if n++; n > maxHints {
				return 0, false
			}
			hint = strings.TrimSpace(hint)
			if hint == wroteNone {
				keeps = true
				continue
			}
			hp, at, err := a.tokens.OpenHint(uid, hint)
			if err != nil {
				return 0, false
			}
			keeps = true
			if now.Sub(at) < markerTTL && hp > p {
				p = hp
			}
		}
	}
	return p, keeps
}

// ownReadContext returns the context for user uid's read of their own data,
// whose request carries header h, and whether the read must bypass L1
// because a recent write may be newer than what L1 or a replica holds. It
// asks Redis only when the client keeps no write hints (see readHints).
func (a *api) ownReadContext(ctx context.Context, h http.Header, uid string) (context.Context, bool) {
	p, _ := a.markers.GetIfPresent(uid)
	hinted, keeps := a.readHints(h, uid)
	p = max(p, hinted)
	if a.l2 != nil {
		if time.Since(a.l2.LastTrouble()) < markerTTL {
			// The primary, with what is known here of the reader's
			// writes: should the primary be out, a replica serves the
			// read only once it has passed them (DB.primaryOut).
			ctx, _ = positionContext(ctx, p)
			return server.WithPrimary(ctx), true
		}
		if keeps {
			return positionContext(ctx, p)
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
	return positionContext(ctx, p)
}

// positionContext returns the context of a read that must see position p
// (none for 0), and whether it must bypass L1.
//
// A write whose position is unknown (its commit's position could not be
// read: the primary stopped right after it) sends the read to the primary
// with the unknown position, which no replica ever passes: should the
// primary be out, the read fails rather than be served by a replica that
// has replayed what the primary was known to have reached, which the write
// may be newer than. Without the position, such a read answered the value
// from before the write in the primary-pause scenario.
func positionContext(ctx context.Context, p server.Position) (context.Context, bool) {
	switch {
	case p == server.PositionUnknown:
		return server.WithPrimary(server.WithMinPosition(ctx, p)), true
	case p > 0:
		return server.WithMinPosition(ctx, p), true
	}
	return ctx, false
}

// withRecorder returns a context whose store writes record their position.
func withRecorder(ctx context.Context) (context.Context, *server.PositionRecorder) {
	return server.WithPositionRecorder(ctx)
}
