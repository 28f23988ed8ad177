package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"scalelab/server"
	"scalelab/server/auth"
	"scalelab/server/ratelimit"
)

// Cache-Control values of the versioned API. The anonymous public view is
// what the CDN tier (L3) may keep for an hour; browsers must revalidate
// (max-age=0) so a purge takes effect for them at once. Everything that
// depends on who asks is private.
const (
	cachePublic  = "public, s-maxage=3600, max-age=0"
	cachePrivate = "private"
	cacheNoStore = "no-store"
)

// publicView is what anyone may see of a user.
type publicView struct {
	ID        string      `json:"id"`
	Username  string      `json:"username"`
	Profile   profileView `json:"profile"`
	CreatedAt time.Time   `json:"created_at"`
}

func newPublicView(u *server.User) publicView {
	return publicView{
		ID:        u.ID,
		Username:  u.Username,
		Profile:   profileView{Name: u.Profile.Name, Avatar: u.Profile.Avatar},
		CreatedAt: u.CreatedAt.UTC(),
	}
}

// recordView is an application-data record as the API shows it.
type recordView struct {
	ID        string          `json:"id"`
	UserID    string          `json:"user_id"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

func newRecordView(r *server.Record) recordView {
	return recordView{ID: r.ID, UserID: r.UserID, Data: r.Data, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

// principal is who a request acts as; nil means anonymous.
type principal struct {
	UserID string
}

// errBadToken is the one 401 for any token problem: malformed, badly
// signed, expired, or of a user that no longer exists.
func errBadToken() error {
	return server.Errorf(server.EUNAUTHORIZED, "the access token is invalid or expired")
}

// authenticate returns the request's principal. No Authorization header
// means anonymous; any Authorization header must carry a valid bearer
// token, or the request fails with 401 — never a quiet downgrade to
// anonymous. An empty header and a repeated one are malformed credentials,
// not absent ones (a proxy that checks one copy and a server that reads
// the other must never disagree on who asks). A token of a deleted user
// fails too, and so does one issued before its user's last password
// change: its user is looked up (through the caches) on every request, and
// the token's password stamp must match the user's current one (see
// auth.Issuer.Stamp).
func (a *api) authenticate(r *http.Request) (*principal, error) {
	sub, err := a.tokenSubject(r)
	if err != nil || sub.UserID == "" {
		return nil, err
	}
	uid := sub.UserID
	e, err := a.userEntry(r.Context(), uid)
	switch {
	case err == nil && e.Stamp == sub.Stamp:
		return &principal{UserID: uid}, nil
	case err != nil && server.ErrorCode(err) != server.ENOTFOUND:
		return nil, err
	}
	// The caches and a replica may not know a user that signed up a
	// moment ago through another instance, nor a password changed a
	// moment ago (and with it the stamps of the tokens issued since). The
	// token is well signed, so the primary decides before it is refused:
	// only a token of a deleted user, one of a password changed since, or
	// one that lagging replicas cannot judge yet, costs this query.
	u, err := a.store.User(server.WithPrimary(r.Context()), uid)
	if err != nil {
		if server.ErrorCode(err) == server.ENOTFOUND {
			return nil, errBadToken()
		}
		return nil, err
	}
	if a.stamp(u.PasswordHash) != sub.Stamp {
		return nil, errBadToken()
	}
	return &principal{UserID: uid}, nil
}

// stamp is the password stamp of hash that tokens carry; "" without an
// issuer (no token is valid then anyway).
func (a *api) stamp(passwordHash string) string {
	if a.tokens == nil {
		return ""
	}
	return a.tokens.Stamp(passwordHash)
}

// tokenSubject checks r's credentials without looking the user up: the
// zero Subject and no error without an Authorization header, the token's
// subject for a well-formed, well-signed, unexpired bearer token,
// errBadToken for anything else. The rate limiter checks first (see limit)
// and leaves its verdict in the request's context, so a token is verified
// once.
func (a *api) tokenSubject(r *http.Request) (auth.Subject, error) {
	if v, ok := r.Context().Value(tokenCheckKey{}).(tokenCheck); ok {
		return v.subject, v.err
	}
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return auth.Subject{}, nil
	}
	if len(hs) > 1 {
		return auth.Subject{}, errBadToken()
	}
	scheme, token, ok := strings.Cut(hs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" || a.tokens == nil {
		return auth.Subject{}, errBadToken()
	}
	sub, err := a.tokens.Verify(strings.TrimSpace(token))
	if err != nil {
		return auth.Subject{}, errBadToken()
	}
	return sub, nil
}

// tokenCheck is tokenSubject's verdict on a request, kept in its context
// under tokenCheckKey.
type tokenCheck struct {
	subject auth.Subject
	err     error
}

type tokenCheckKey struct{}

// requireSelf authenticates r and returns the route's user id, which must
// be the caller's own: 401 without a valid token (checked first, so
// anonymous callers learn nothing about ids), 404 for an id that names no
// one, 403 for another user's.
func (a *api) requireSelf(r *http.Request, ps httprouter.Params) (string, error) {
	p, err := a.authenticate(r)
	switch {
	case err != nil:
		return "", err
	case p == nil:
		return "", server.Errorf(server.EUNAUTHORIZED, "this request needs a bearer token")
	}
	id, err := userID(ps, "id")
	if err != nil {
		return "", err
	}
	if p.UserID != id {
		return "", server.Errorf(server.EFORBIDDEN, "only the user themself may do this")
	}
	return id, nil
}

// refuseBadToken fails a public route's request that carries a token that
// is not valid: the contract allows no downgrade to anonymous anywhere.
func (a *api) refuseBadToken(w http.ResponseWriter, r *http.Request) bool {
	if _, err := a.authenticate(r); err != nil {
		a.writeV1Error(w, r, err)
		return true
	}
	return false
}

// writeV1Error writes a problem and, for 401, the challenge RFC 6750 asks
// for.
func (a *api) writeV1Error(w http.ResponseWriter, r *http.Request, err error) {
	if server.ErrorCode(err) == server.EUNAUTHORIZED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="scalelab"`)
	}
	writeError(w, r, a.log, err)
}

