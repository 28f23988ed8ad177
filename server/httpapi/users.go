package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"scalelab/server"
	"scalelab/server/cache"
)

// userRequest is a create or update body. Pointers tell absent fields from
// empty ones; wrong JSON types fail decoding with 400.
type userRequest struct {
	Email    *string         `json:"email"`
	Username *string         `json:"username"`
	Password *string         `json:"password"`
	Profile  *profileRequest `json:"profile"`
	// CurrentPassword re-authenticates a change of the email or the
	// password on /api/v1 (see reauthenticate); ignored elsewhere.
	CurrentPassword *string `json:"current_password"`
}

type profileRequest struct {
	Name   *string `json:"name"`
	Avatar *string `json:"avatar"`
}

// newUser returns the sign-up and the names of the required fields the
// body left out.
func (r userRequest) newUser() (server.NewUser, map[string]bool) {
	var n server.NewUser
	missing := map[string]bool{}
	req := func(field string, p *string, dst *string) {
		if p == nil {
			missing[field] = true
			return
		}
		*dst = *p
	}
	req("email", r.Email, &n.Email)
	req("username", r.Username, &n.Username)
	req("password", r.Password, &n.Password)
	if r.Profile != nil {
		if r.Profile.Name != nil {
			n.Name = *r.Profile.Name
		}
		if r.Profile.Avatar != nil {
			n.Avatar = *r.Profile.Avatar
		}
	}
	return n, missing
}

func (r userRequest) change() server.UserChange {
	c := server.UserChange{Email: r.Email, Username: r.Username, Password: r.Password}
	if r.Profile != nil {
		c.Name, c.Avatar = r.Profile.Name, r.Profile.Avatar
	}
	return c
}

// invalid returns the 422 error for fields.
func invalid(fields []server.FieldError) error {
	return &server.Error{Code: server.EINVALID, Message: "the request has invalid fields", Fields: fields}
}

// createUser validates, hashes and stores a sign-up.
func (a *api) createUser(ctx context.Context, body userRequest) (*server.User, error) {
	n, missing := body.newUser()
	// An absent required field is empty, so Validate flags it too; it
	// gets the plainer message. Errors keep the contract's field order.
	fields := n.Validate()
	for i, f := range fields {
		if missing[f.Field] {
			fields[i].Message = "is required"
		}
	}
	if len(fields) > 0 {
		return nil, invalid(fields)
	}
	if err := a.checkTaken(ctx, n); err != nil {
		return nil, err
	}
	hash, err := a.hasher.Hash(ctx, n.Password)
	if err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}
	u := &server.User{
		Email:        n.Email,
		Username:     n.Username,
		PasswordHash: hash,
		Profile:      server.Profile{Name: n.Name, Avatar: n.Avatar},
	}
	if err := a.store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// updateUser validates and applies a change, then invalidates the caches.
// With ifVersion, only if the user is still at that version
// (EPRECONDITION otherwise).
func (a *api) updateUser(ctx context.Context, id string, c server.UserChange, ifVersion *int64) (*server.User, error) {
	if fields := c.Validate(); len(fields) > 0 {
		return nil, invalid(fields)
	}
	upd := server.UserUpdate{Email: c.Email, Username: c.Username, Name: c.Name, Avatar: c.Avatar, IfVersion: ifVersion}
	if c.Password != nil {
		hash, err := a.hasher.Hash(ctx, *c.Password)
		if err != nil {
			return nil, fmt.Errorf("hash password: %w", err)
		}
		upd.PasswordHash = &hash
	}
	u, err := a.store.UpdateUser(ctx, id, upd)
	var version int64
	if u != nil {
		version = u.Version
	}
	if !notApplied(err) {
		a.invalidate(ctx, id, version) // also on other errors: the write may have committed
	}
	return u, err
}

