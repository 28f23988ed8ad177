package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"scalelab/internal/pgserver/pgtest"
	"scalelab/internal/redisserver/redistest"
	"scalelab/server"
	"scalelab/server/auth"
	"scalelab/server/cache"
	"scalelab/server/postgres"
)

// commandLog is a go-redis hook that keeps every command an L2 sends, so
// a test can count the Redis round trips of a request on a real Redis.
// With failScripts set, it fails the Lua scripts (L2's fills and
// invalidations) without sending them, as a Redis that timed out would.
type commandLog struct {
	mu          sync.Mutex
	cmds        []string
	failScripts atomic.Bool
}

// errScriptFailed is what a failed script returns.
var errScriptFailed = errors.New("test: scripts fail")

func (l *commandLog) add(cmds ...redis.Cmder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range cmds {
		var b strings.Builder
		for i, a := range c.Args() {
			if i > 0 {
				b.WriteByte(' ')
			}
			s, _ := a.(string)
			if len(s) > 80 {
				s = s[:80] + "…"
			}
			b.WriteString(s)
		}
		l.cmds = append(l.cmds, b.String())
	}
}

// take returns the commands logged since the last take and forgets them.
func (l *commandLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.cmds
	l.cmds = nil
	return c
}

func (l *commandLog) DialHook(next redis.DialHook) redis.DialHook { return next }

func (l *commandLog) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		l.add(cmd)
		if n := cmd.Name(); l.failScripts.Load() && (n == "evalsha" || n == "eval") {
			cmd.SetErr(errScriptFailed)
			return errScriptFailed
		}
		return next(ctx, cmd)
	}
}

func (l *commandLog) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		l.add(cmds...)
		return next(ctx, cmds)
	}
}

// rywInstance is one app instance of a two-instance phase-3 set-up on a
// real PostgreSQL and a real Redis: its handler and the log of the Redis
// commands its L2 sends. The instances do not subscribe to invalidations,
// so an instance's L1 never hears of the other's writes: the worst case of
// an invalidation still in flight.
type rywInstance struct {
	h   http.Handler
	log *commandLog
}

const testSecret = "a test secret of at least thirty-two bytes"

type rywSetup struct {
	a, b   rywInstance
	tokens *auth.Issuer
	store  *postgres.DB
}