func (a *api) handleV1CreateUser() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		if a.refuseBadToken(w, r) {
			return
		}
		if d, limited := a.signupLimited(w, r); limited {
			a.writeLimited(w, d)
			return
		}
		var body userRequest
		if herr := readJSON(w, r, &body); herr != nil {
			herr.write(w)
			return
		}
		// A sign-up is the new user's first write: like their later
		// ones it leaves its position, so that their first reads through
		// any instance see them although the replicas may not yet.
		ctx, rec := withRecorder(r.Context())
		u, err := a.createUser(ctx, body)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		a.noteWrite(r.Context(), u.ID, rec.Position())
		w.Header().Set("Location", "/api/v1/users/"+u.ID)
		w.Header().Set("Cache-Control", cachePrivate)
		writeJSON(w, r, a.log, http.StatusCreated, a.newOwnerView(u))
	}
}

type tokenRequest struct {
	Login    *string `json:"login"`
	Password *string `json:"password"`
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// errBadLogin is the one answer to every failed login, so a client cannot
// tell an unknown user from a wrong password.
func errBadLogin() error {
	return server.Errorf(server.EUNAUTHORIZED, "invalid login or password")
}

func (a *api) handleToken() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		w.Header().Set("Cache-Control", cacheNoStore)
		if a.refuseBadToken(w, r) {
			return
		}
		var body tokenRequest
		if herr := readJSON(w, r, &body); herr != nil {
			herr.write(w)
			return
		}
		var fields []server.FieldError
		if body.Login == nil || *body.Login == "" {
			fields = append(fields, server.FieldError{Field: "login", Message: "is required"})
		}
		if body.Password == nil || *body.Password == "" {
			fields = append(fields, server.FieldError{Field: "password", Message: "is required"})
		}
		if len(fields) > 0 {
			a.writeV1Error(w, r, invalid(fields))
			return
		}
		if a.tokens == nil {
			a.writeV1Error(w, r, server.Errorf(server.EUNAVAILABLE, "tokens are not configured on this server"))
			return
		}
		// Failures count against the login as typed, never the account
		// it names: an email and a username of one account spend budgets
		// of their own, so the limiter tells no one which belongs to which
		// (issue 9, finding 4). A refused attempt costs no lookup and
		// no argon2 work.
		login := *body.Login
		d, limited := a.loginLimited(r, login)
		if limited {
			a.writeLimited(w, d)
			return
		}
		if !waitLoginDelay(r.Context(), d.Delay) {
			return
		}
		var u *server.User
		// No email or username holds a NUL (validation refuses them), and
		// PostgreSQL cannot even compare text with one: such a login is
		// unknown without asking the store.
		if !strings.ContainsRune(*body.Login, 0) {
			var err error
			// From the primary: a sign-up acknowledged a moment ago (on
			// any instance) must be able to sign in at once, whatever a
			// replica has replayed. Token requests are rare and pay for
			// argon2 anyway.
			u, err = a.store.UserByLogin(server.WithPrimary(r.Context()), *body.Login)
			if err != nil && server.ErrorCode(err) != server.ENOTFOUND {
				a.writeV1Error(w, r, err)
				return
			}
		}
		uid, err := a.checkLogin(r.Context(), u, *body.Password)
		if err != nil {
			if server.ErrorCode(err) == server.EUNAUTHORIZED {
				a.loginFailed(r, login)
			}
			a.writeV1Error(w, r, err)
			return
		}
		token, ttl, err := a.tokens.Issue(auth.Subject{UserID: uid, Stamp: a.stamp(u.PasswordHash)})
		if err != nil {
			a.writeV1Error(w, r, fmt.Errorf("issue token for user %s: %w", uid, err))
			return
		}
		writeJSON(w, r, a.log, http.StatusOK, tokenResponse{AccessToken: token, TokenType: "Bearer", ExpiresIn: int64(ttl.Seconds())})
	}
}

