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
	// A trailing slash names no resource: answer 404 problem+json rather
	// than a redirect that a JSON client may not follow.
	r.RedirectTrailingSlash = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(handleNotFound)
	r.MethodNotAllowed = http.HandlerFunc(handleMethodNotAllowed)
	r.PanicHandler = nil // recoverPanics wraps the router instead

	handle := func(method, path string, h httprouter.Handle) {
		r.Handle(method, path, m.instrument(method, path, h))
	}

	// Unversioned API (phases 1–2, no auth).
	if !cfg.NoUnversioned {
		handle(http.MethodPost, "/api/users", a.handleCreateUser())
		handle(http.MethodGet, "/api/users/:id", a.handleGetUser())
		handle(http.MethodHead, "/api/users/:id", a.handleGetUser())
		handle(http.MethodPut, "/api/users/:id", a.handleUpdateUser())
		handle(http.MethodDelete, "/api/users/:id", a.handleDeleteUser())
	}

	// Versioned API (phases 3–4): auth, rate limits, CDN-friendly caching.
	// Every GET also answers HEAD (RFC 9110 §9.1; net/http drops the body).
	v1 := func(method, path string, h httprouter.Handle) {
		handle(method, path, a.limit(h))
		if method == http.MethodGet {
			handle(http.MethodHead, path, a.limit(h))
		}
	}
	v1(http.MethodPost, "/api/v1/users", a.handleV1CreateUser())
	v1(http.MethodPost, "/api/v1/auth/token", a.handleToken())
	v1(http.MethodGet, "/api/v1/users/:id", a.handleV1GetUser())
	v1(http.MethodPut, "/api/v1/users/:id", a.handleV1UpdateUser())
	v1(http.MethodDelete, "/api/v1/users/:id", a.handleV1DeleteUser())
	v1(http.MethodPost, "/api/v1/users/:id/data", a.handleCreateRecord())
	v1(http.MethodGet, "/api/v1/users/:id/data", a.handleListRecords())
	v1(http.MethodGet, "/api/v1/users/:id/data/:record_id", a.handleGetRecord())
	v1(http.MethodPut, "/api/v1/users/:id/data/:record_id", a.handleUpdateRecord())
	v1(http.MethodDelete, "/api/v1/users/:id/data/:record_id", a.handleDeleteRecord())

	// Operations.
	handle(http.MethodGet, "/healthz", handleHealthz)
	handle(http.MethodGet, "/readyz", handleReadyz(cfg.Store, cfg.Draining))
	r.Handler(http.MethodGet, "/metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	return r
}