// notApplied reports whether err, a write's error, says the write was not
// applied and never will be: the store answers EUNAVAILABLE for a write it
// never sent (the primary taken for down) or whose deadline passed
// without a commit (server/postgres's write deadlines). Such a write needs
// no invalidation, and one without a version would send every read of the
// user to the primary, which is what is unavailable: anonymous reads of
// every user whose write failed during a primary pause failed with it.
func notApplied(err error) bool { return server.ErrorCode(err) == server.EUNAVAILABLE }

func (a *api) deleteUser(ctx context.Context, id string) error {
	err := a.store.DeleteUser(ctx, id)
	if !notApplied(err) {
		a.invalidate(ctx, id, 0)
	}
	return err
}

// invalidate drops user id from every cache tier after a write of its row
// version (0 when unknown, as for a delete). It runs after the write
// committed, before the write is acknowledged:
//   - L1 here: a load of the old row in flight is discarded (see cache.L1);
//   - L2: the entry is deleted and a marker refuses any later fill older
//     than version (no stale set), and the invalidation is published so
//     every other instance drops its L1 entry;
//   - L3: the CDN is asked to purge the public URL, asynchronously; a
//     failed purge is retried and counted but never fails the write.
func (a *api) invalidate(ctx context.Context, id string, version int64) {
	if a.l1 != nil {
		a.l1.Invalidate(id)
	}
	if a.l2 != nil {
		a.l2.Invalidate(ctx, id, version)
	}
	if a.purger != nil {
		a.purger.Purge("/api/v1/users/" + id)
	}
}

// userEntry returns the user's cached entry, loading it on a miss.
//
// While the invalidation channel (Redis pub/sub) is down, this L1 does not
// hear of other instances' writes, so an entry older than degradedL1TTL is
// dropped and loaded again instead of served: reads that any instance may
// answer (anonymous ones, other users' views) are then at most
// degradedL1TTL (plus the outage's detection, and a replica's lag) behind
// an acknowledged write, instead of the whole outage. An entry whose L2
// fill Redis did not take (a timeout) gets the same bound: nothing checked
// it against the writes already invalidated.
func (a *api) userEntry(ctx context.Context, id string) (*UserEntry, error) {
	if a.l1 == nil {
		return a.loadUserEntry(ctx, id)
	}
	e, hit, err := a.l1.Get(ctx, id, a.loadUserTiers)
	if err != nil && ctx.Err() == nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		// L1 runs a load under the context of the caller that started it,
		// and the callers that joined it get its error: when that caller
		// went away or ran out of time, this one (whose time is not up)
		// loads again instead of failing with someone else's deadline.
		e, hit, err = a.l1.Get(ctx, id, a.loadUserTiers)
	}
	if hit && a.l2 != nil && time.Since(e.loadedAt) > a.degradedL1TTL && (e.unchecked || a.l2.InvalidationsDown()) {
		a.l1.Invalidate(id)
		e, _, err = a.l1.Get(ctx, id, a.loadUserTiers)
	}
	return e, userLookupErr(id, err)
}

// userLookupErr turns the cache's not-found, which loadUserEntry returns
// so that L1 neither caches nor counts a missing user as a failed load,
// back into the domain's ENOTFOUND.
func userLookupErr(id string, err error) error {
	if errors.Is(err, cache.ErrNotFound) {
		return server.Errorf(server.ENOTFOUND, "user %s not found", id)
	}
	return err
}