// checkLogin returns the id of u, the user a login named (nil for none),
// if password is theirs. For an unknown login it still verifies the
// password against a dummy hash of the same cost, so the response time does
// not tell whether the user exists.
func (a *api) checkLogin(ctx context.Context, u *server.User, password string) (string, error) {
	hash := a.dummyHash
	if u != nil {
		hash = u.PasswordHash
	}
	ok, err := a.hasher.Verify(ctx, password, hash)
	if err != nil {
		return "", fmt.Errorf("verify password: %w", err)
	}
	if u == nil || !ok {
		return "", errBadLogin()
	}
	return u.ID, nil
}

func (a *api) handleV1GetUser() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		h := w.Header()
		h.Set("Vary", "Authorization")
		p, err := a.authenticate(r)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		id, err := userID(ps, "id")
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		var e *UserEntry
		own := p != nil && p.UserID == id
		var usage server.Usage
		var withCounters bool
		if own {
			var rctx context.Context
			e, rctx, err = a.ownUserEntry(r.Context(), r.Header, id)
			if err == nil {
				usage, withCounters, err = a.usage(rctx, id)
				if server.ErrorCode(err) == server.EUNAVAILABLE {
					// The counters are read apart from the cached user, on
					// every own read: a database that cannot answer now (a
					// paused primary the read fell back to) must not fail a
					// read the cache can serve. The view goes without them.
					a.log.Warn("usage counters unavailable: answering the owner's view without them", "user", id, "err", err)
					withCounters, err = false, nil
				}
			}
			if server.ErrorCode(err) == server.ENOTFOUND {
				// authenticate found the user through a cache the delete's
				// invalidation had not reached yet; the caller's own read
				// says it is gone, and so is its token.
				err = errBadToken()
			}
		} else {
			e, err = a.userEntry(r.Context(), id)
		}
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		body, tag, cc := e.Public, e.PublicETag, cachePublic
		switch {
		case own && withCounters:
			body = withUsage(e.Full, usage)
			tag, cc = etag(body), cachePrivate
		case own:
			body, tag, cc = e.Full, e.ETag, cachePrivate
		case p != nil:
			cc = cachePrivate
		}
		h.Set("Cache-Control", cc)
		h.Set("ETag", tag)
		if etagMatch(r.Header.Get("If-None-Match"), tag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h["Content-Type"] = a.jsonContentType
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	}
}

