package httpapi

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes lists the whole API surface.
func routes(a *api, cfg Config, m *httpMetrics) http.Handler {
	r := httprouter.New()
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(handleNotFound)
	r.MethodNotAllowed = http.HandlerFunc(handleMethodNotAllowed)
	r.PanicHandler = nil // recoverPanics wraps the router instead

	handle := func(method, path string, h httprouter.Handle) {
		r.Handle(method, path, m.instrument(method, path, h))
	}

	// Unversioned API (phases 1–2, no auth).
	handle(http.MethodPost, "/api/users", a.handleCreateUser())
	handle(http.MethodGet, "/api/users/:id", a.handleGetUser())
	handle(http.MethodPut, "/api/users/:id", a.handleUpdateUser())
	handle(http.MethodDelete, "/api/users/:id", a.handleDeleteUser())

	// Operations.
	handle(http.MethodGet, "/healthz", handleHealthz)
	handle(http.MethodGet, "/readyz", handleReadyz(cfg.Store, cfg.Draining))
	r.Handler(http.MethodGet, "/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	return r
}
