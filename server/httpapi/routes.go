package httpapi

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// routes lists the whole API surface. /metrics is not among them: it is
// served on a listener of its own (see server/app).
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
	// API routes pass the admission gate first: shedding is the cheapest
	// answer there is, so it comes before any other work.
	apiRoute := func(method, path string, h httprouter.Handle) {
		handle(method, path, a.admit(h))
	}

	switch cfg.API {
	case APIUsers:
		// Unversioned API (phases 1–2, no auth).
		apiRoute(http.MethodPost, "/api/users", a.idempotent(a.handleCreateUser()))
		apiRoute(http.MethodGet, "/api/users/:id", a.handleGetUser())
		apiRoute(http.MethodHead, "/api/users/:id", a.handleGetUser())
		apiRoute(http.MethodPut, "/api/users/:id", a.idempotent(a.handleUpdateUser()))
		apiRoute(http.MethodDelete, "/api/users/:id", a.idempotent(a.handleDeleteUser()))
	default:
		// Versioned API (phases 3–4): auth, rate limits, CDN-friendly
		// caching. Every GET also answers HEAD (RFC 9110 §9.1; net/http
		// drops the body).
		v1 := func(method, path string, h httprouter.Handle) {
			h = a.writeHints(h)
			if method != http.MethodGet && path != "/api/v1/auth/token" {
				// Writes: safe retries with Idempotency-Key (idempotency.go).
				h = a.idempotent(h)
			}
			h = a.comp.compress(path, h)
			apiRoute(method, path, a.limit(h))
			if method == http.MethodGet {
				apiRoute(http.MethodHead, path, a.limit(h))
			}
		}
		v1(http.MethodPost, "/api/v1/users", a.handleV1CreateUser())
		v1(http.MethodGet, "/api/v1/users", a.handleGetUsers())
		v1(http.MethodGet, "/api/v1/stats", a.handleStats())
		v1(http.MethodPost, "/api/v1/auth/token", a.handleToken())
		v1(http.MethodGet, "/api/v1/users/:id", a.handleV1GetUser())
		v1(http.MethodPut, "/api/v1/users/:id", a.handleV1UpdateUser())
		v1(http.MethodDelete, "/api/v1/users/:id", a.handleV1DeleteUser())
		v1(http.MethodPost, "/api/v1/users/:id/data", a.handleCreateRecord())
		v1(http.MethodGet, "/api/v1/users/:id/data", a.handleListRecords())
		v1(http.MethodGet, "/api/v1/users/:id/data/:record_id", a.handleGetRecord())
		v1(http.MethodPut, "/api/v1/users/:id/data/:record_id", a.handleUpdateRecord())
		v1(http.MethodDelete, "/api/v1/users/:id/data/:record_id", a.handleDeleteRecord())
		v1(http.MethodPost, "/api/v1/users/:id/exports", a.handleCreateExport())
		v1(http.MethodGet, "/api/v1/users/:id/exports/:job_id", a.handleGetExport())
		v1(http.MethodGet, "/api/v1/users/:id/exports/:job_id/file", a.handleGetExportFile())
		v1(http.MethodGet, "/api/v1/deletions/:ticket", a.handleGetDeletion())
	}

	// Operations: never shed, never rate limited.
	handle(http.MethodGet, "/healthz", handleHealthz)
	handle(http.MethodGet, "/readyz", handleReadyz(a.log, cfg.Store, cfg.Draining))
	if cfg.API == APIUsers {
		return r
	}
	return withBatchRoute(r, m.instrument(http.MethodPost, batchRoute, a.admit(a.limit(a.idempotent(a.writeHints(a.handleCreateRecords()))))))
}