func (a *api) handleV1UpdateUser() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		w.Header().Set("Cache-Control", cachePrivate)
		id, err := a.requireSelf(r, ps)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		var body userRequest
		if herr := readJSON(w, r, &body); herr != nil {
			herr.write(w)
			return
		}
		if fields := body.change().Validate(); len(fields) > 0 {
			a.writeV1Error(w, r, invalid(fields))
			return
		}
		if err := a.reauthenticate(r, id, body); err != nil {
			if d, ok := err.(limitedError); ok {
				a.writeLimited(w, d.Decision)
				return
			}
			a.writeV1Error(w, r, err)
			return
		}
		ifVersion, err := a.ifMatch(r, id)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		var u *server.User
		err = a.ownerWrite(r.Context(), id, func(ctx context.Context) (err error) {
			u, err = a.updateUser(ctx, id, body.change(), ifVersion)
			return err
		})
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		a.writeUserWithTag(w, r, u, true)
	}
}

// errReauth is the answer to a change of the email or the password without
// the right current_password: 403, the same whether it was missing or
// wrong. A token alone is not enough for these changes: whoever stole one
// could otherwise lock the owner out of the account for good.
func errReauth() error {
	return server.Errorf(server.EFORBIDDEN,
		"changing the email or the password needs current_password, the account's current password, in the same body")
}

// limitedError carries a refused rate-limit decision out of reauthenticate.
type limitedError struct{ ratelimit.Decision }

func (limitedError) Error() string { return "rate limited" }

// reauthenticate checks that a change of user id's email or password
// carries the account's current password. Other changes, and an email
// sent unchanged, need none. Wrong current passwords count as failed
// logins of the account, so a stolen token is no way around the login
// budget.
func (a *api) reauthenticate(r *http.Request, id string, body userRequest) error {
	if body.Password == nil && body.Email == nil {
		return nil
	}
	// From the primary: the check must see the password as it is now.
	u, err := a.store.User(server.WithPrimary(r.Context()), id)
	if err != nil {
		return err
	}
	if body.Password == nil && strings.EqualFold(*body.Email, u.Email) {
		return nil
	}
	if body.CurrentPassword == nil || *body.CurrentPassword == "" {
		return errReauth()
	}
	login := "user:" + id
	if d, limited := a.loginLimited(r, login); limited {
		return limitedError{d}
	}
	ok, err := a.hasher.Verify(r.Context(), *body.CurrentPassword, u.PasswordHash)
	if err != nil {
		return fmt.Errorf("verify current password of user %s: %w", id, err)
	}
	if !ok {
		a.loginFailed(r, login)
		return errReauth()
	}
	return nil
}

func (a *api) handleV1DeleteUser() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		w.Header().Set("Cache-Control", cachePrivate)
		id, err := a.requireSelf(r, ps)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		// A user with many records is gone at once and its records go
		// later, through the job queue: 202 and the status's URL.
		var ticket string
		err = a.ownerWrite(r.Context(), id, func(ctx context.Context) error {
			t, later, err := a.deleteUserLater(ctx, id)
			if later || err != nil {
				ticket = t
				return err
			}
			return a.deleteUser(ctx, id)
		})
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		if ticket != "" {
			a.acceptDeletion(w, r, ticket)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// recordRequest is a record's create or update body. Data is required; any
// JSON value, null included, is accepted.
type recordRequest struct {
	Data json.RawMessage `json:"data"`
}

func (b recordRequest) validate() error {
	if len(b.Data) == 0 {
		return invalid([]server.FieldError{{Field: "data", Message: "is required"}})
	}
	return nil
}

// ownerParams authenticates a data route: the caller must be the owner.
func (a *api) ownerParams(w http.ResponseWriter, r *http.Request, ps httprouter.Params) (userID string, ok bool) {
	w.Header().Set("Cache-Control", cachePrivate)
	id, err := a.requireSelf(r, ps)
	if err != nil {
		a.writeV1Error(w, r, err)
		return "", false
	}
	return id, true
}

func recordIDParam(ps httprouter.Params) (string, error) {
	id := strings.ToLower(ps.ByName("record_id"))
	if !server.ValidID(id) {
		return "", server.Errorf(server.ENOTFOUND, "record %q not found", ps.ByName("record_id"))
	}
	return id, nil
}

func (a *api) handleCreateRecord() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, ok := a.ownerParams(w, r, ps)
		if !ok {
			return
		}
		var body recordRequest
		if herr := readJSON(w, r, &body); herr != nil {
			herr.write(w)
			return
		}
		if err := body.validate(); err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		rec := &server.Record{UserID: uid, Data: compact(body.Data)}
		err := a.ownerWrite(r.Context(), uid, func(ctx context.Context) error {
			return a.store.CreateRecord(ctx, rec)
		})
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		w.Header().Set("Location", "/api/v1/users/"+uid+"/data/"+rec.ID)
		writeJSON(w, r, a.log, http.StatusCreated, newRecordView(rec))
	}
}