// ownUserEntry is userEntry for a user reading themself: while a recent
// write of theirs may be newer than L1 or a replica, it skips L1 and reads
// no older than that write (see ryw.go). When the primary must answer
// (Redis trouble, or a write of unknown position) it skips L2 too: L2 may
// hold an entry whose invalidation still waits for Redis, and a load
// coalesced with other readers' could come from a replica. h is the
// request's header, for its write hints. It also returns the context for
// the user's other reads of their own data (the owner view's usage
// counters), which must be as fresh.
func (a *api) ownUserEntry(ctx context.Context, h http.Header, id string) (*UserEntry, context.Context, error) {
	rctx, fresh := a.ownReadContext(ctx, h, id)
	if !fresh {
		e, err := a.userEntry(ctx, id)
		return e, ctx, err
	}
	var e *UserEntry
	var err error
	if server.UsePrimary(rctx) {
		e, err = a.loadUserEntry(rctx, id)
	} else {
		// Not through the load other readers of this instance share: it
		// may have read L2 or a replica before the write, whose
		// invalidation has not reached this instance yet.
		e, err = a.loadThroughL2(rctx, id, (*cache.L2).LoadFresh)
	}
	return e, rctx, userLookupErr(id, err)
}

// loadUserTiers is L1's loader: L2, then the database. Concurrent misses
// on one key share one L2 read and one database load per instance.
func (a *api) loadUserTiers(ctx context.Context, id string) (*UserEntry, error) {
	return a.loadThroughL2(ctx, id, (*cache.L2).Load)
}

// loadThroughL2 loads user id with load, one of L2's loads (the shared
// one, or LoadFresh), from the database on a miss.
func (a *api) loadThroughL2(ctx context.Context, id string, load func(*cache.L2, context.Context, string, cache.LoadFunc) (cache.Entry, error)) (*UserEntry, error) {
	if a.l2 == nil {
		return a.loadUserEntry(ctx, id)
	}
	e, err := load(a.l2, ctx, id, func(ctx context.Context, key string) ([]byte, int64, error) {
		ue, err := a.loadUserEntry(ctx, key)
		if err != nil {
			return nil, 0, err
		}
		return ue.l2Bytes(), ue.Version, nil
	})
	if err != nil {
		return nil, err
	}
	if e.Fill == cache.FillStale {
		// The database answered with a row older than a write that has
		// already been acknowledged (a lagging replica): read the primary.
		return a.loadUserEntry(server.WithPrimary(ctx), id)
	}
	ue, err := entryFromL2(e.Data, e.Version)
	if err == nil && e.Fill == cache.FillSkipped {
		ue.unchecked = true
	}
	return ue, err
}

func (a *api) loadUserEntry(ctx context.Context, id string) (*UserEntry, error) {
	u, err := a.store.User(ctx, id)
	if err != nil {
		if a.l1 != nil && server.ErrorCode(err) == server.ENOTFOUND {
			return nil, cache.ErrNotFound
		}
		return nil, err
	}
	return newUserEntry(u, a.stamp(u.PasswordHash))
}

// userID returns the route's id parameter, or a 404 error when it cannot
// name a user. Upper-case hex is accepted and folded: ids are lower-case.
func userID(ps httprouter.Params, name string) (string, error) {
	id := strings.ToLower(ps.ByName(name))
	if !server.ValidID(id) {
		return "", server.Errorf(server.ENOTFOUND, "%s %q not found: not a UUID", strings.TrimSuffix(name, "_id"), ps.ByName(name))
	}
	return id, nil
}

func (a *api) handleCreateUser() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		// Every response of the unversioned API may carry a user's full
		// view (the email included): no shared cache may keep it.
		w.Header()["Cache-Control"] = privateHeader
		var body userRequest
		if herr := readJSON(w, r, &body); herr != nil {
			herr.write(w)
			return
		}
		u, err := a.createUser(r.Context(), body)
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		w.Header().Set("Location", "/api/users/"+u.ID)
		writeJSON(w, r, a.log, http.StatusCreated, fullView(u))
	}
}

func (a *api) handleGetUser() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		id, err := userID(ps, "id")
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		e, err := a.userEntry(r.Context(), id)
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		// Assigning prepared header slices (canonical keys) saves the
		// allocations Header.Set makes on the hottest path.
		h := w.Header()
		h["Etag"] = e.etagHeader
		h["Cache-Control"] = privateHeader
		if etagMatch(r.Header.Get("If-None-Match"), e.ETag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		h["Content-Type"] = a.jsonContentType
		w.WriteHeader(http.StatusOK)
		w.Write(e.Full)
	}
}