func newRYWSetup(t *testing.T) *rywSetup {
	t.Helper()
	ctx := context.Background()
	pg := pgtest.New(t)
	store, err := postgres.Open(ctx, pgtest.NewDatabase(t, pg), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Seed(ctx, 3, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5", nil); err != nil {
		t.Fatal(err)
	}
	rds := redistest.Start(t)
	key, err := auth.NewKey(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewIssuer(auth.IssuerOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := auth.NewHasher(auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0)
	if err != nil {
		t.Fatal(err)
	}
	instance := func() rywInstance {
		rdb, err := cache.NewRedisClient(cache.RedisOptions{Addrs: []string{rds.Addr()}})
		if err != nil {
			t.Fatal(err)
		}
		log := &commandLog{}
		rdb.AddHook(log)
		l2, err := cache.NewL2(rdb, cache.L2Options{})
		if err != nil {
			t.Fatal(err)
		}
		l1, err := cache.NewL1(cache.L1Options[*UserEntry]{TTL: time.Hour, Weigh: WeighUserEntry})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			l1.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := l2.Close(ctx); err != nil {
				t.Errorf("close L2: %v", err)
			}
			rdb.Close()
		})
		h := mustHandler(t, Config{Store: store, Hasher: hasher, UserCache: l1, L2: l2, Tokens: tokens,
			Logger: slog.New(slog.DiscardHandler)})
		return rywInstance{h: h, log: log}
	}
	return &rywSetup{a: instance(), b: instance(), tokens: tokens, store: store}
}

// token returns a bearer token of seeded user n.
func (s *rywSetup) token(t *testing.T, n int) string {
	t.Helper()
	u, err := s.store.User(context.Background(), server.SeedUserID(n))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := s.tokens.Issue(auth.Subject{UserID: u.ID, Stamp: s.tokens.Stamp(u.PasswordHash)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// send serves one request through inst and fails the test on an
// unexpected status.
func send(t *testing.T, inst rywInstance, method, path, token string, hdr map[string]string, body string, want int) *httptest.ResponseRecorder {
	t.Helper()
	var r *http.Request
	if body != "" {
		r = httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	} else {
		r = httptest.NewRequest(method, path, nil)
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	inst.h.ServeHTTP(w, r)
	if w.Code != want {
		t.Fatalf("%s %s = %d %s, want %d", method, path, w.Code, w.Body, want)
	}
	return w
}

func profileName(t *testing.T, body []byte) string {
	t.Helper()
	var u struct {
		Profile struct{ Name string } `json:"profile"`
	}
	if err := json.Unmarshal(body, &u); err != nil {
		t.Fatalf("user %s: %v", body, err)
	}
	return u.Profile.Name
}

// markerReads counts the read-your-writes marker lookups among cmds.
func markerReads(cmds []string) int {
	n := 0
	for _, c := range cmds {
		if strings.HasPrefix(c, "get ") && strings.Contains(c, "ryw:") {
			n++
		}
	}
	return n
}

// TestL1HitsTouchNoRedis: once L1 holds the users, anonymous reads, reads
// of another user's view with a token, and own reads of a client that
// keeps write hints and wrote nothing recently send no command to Redis;
// an own read of a client that sends no hint asks Redis for the marker
// (that is the round trip the hint saves), and so does one with a hint this
// server did not issue.
func TestL1HitsTouchNoRedis(t *testing.T) {
	s := newRYWSetup(t)
	alice, bob := server.SeedUserID(0), server.SeedUserID(1)
	tok := s.token(t, 0)
	// Warm L1 (the first reads miss, read L2 and fill it).
	send(t, s.a, "GET", "/api/v1/users/"+alice, "", nil, "", 200)
	send(t, s.a, "GET", "/api/v1/users/"+bob, "", nil, "", 200)
	s.a.log.take()

	const n = 20
	cases := []struct {
		name        string
		path, token string
		hdr         map[string]string
		wantMarkers int // marker lookups; no other command is allowed
	}{
		{"anonymous", "/api/v1/users/" + bob, "", nil, 0},
		{"another user's view", "/api/v1/users/" + bob, tok, nil, 0},
		{"several users (ids=)", "/api/v1/users?ids=" + alice + "," + bob, "", nil, 0},
		{"own, hint none", "/api/v1/users/" + alice, tok, map[string]string{wroteHeader: wroteNone}, 0},
		{"own, expired hint", "/api/v1/users/" + alice, tok, map[string]string{wroteHeader: expiredHint(t, alice)}, 0},
		{"own, no hint", "/api/v1/users/" + alice, tok, nil, n},
		{"own, forged hint", "/api/v1/users/" + alice, tok, map[string]string{wroteHeader: "0/1." + "1700000000000.AAAAAAAAAAAAAAAAAAAAAA"}, n},
		{"own, another user's hint", "/api/v1/users/" + alice, tok, map[string]string{wroteHeader: s.tokens.SealHint(bob, 1)}, n},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for range n {
				send(t, s.a, "GET", c.path, c.token, c.hdr, "", 200)
			}
			cmds := s.a.log.take()
			if got := markerReads(cmds); got != c.wantMarkers || len(cmds) != c.wantMarkers {
				t.Errorf("%d reads sent %d Redis commands (%d marker lookups), want %d marker lookups and nothing else: %q",
					n, len(cmds), got, c.wantMarkers, cmds)
			}
		})
	}
}

// expiredHint returns a well-signed hint of user uid of a write made
// twice markerTTL ago: an issuer with the same key and an earlier clock.
func expiredHint(t *testing.T, uid string) string {
	t.Helper()
	key, err := auth.NewKey(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	old, err := auth.NewIssuer(auth.IssuerOptions{Key: key, Now: func() time.Time { return time.Now().Add(-2 * markerTTL) }})
	if err != nil {
		t.Fatal(err)
	}
	return old.SealHint(uid, 1)
}

// TestWriteHintReadYourWrites: a user writes through instance A and reads
// through instance B, whose L1 still holds the old profile (it never hears
// A's invalidation here). A read that sends back A's write hint sees the
// write without a marker lookup; one that sends none asks Redis and sees
// it too; a client that claims it wrote nothing ("none") reads B's L1, as
// it asked.
func TestWriteHintReadYourWrites(t *testing.T) {
	s := newRYWSetup(t)
	alice := server.SeedUserID(0)
	tok := s.token(t, 0)
	path := "/api/v1/users/" + alice
	none := map[string]string{wroteHeader: wroteNone}
	old := profileName(t, send(t, s.b, "GET", path, tok, none, "", 200).Body.Bytes()) // B's L1 holds it now

	w := send(t, s.a, "PUT", path, tok, none, `{"profile":{"name":"after the write"}}`, 200)
	hint := w.Header().Get(wroteHeader)
	if hint == "" {
		t.Fatalf("PUT answered without %s: %v", wroteHeader, w.Header())
	}
	if _, _, err := s.tokens.OpenHint(alice, hint); err != nil {
		t.Fatalf("OpenHint(%q) = %v", hint, err)
	}
	s.b.log.take()

	got := profileName(t, send(t, s.b, "GET", path, tok, map[string]string{wroteHeader: hint}, "", 200).Body.Bytes())
	if got != "after the write" {
		t.Errorf("own read through B with the hint: name %q, want %q", got, "after the write")
	}
	if cmds := s.b.log.take(); markerReads(cmds) != 0 {
		t.Errorf("own read with the hint looked the marker up: %q", cmds)
	}

	got = profileName(t, send(t, s.b, "GET", path, tok, nil, "", 200).Body.Bytes())
	if got != "after the write" {
		t.Errorf("own read through B without a hint: name %q, want %q", got, "after the write")
	}
	if cmds := s.b.log.take(); markerReads(cmds) != 1 {
		t.Errorf("own read without a hint: Redis commands %q, want one marker lookup", cmds)
	}

	// The client said it made no recent write: B's L1 answers, without
	// Redis. This is why a client must send back the latest hint.
	got = profileName(t, send(t, s.b, "GET", path, tok, none, "", 200).Body.Bytes())
	if got != old {
		t.Logf("own read through B with %q: name %q (B's L1 had %q)", wroteNone, got, old)
	}
	if cmds := s.b.log.take(); len(cmds) != 0 {
		t.Errorf("own read with %q sent Redis commands %q, want none", wroteNone, cmds)
	}

	// Records: a record created through A is found through B at once,
	// with the hint of its creation and no marker lookup.
	w = send(t, s.a, "POST", path+"/data", tok, none, `{"data":{"n":1}}`, 201)
	var rec struct{ ID string }
	if err := json.Unmarshal(w.Body.Bytes(), &rec); err != nil || rec.ID == "" {
		t.Fatalf("POST data = %s: %v", w.Body, err)
	}
	hint = w.Header().Get(wroteHeader)
	if hint == "" {
		t.Fatalf("POST data answered without %s", wroteHeader)
	}
	s.b.log.take()
	send(t, s.b, "GET", path+"/data/"+rec.ID, tok, map[string]string{wroteHeader: hint}, "", 200)
	if cmds := s.b.log.take(); markerReads(cmds) != 0 {
		t.Errorf("record read with the hint looked the marker up: %q", cmds)
	}
}

// TestUncheckedEntryLeavesL1Early: an entry whose L2 fill Redis did not
// take was judged by no invalidation marker (it could be a lagging
// replica's row from before a write this instance had already heard of),
// so L1 serves it no longer than DegradedL1TTL, and then loads it again;
// an entry that L2 took stays for L1's TTL. B hears no invalidation here,
// so what it serves after A's write shows which entries it reloaded.
func TestUncheckedEntryLeavesL1Early(t *testing.T) {
	s := newRYWSetup(t)
	const degraded = time.Second // Config.DegradedL1TTL's default
	read := func(id string) string {
		return profileName(t, send(t, s.b, "GET", "/api/v1/users/"+id, "", nil, "", 200).Body.Bytes())
	}
	rename := func(n int, name string) {
		send(t, s.a, "PUT", "/api/v1/users/"+server.SeedUserID(n), s.token(t, n), nil, `{"profile":{"name":"`+name+`"}}`, 200)
	}
	checked, unchecked := server.SeedUserID(1), server.SeedUserID(2)
	oldChecked := read(checked)
	s.b.log.failScripts.Store(true)
	oldUnchecked := read(unchecked)
	s.b.log.failScripts.Store(false)

	rename(1, "renamed checked")
	rename(2, "renamed unchecked")
	if got := read(unchecked); got != oldUnchecked {
		t.Fatalf("B's read right after the write = %q, want its L1's %q (the set-up is off)", got, oldUnchecked)
	}
	time.Sleep(degraded + 100*time.Millisecond)
	if got := read(unchecked); got != "renamed unchecked" {
		t.Errorf("B's read of the unchecked entry %v after it was loaded = %q, want it loaded again: %q", degraded, got, "renamed unchecked")
	}
	if got := read(checked); got != oldChecked {
		t.Errorf("B's read of the checked entry = %q, want L1's %q still (B hears no invalidation here)", got, oldChecked)
	}
}

// TestUnknownPositionKeepsReadsOffReplicas: a read after a write whose
// position is unknown goes to the primary carrying that position, so that
// a store whose primary is out cannot hand it to a replica that replayed
// only what the primary was known to have reached (DB.primaryOut), which
// the write may be newer than.
func TestUnknownPositionKeepsReadsOffReplicas(t *testing.T) {
	for _, p := range []server.Position{server.PositionUnknown, 42} {
		ctx, fresh := positionContext(t.Context(), p)
		if !fresh || server.MinPosition(ctx) != p {
			t.Errorf("positionContext(%v) = min position %v, fresh %v; want %v, true", p, server.MinPosition(ctx), fresh, p)
		}
		if want := p == server.PositionUnknown; server.UsePrimary(ctx) != want {
			t.Errorf("positionContext(%v): UsePrimary = %v, want %v", p, server.UsePrimary(ctx), want)
		}
	}
}
