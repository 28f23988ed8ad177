package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"scalelab/server/ratelimit"
)

// limit applies the request budgets to a /api/v1 route. The budget is the
// token's subject when the request carries a valid token (checked here
// without touching the database, so a flood costs no queries), else the
// client's address. Every limited response carries the RateLimit-*
// headers; a refused one is a 429 with Retry-After.
func (a *api) limit(h httprouter.Handle) httprouter.Handle {
	if a.limiter == nil {
		return h
	}
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		req := ratelimit.Request{
			Addr: ratelimit.ClientIP(r, a.trusted),
			Read: r.Method == http.MethodGet || r.Method == http.MethodHead,
		}
		if len(r.Header["Authorization"]) > 0 {
			sub, err := a.tokenSubject(r)
			req.Subject = sub.UserID
			// The handler authenticates the same request: keep the
			// verdict rather than verify the signature twice.
			r = r.WithContext(context.WithValue(r.Context(), tokenCheckKey{}, tokenCheck{sub, err}))
		}
		d := a.limiter.AllowRequest(r.Context(), req)
		ratelimit.SetHeaders(w.Header(), d)
		if !d.Allowed {
			a.writeLimited(w, d)
			return
		}
		h(w, r, ps)
	}
}

// loginLimited reports whether token requests for login from r's address
// are refused for now, before any password is verified.
func (a *api) loginLimited(r *http.Request, login string) (ratelimit.Decision, bool) {
	if a.limiter == nil {
		return ratelimit.Decision{Allowed: true}, false
	}
	d := a.limiter.CheckLogin(r.Context(), strings.ToLower(login), ratelimit.ClientIP(r, a.trusted))
	return d, !d.Allowed
}

// loginFailed counts a failed token request.
func (a *api) loginFailed(r *http.Request, login string) {
	if a.limiter != nil {
		a.limiter.LoginFailed(r.Context(), strings.ToLower(login), ratelimit.ClientIP(r, a.trusted))
	}
}

// writeLimited writes a 429 for decision d.
func (a *api) writeLimited(w http.ResponseWriter, d ratelimit.Decision) {
	ratelimit.SetHeaders(w.Header(), d)
	if w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", fmt.Sprint(int(math.Max(1, math.Ceil(d.RetryAfter.Seconds())))))
	}
	writeProblem(w, http.StatusTooManyRequests,
		fmt.Sprintf("rate limit exceeded (%s budget); retry after %s", d.Kind, w.Header().Get("Retry-After")), nil)
}
