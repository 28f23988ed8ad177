// Package httpapi is scalelab's HTTP API: routing, encoding, the user
// resource, health and metrics endpoints.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/auth"
	"scalelab/server/cache"
)

// Config is everything the handler depends on.
type Config struct {
	Store  server.Store
	Hasher *auth.Hasher
	// UserCache is the L1 tier; nil turns it off.
	UserCache *cache.L1[*UserEntry]
	Logger    *slog.Logger
	// Registry receives the HTTP metrics and serves /metrics.
	Registry *prometheus.Registry
	// Draining, when set, fails /readyz so load balancers stop sending
	// traffic before the server shuts down.
	Draining *atomic.Bool
}

// api holds the dependencies that handler makers close over.
type api struct {
	store  server.Store
	hasher *auth.Hasher
	l1     *cache.L1[*UserEntry]
	log    *slog.Logger

	jsonContentType []string // {"application/json"}, shared by responses
}

// NewHandler returns the server's whole HTTP surface.
func NewHandler(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Draining == nil {
		cfg.Draining = new(atomic.Bool)
	}
	a := &api{store: cfg.Store, hasher: cfg.Hasher, l1: cfg.UserCache, log: cfg.Logger,
		jsonContentType: []string{"application/json"}}
	m := newHTTPMetrics(cfg.Registry)
	return recoverPanics(cfg.Logger, routes(a, cfg, m))
}

// ready reports whether the server should receive traffic.
func ready(ctx context.Context, store server.Store, draining *atomic.Bool) (bool, string) {
	if draining.Load() {
		return false, "draining"
	}
	if err := store.Ping(ctx); err != nil {
		return false, "database unreachable: " + err.Error()
	}
	return true, "ok"
}
