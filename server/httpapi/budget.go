package httpapi

import (
	"context"
	"net/http"
	"time"

	"scalelab/server"
	"scalelab/server/ratelimit"
)

// The argon2 budget (issue 9, finding 3): sign-ups have their own small
// per-address budget, a duplicate is answered before any hashing, and a
// full hashing queue is answered 503 with Retry-After at once
// (writeError, auth.ErrBusy).

// signupLimited spends one sign-up from r's address and reports whether it
// is refused. The RateLimit-* headers are set either way.
func (a *api) signupLimited(w http.ResponseWriter, r *http.Request) (ratelimit.Decision, bool) {
	if a.limiter == nil {
		return ratelimit.Decision{Allowed: true}, false
	}
	d := a.limiter.AllowSignup(r.Context(), ratelimit.ClientIP(r, a.trusted))
	ratelimit.SetHeaders(w.Header(), d)
	return d, !d.Allowed
}

// checkTaken answers ECONFLICT for an email or username that is already
// taken, before the sign-up pays for a hash: one indexed lookup each, on
// any replica. It is only a shortcut: the unique constraints still decide
// races between concurrent sign-ups.
func (a *api) checkTaken(ctx context.Context, n server.NewUser) error {
	for _, f := range []struct{ field, value string }{{"email", n.Email}, {"username", n.Username}} {
		u, err := a.store.UserByLogin(ctx, f.value)
		switch {
		case server.ErrorCode(err) == server.ENOTFOUND:
			continue
		case err != nil:
			// Not worth failing a sign-up for: the constraint decides.
			a.log.DebugContext(ctx, "sign-up duplicate check failed", "err", err)
			return nil
		}
		// A login matches an email or a username; emails hold an '@' and
		// usernames cannot, so the match is of the same kind.
		if server.FoldKey(u.Email) == server.FoldKey(f.value) || server.FoldKey(u.Username) == server.FoldKey(f.value) {
			return &server.Error{Code: server.ECONFLICT, Field: f.field, Message: f.field + " is already taken"}
		}
	}
	return nil
}

// waitLoginDelay sleeps the progressive delay of a login whose ceiling
// across addresses is running out, before any hashing slot is taken. It
// reports false when the client went away meanwhile.
func waitLoginDelay(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