// Page sizes of GET /api/v1/users/{id}/data.
const (
	defaultPageLimit = 20
)

func (a *api) handleListRecords() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, ok := a.ownerParams(w, r, ps)
		if !ok {
			return
		}
		q := r.URL.Query()
		limit := defaultPageLimit
		if s := q.Get("limit"); s != "" || q.Has("limit") {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > server.MaxPageLimit {
				writeProblem(w, http.StatusBadRequest, fmt.Sprintf("limit %q: must be an integer from 1 to %d", s, server.MaxPageLimit), nil)
				return
			}
			limit = n
		}
		ctx, _ := a.ownReadContext(r.Context(), r.Header, uid)
		page, err := a.store.Records(ctx, uid, limit, q.Get("cursor"))
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		a.writeRecordPage(w, r, page)
	}
}

func (a *api) handleGetRecord() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, rid, ok := a.recordParams(w, r, ps)
		if !ok {
			return
		}
		ctx, _ := a.ownReadContext(r.Context(), r.Header, uid)
		rec, err := a.store.Record(ctx, uid, rid)
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		writeJSON(w, r, a.log, http.StatusOK, newRecordView(rec))
	}
}

func (a *api) handleUpdateRecord() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, rid, ok := a.recordParams(w, r, ps)
		if !ok {
			return
		}
		var body recordRequest
		if herr := readJSON(w, r, &body); herr != nil {
			herr.write(w)
			return
		}
		if err := body.validate(); err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		var rec *server.Record
		err := a.ownerWrite(r.Context(), uid, func(ctx context.Context) (err error) {
			rec, err = a.store.UpdateRecord(ctx, uid, rid, compact(body.Data))
			return err
		})
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		writeJSON(w, r, a.log, http.StatusOK, newRecordView(rec))
	}
}

func (a *api) handleDeleteRecord() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		uid, rid, ok := a.recordParams(w, r, ps)
		if !ok {
			return
		}
		err := a.ownerWrite(r.Context(), uid, func(ctx context.Context) error {
			return a.store.DeleteRecord(ctx, uid, rid)
		})
		if err != nil {
			a.writeV1Error(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// recordParams authenticates a route on one record: the caller must own
// it. It writes the error response itself and reports whether to go on.
func (a *api) recordParams(w http.ResponseWriter, r *http.Request, ps httprouter.Params) (uid, rid string, ok bool) {
	if uid, ok = a.ownerParams(w, r, ps); !ok {
		return "", "", false
	}
	rid, err := recordIDParam(ps)
	if err != nil {
		a.writeV1Error(w, r, err)
		return "", "", false
	}
	return uid, rid, true
}

// ownerWrite runs write, a store write on behalf of user uid, and leaves
// its position for the user's next reads (read-your-writes, ryw.go).
func (a *api) ownerWrite(ctx context.Context, uid string, write func(ctx context.Context) error) error {
	wctx, pos := withRecorder(ctx)
	err := write(wctx)
	a.noteWrite(ctx, uid, pos.Position())
	return err
}

// compact returns JSON text without insignificant whitespace; the store
// keeps the client's value otherwise as sent (key order, duplicates).
func compact(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	buf.Grow(len(raw))
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}
