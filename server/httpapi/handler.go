// Package httpapi is scalelab's HTTP API: routing, encoding, the user
// resource, health and metrics endpoints.
package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/admit"
	"scalelab/server/auth"
	"scalelab/server/cache"
	"scalelab/server/jobs"
	"scalelab/server/ratelimit"
)

// Config is everything the handler depends on.
type Config struct {
	Store  server.Store
	Hasher *auth.Hasher
	// UserCache is the L1 tier; nil turns it off.
	UserCache *cache.L1[*UserEntry]
	Logger    *slog.Logger
	// Registry receives the HTTP metrics; the server serves it on a
	// listener of its own, never on the API port.
	Registry *prometheus.Registry
	// Draining, when set, fails /readyz so load balancers stop sending
	// traffic before the server shuts down.
	Draining *atomic.Bool

	// Tokens issues and verifies /api/v1 access tokens; nil leaves the
	// token endpoint answering 503 and every token invalid.
	Tokens *auth.Issuer
	// Limiter limits /api/v1 requests and failed logins; nil is no limit.
	Limiter *ratelimit.Limiter
	// L2 is the Redis tier behind L1; nil turns it off. Writes invalidate
	// it, and through it the L1 of every instance.
	L2 *cache.L2
	// DegradedL1TTL bounds the age of the L1 entries served while L2's
	// invalidation channel is down (see api.userEntry); default 1s.
	DegradedL1TTL time.Duration
	// Purger sends PURGE for a user's public URL to the CDN tier after a
	// write; nil when there is no CDN.
	Purger *cache.Purger
	// API is the one API surface served: APIv1 (the default) or APIUsers,
	// the unauthenticated API of phases 1–2. Never both: the unversioned
	// routes would bypass /api/v1's auth.
	API string
	// Gate, when set, bounds the API requests worked on at once and sheds
	// the excess with 503 (see package admit). Health checks are never
	// shed.
	Gate *admit.Gate
	// Queue takes heavy work (exports) to `scalelab worker`; nil (SQLite)
	// answers those routes 501.
	Queue *jobs.Queue
	// TrustedProxies are the peers whose X-Forwarded-For is believed when
	// finding a client's address for rate limits.
	TrustedProxies []netip.Prefix
}

// The API surfaces a handler can serve.
const (
	APIv1    = "v1"
	APIUsers = "users"
)

// api holds the dependencies that handler makers close over.
type api struct {
	store   server.Store
	hasher  *auth.Hasher
	l1      *cache.L1[*UserEntry]
	log     *slog.Logger
	tokens  *auth.Issuer
	limiter *ratelimit.Limiter
	trusted []netip.Prefix
	l2      *cache.L2
	purger  *cache.Purger
	gate    *admit.Gate
	// degradedL1TTL: see Config.DegradedL1TTL.
	degradedL1TTL time.Duration
	// markers holds this instance's read-your-writes positions by user.
	markers *otter.Cache[string, server.Position]
	// dummyHash is verified for unknown logins, so that they take as long
	// as wrong passwords.
	dummyHash string

	jsonContentType []string // {"application/json"}, shared by responses
	// comp compresses /api/v1 responses (see compress.go).
	comp *compressor
	// queue: see Config.Queue.
	queue *jobs.Queue
}

// NewHandler returns the server's whole HTTP surface.
func NewHandler(cfg Config) (http.Handler, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	switch cfg.API {
	case "":
		cfg.API = APIv1
	case APIv1, APIUsers:
	default:
		return nil, fmt.Errorf("api %q: want %q or %q", cfg.API, APIv1, APIUsers)
	}
	if cfg.Draining == nil {
		cfg.Draining = new(atomic.Bool)
	}
	if cfg.DegradedL1TTL <= 0 {
		cfg.DegradedL1TTL = time.Second
	}
	a := &api{store: cfg.Store, hasher: cfg.Hasher, l1: cfg.UserCache, log: cfg.Logger,
		tokens: cfg.Tokens, limiter: cfg.Limiter, trusted: cfg.TrustedProxies,
		l2: cfg.L2, purger: cfg.Purger, gate: cfg.Gate, degradedL1TTL: cfg.DegradedL1TTL,
		jsonContentType: []string{"application/json"}, comp: newCompressor(), queue: cfg.Queue}
	dummy, err := auth.Hash("not a password anyone has: "+server.SeedPassword, cfg.Hasher.Params())
	if err != nil {
		return nil, fmt.Errorf("hash the dummy password: %w", err)
	}
	a.dummyHash = dummy
	if a.markers, err = newPositionMarkers(); err != nil {
		return nil, fmt.Errorf("position markers: %w", err)
	}
	m := newHTTPMetrics(cfg.Registry)
	return secureHeaders(recoverPanics(cfg.Logger, routes(a, cfg, m))), nil
}

// ready reports whether the server should receive traffic, and if not
// why: "draining", or the name of the dependency that is down. The
// dependency's error text goes to the log, never to the client: it can
// name hosts, users and versions.
func ready(ctx context.Context, log *slog.Logger, store server.Store, draining *atomic.Bool) (bool, string) {
	if draining.Load() {
		return false, "draining"
	}
	if err := store.Ping(ctx); err != nil {
		log.WarnContext(ctx, "not ready: the database does not answer", "err", err)
		return false, "database unreachable"
	}
	return true, "ok"
}
