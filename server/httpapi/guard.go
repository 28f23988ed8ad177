package httpapi

import (
	"fmt"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// Header values every response, or every personal one, carries. Prepared
// slices with canonical keys are assigned rather than Set on hot paths:
// Set allocates.
var (
	nosniffHeader = []string{"nosniff"}
	privateHeader = []string{cachePrivate}
)

// secureHeaders sets X-Content-Type-Options: nosniff on every response,
// before anything else runs, so that errors, 404s, 405s, health checks and
// panics carry it too: a browser must never sniff a JSON body (a user's
// profile name, a record's data) into HTML or script.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Content-Type-Options"] = nosniffHeader
		h.ServeHTTP(w, r)
	})
}

// admit passes h's requests through the admission gate: past the
// instance's in-flight limit and queue-time budget a request is answered
// 503 with Retry-After at once, instead of joining a queue that makes every
// request slow. Requests that are not GET or HEAD enter as writes, which
// may not take the slots kept for reads (admit.Options.ReadReserve).
func (a *api) admit(h httprouter.Handle) httprouter.Handle {
	if a.gate == nil {
		return h
	}
	retry := fmt.Sprint(int(a.gate.RetryAfter().Seconds()))
	shed := func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", retry)
		writeProblem(w, http.StatusServiceUnavailable, "the server is overloaded; retry after "+retry+"s", nil)
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			if !a.gate.Enter(r.Context()) {
				shed(w)
				return
			}
			defer a.gate.Leave()
		} else {
			if !a.gate.EnterWrite(r.Context()) {
				shed(w)
				return
			}
			defer a.gate.LeaveWrite()
		}
		h(w, r, ps)
	}
}