func (a *api) handleUpdateUser() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		w.Header()["Cache-Control"] = privateHeader
		id, err := userID(ps, "id")
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		var body userRequest
		if herr := readJSON(w, r, &body); herr != nil {
			herr.write(w)
			return
		}
		ifVersion, err := a.ifMatch(r, id)
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		u, err := a.updateUser(r.Context(), id, body.change(), ifVersion)
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		a.writeUserWithTag(w, r, u, false)
	}
}

func (a *api) handleDeleteUser() httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		w.Header()["Cache-Control"] = privateHeader
		id, err := userID(ps, "id")
		if err != nil {
			writeError(w, r, a.log, err)
			return
		}
		if err := a.deleteUser(r.Context(), id); err != nil {
			writeError(w, r, a.log, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// ifMatch returns the version of user id that the request's If-Match
// names, for a compare-and-set update (nil without If-Match), or
// EPRECONDITION when it names none that is current. A client that read the
// user (ETag) and writes with If-Match never overwrites a change it has not
// seen: a late or retried write of an old view fails with 412 instead.
func (a *api) ifMatch(r *http.Request, id string) (*int64, error) {
	header := r.Header.Get("If-Match")
	if header == "" {
		return nil, nil
	}
	// From the primary: the version compared must be the current one.
	u, err := a.store.User(server.WithPrimary(r.Context()), id)
	if err != nil {
		return nil, err
	}
	full, err := marshalJSON(fullView(u))
	if err != nil {
		return nil, fmt.Errorf("encode user %s: %w", id, err)
	}
	if strongETagMatch(header, etag(full)) {
		return &u.Version, nil
	}
	// The owner's view in v1 carries the usage counters: its tag covers them.
	if usage, ok, err := a.usage(server.WithPrimary(r.Context()), id); err != nil {
		return nil, err
	} else if ok && strongETagMatch(header, etag(withUsage(full, usage))) {
		return &u.Version, nil
	}
	return nil, server.Errorf(server.EPRECONDITION, "If-Match names no current version of the user; read it again")
}

// strongETagMatch reports whether an If-Match header matches tag (strong
// comparison, RFC 9110 §13.1.1: a weak tag never matches).
func strongETagMatch(header, tag string) bool {
	if strings.TrimSpace(header) == "*" {
		return true
	}
	for _, t := range strings.Split(header, ",") {
		if strings.TrimSpace(t) == tag {
			return true
		}
	}
	return false
}

// writeUserWithTag answers a write with the user's own view and its ETag,
// for the client's next If-Match. With counters (the v1 API), the view has
// the owner's usage counters, read from the primary after the write; should
// that read fail, the write has still happened: the answer then goes
// without them.
func (a *api) writeUserWithTag(w http.ResponseWriter, r *http.Request, u *server.User, counters bool) {
	body, err := marshalJSON(fullView(u))
	if err != nil {
		writeError(w, r, a.log, fmt.Errorf("encode user %s: %w", u.ID, err))
		return
	}
	if counters {
		usage, ok, err := a.usage(server.WithPrimary(r.Context()), u.ID)
		switch {
		case err != nil:
			a.log.Warn("user written, but its usage counters could not be read: answering without them", "user", u.ID, "err", err)
		case ok:
			body = withUsage(body, usage)
		}
	}
	w.Header().Set("ETag", etag(body))
	writeBody(w, http.StatusOK, body)
}

// etagMatch reports whether an If-None-Match header matches tag (weak
// comparison, as RFC 9110 prescribes for If-None-Match).
func etagMatch(header, tag string) bool {
	if header == "" {
		return false
	}
	if strings.TrimSpace(header) == "*" {
		return true
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == strings.TrimPrefix(tag, "W/") {
			return true
		}
	}
	return false
}
