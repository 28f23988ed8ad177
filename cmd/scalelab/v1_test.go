package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"scalelab/server"
	"scalelab/server/auth"
)

// testTokenSecret signs the tokens of the /api/v1 test servers, so a test
// can forge tokens the way someone holding the right key, or a wrong one,
// would.
const testTokenSecret = "scalelab /api/v1 end-to-end test secret, 32+ bytes"

// The Cache-Control values of the API contract.
const (
	ccPublic  = "public, s-maxage=3600, max-age=0"
	ccPrivate = "private"
)

// v1Server is a running server under /api/v1 test.
type v1Server struct {
	URL  string
	next atomic.Int64 // numbers the users newUser makes
}

// startV1Server runs a server with the test token secret and args.
func startV1Server(t *testing.T, args ...string) *v1Server {
	t.Helper()
	s := startServer(t, append([]string{"--token-secret", testTokenSecret}, args...)...)
	return &v1Server{URL: s.URL}
}

// v1User is a signed-up user with a token.
type v1User struct {
	ID, Email, Username, Password, Token string
}

// newUser signs a new user up through /api/v1 and gets it a token.
func (s *v1Server) newUser(t testing.TB) *v1User {
	t.Helper()
	body := newUserBody(int(s.next.Add(1)))
	r := do(t, "POST", s.URL+"/api/v1/users", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /api/v1/users = %d %s, want 201", r.Status, r.Body)
	}
	u := &v1User{
		ID:       r.json(t)["id"].(string),
		Email:    body["email"].(string),
		Username: body["username"].(string),
		Password: body["password"].(string),
	}
	u.Token = mustToken(t, s.URL, u.Username, u.Password)
	return u
}

func (s *v1Server) userURL(id string) string { return s.URL + "/api/v1/users/" + id }
func (s *v1Server) dataURL(id string) string { return s.URL + "/api/v1/users/" + id + "/data" }

// mustToken requests a token and checks the response's shape.
func mustToken(t testing.TB, base, login, password string, header ...string) string {
	t.Helper()
	r := do(t, "POST", base+"/api/v1/auth/token", map[string]any{"login": login, "password": password}, header...)
	tok := wantJSON(t, "POST /api/v1/auth/token login "+login, r, http.StatusOK)
	wantKeys(t, "token response", tok, "access_token", "expires_in", "token_type")
	if tok["token_type"] != "Bearer" {
		t.Errorf("token_type = %v, want Bearer", tok["token_type"])
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token response Cache-Control = %q, want no-store", cc)
	}
	s, _ := tok["access_token"].(string)
	if s == "" {
		t.Fatalf("access_token = %v, want a non-empty string", tok["access_token"])
	}
	return s
}

// bearer is the header pair that sends token.
func bearer(token string) []string { return []string{"Authorization", "Bearer " + token} }

// wantJSON checks r's status and Content-Type and decodes its object.
func wantJSON(t testing.TB, what string, r *response, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status = %d, want %d; body %s", what, r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type = %q, want application/json", what, ct)
	}
	return r.json(t)
}

// wantUnauthorized checks for the 401 problem with its Bearer challenge.
func wantUnauthorized(t testing.TB, what string, r *response) map[string]any {
	t.Helper()
	p := wantProblem(t, what, r, http.StatusUnauthorized)
	if c := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(c, "Bearer") {
		t.Errorf("%s: WWW-Authenticate = %q, want a Bearer challenge", what, c)
	}
	return p
}

// wantValidation checks for a 422 problem naming field.
func wantValidation(t testing.TB, what string, r *response, fields ...string) {
	t.Helper()
	p := wantProblem(t, what, r, http.StatusUnprocessableEntity)
	errs, ok := p["errors"].([]any)
	if !ok {
		t.Fatalf("%s: errors = %v, want an array", what, p["errors"])
	}
	for _, e := range errs {
		m, _ := e.(map[string]any)
		if f, _ := m["field"].(string); f == "" {
			t.Errorf("%s: error %v has no field", what, e)
		}
		if msg, _ := m["message"].(string); msg == "" {
			t.Errorf("%s: error %v has no message", what, e)
		}
	}
	for _, f := range fields {
		if !hasFieldError(p, f) {
			t.Errorf("%s: errors = %v, want one for %q", what, p["errors"], f)
		}
	}
}

// wantKeys checks that m has exactly the keys want.
func wantKeys(t testing.TB, what string, m map[string]any, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, want) {
		t.Errorf("%s: keys = %v, want %v", what, got, want)
	}
}

// wantHeader checks one response header's exact value.
func wantHeader(t testing.TB, what string, r *response, key, want string) {
	t.Helper()
	if got := r.Header.Get(key); got != want {
		t.Errorf("%s: %s = %q, want %q", what, key, got, want)
	}
}

// wantTime parses an RFC 3339 UTC timestamp field of m.
func wantTime(t testing.TB, what string, m map[string]any, key string) time.Time {
	t.Helper()
	s, _ := m[key].(string)
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || !strings.HasSuffix(s, "Z") {
		t.Errorf("%s: %s = %v, want an RFC 3339 time in UTC", what, key, m[key])
	}
	return ts
}

// sameJSON reports whether a and b are the same JSON value. Numbers are
// compared as written, so large integers do not round.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	decode := func(b []byte) any {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var v any
		if err := d.Decode(&v); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// recordOf decodes a record response, keeping data as raw JSON.
func recordOf(t testing.TB, what string, r *response, status int) (map[string]any, json.RawMessage) {
	t.Helper()
	m := wantJSON(t, what, r, status)
	wantKeys(t, what, m, "id", "user_id", "data", "created_at", "updated_at")
	wantHeader(t, what, r, "Cache-Control", ccPrivate)
	var raw struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(r.Body, &raw); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return m, raw.Data
}

// page is a decoded GET .../data response.
type page struct {
	Items []struct {
		ID        string          `json:"id"`
		UserID    string          `json:"user_id"`
		Data      json.RawMessage `json:"data"`
		CreatedAt time.Time       `json:"created_at"`
	} `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

// getPage lists records and checks the page's shape.
func getPage(t testing.TB, url, token string) page {
	t.Helper()
	r := do(t, "GET", url, nil, bearer(token)...)
	m := wantJSON(t, "GET "+url, r, http.StatusOK)
	wantKeys(t, "GET "+url, m, "items", "next_cursor")
	wantHeader(t, "GET "+url, r, "Cache-Control", ccPrivate)
	if _, ok := m["items"].([]any); !ok {
		t.Fatalf("GET %s: items = %v, want an array", url, m["items"])
	}
	if c := m["next_cursor"]; c != nil {
		if s, ok := c.(string); !ok || s == "" {
			t.Fatalf("GET %s: next_cursor = %#v, want a non-empty string or null", url, c)
		}
	}
	var p page
	if err := json.Unmarshal(r.Body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustRecord creates a record with data and returns its id.
func mustRecord(t testing.TB, s *v1Server, u *v1User, data string) string {
	t.Helper()
	r := do(t, "POST", s.dataURL(u.ID), `{"data":`+data+`}`, bearer(u.Token)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST %s = %d %s, want 201", s.dataURL(u.ID), r.Status, r.Body)
	}
	return r.json(t)["id"].(string)
}

func TestV1API(t *testing.T) {
	t.Parallel()
	setups := map[string]func(t *testing.T) []string{
		// phase 4's layout (--partitions), against the same contract
		"postgres-partitioned": func(t *testing.T) []string { return []string{"--db", postgresDSN(t), "--partitions", "16"} },
	}
	for name, dsn := range storeDSNs(t) {
		setups[name] = func(t *testing.T) []string { return []string{"--db", dsn(t)} }
	}
	for name, args := range setups {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := startV1Server(t, args(t)...)
			t.Run("sign-up", func(t *testing.T) { testV1SignUp(t, s) })
			t.Run("token", func(t *testing.T) { testV1Token(t, s) })
			t.Run("bad tokens", func(t *testing.T) { testV1BadTokens(t, s) })
			t.Run("deleted user", func(t *testing.T) { testV1DeletedUser(t, s) })
			t.Run("user views", func(t *testing.T) { testV1UserViews(t, s) })
			t.Run("user writes", func(t *testing.T) { testV1UserWrites(t, s) })
			t.Run("records", func(t *testing.T) { testV1Records(t, s) })
			t.Run("usage counters", func(t *testing.T) { testV1UsageCounters(t, s) })
			t.Run("record bodies", func(t *testing.T) { testV1RecordBodies(t, s) })
			t.Run("record access", func(t *testing.T) { testV1RecordAccess(t, s) })
			t.Run("pagination", func(t *testing.T) { testV1Pagination(t, s) })
			t.Run("paging under inserts", func(t *testing.T) { testV1PagingUnderInserts(t, s) })
			t.Run("malformed ids", func(t *testing.T) { testV1MalformedIDs(t, s) })
			t.Run("routing", func(t *testing.T) { testV1Routing(t, s) })
		})
	}
}

func testV1SignUp(t *testing.T, s *v1Server) {
	in := newUserBody(int(s.next.Add(1)))
	in["id"] = "00000000-0000-7000-8000-000000000000" // server-owned: ignored
	in["created_at"] = "2000-01-01T00:00:00Z"
	in["password_hash"] = "$argon2id$forged"
	r := do(t, "POST", s.URL+"/api/v1/users", in)
	u := wantJSON(t, "POST /api/v1/users", r, http.StatusCreated)
	id, _ := u["id"].(string)
	if !server.ValidID(id) || id == in["id"] {
		t.Fatalf("id = %q, want a new lower-case UUID", id)
	}
	wantHeader(t, "sign-up", r, "Location", "/api/v1/users/"+id)
	if low := bytes.ToLower(r.Body); bytes.Contains(low, []byte("password")) || bytes.Contains(low, []byte("argon")) {
		t.Errorf("sign-up body mentions a password: %s", r.Body)
	}
	if u["email"] != in["email"] || u["username"] != in["username"] {
		t.Errorf("sign-up = %v, want email and username of %v", u, in)
	}
	if created := wantTime(t, "sign-up", u, "created_at"); created.Year() == 2000 {
		t.Errorf("created_at = %v taken from the request", created)
	}
	wantTime(t, "sign-up", u, "updated_at")

	// The forged hash was ignored: the password works.
	tok := mustToken(t, s.URL, in["username"].(string), in["password"].(string))
	if g := wantJSON(t, "GET Location", do(t, "GET", s.URL+r.Header.Get("Location"), nil, bearer(tok)...), http.StatusOK); g["id"] != id {
		t.Errorf("GET Location = %v, want user %s", g, id)
	}

	wantValidation(t, "sign-up {}", do(t, "POST", s.URL+"/api/v1/users", map[string]any{}), "email", "username", "password")
	bad := newUserBody(int(s.next.Add(1)))
	bad["email"], bad["username"] = "nope", "a b"
	wantValidation(t, "sign-up with bad fields", do(t, "POST", s.URL+"/api/v1/users", bad), "email", "username")
	// A NUL is refused on both stores alike (PostgreSQL cannot keep one).
	for _, name := range []string{"Ada\x00Lovelace", "Ada\x1b[31m"} {
		bad = newUserBody(int(s.next.Add(1)))
		bad["profile"] = map[string]any{"name": name}
		wantValidation(t, fmt.Sprintf("sign-up with name %q", name), do(t, "POST", s.URL+"/api/v1/users", bad), "profile.name")
	}
	dup := newUserBody(int(s.next.Add(1)))
	dup["email"] = strings.ToUpper(in["email"].(string))
	wantProblem(t, "sign-up with a taken email", do(t, "POST", s.URL+"/api/v1/users", dup), http.StatusConflict)
	dup = newUserBody(int(s.next.Add(1)))
	dup["username"] = strings.ToUpper(in["username"].(string))
	wantProblem(t, "sign-up with a taken username", do(t, "POST", s.URL+"/api/v1/users", dup), http.StatusConflict)
	wantProblem(t, "sign-up with bad JSON", do(t, "POST", s.URL+"/api/v1/users", `{"email":`), http.StatusBadRequest)
	wantProblem(t, "sign-up with a wrong type", do(t, "POST", s.URL+"/api/v1/users", `{"email":["a@b.c"]}`), http.StatusBadRequest)
	wantProblem(t, "sign-up as a form", do(t, "POST", s.URL+"/api/v1/users", `email=a@b.c`, "Content-Type", "application/x-www-form-urlencoded"), http.StatusUnsupportedMediaType)
	wantProblem(t, "sign-up too large", do(t, "POST", s.URL+"/api/v1/users", `{"email":"`+strings.Repeat("a", MaxBodyForTest)+`"}`), http.StatusRequestEntityTooLarge)
}

func testV1Token(t *testing.T, s *v1Server) {
	u := s.newUser(t)
	mixed := []byte(u.Email)
	for i := 0; i < len(mixed); i += 2 {
		mixed[i] = strings.ToUpper(string(mixed[i]))[0]
	}
	seen := map[string]bool{}
	for _, login := range []string{u.Username, strings.ToUpper(u.Username), u.Email, strings.ToUpper(u.Email), string(mixed)} {
		r := do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{"login": login, "password": u.Password})
		tok := wantJSON(t, "token for "+login, r, http.StatusOK)
		wantKeys(t, "token for "+login, tok, "access_token", "expires_in", "token_type")
		wantHeader(t, "token for "+login, r, "Cache-Control", "no-store")
		if tok["token_type"] != "Bearer" || tok["expires_in"] != float64(3600) {
			t.Errorf("token for %s = %v, want token_type Bearer and expires_in 3600 (the default --token-ttl)", login, tok)
		}
		access, _ := tok["access_token"].(string)
		if seen[access] {
			t.Errorf("token for %s repeats an earlier token", login)
		}
		seen[access] = true
		me := wantJSON(t, "GET self with token for "+login, do(t, "GET", s.userURL(u.ID), nil, bearer(access)...), http.StatusOK)
		if me["email"] != u.Email {
			t.Errorf("GET self with token for %s = %v, want the full view", login, me)
		}
	}

	// One generic 401 for every bad login: nothing tells them apart.
	var first *response
	for _, c := range []struct{ name, login, password string }{
		{"unknown username", "nobody_here", u.Password},
		{"unknown email", "nobody@example.com", u.Password},
		{"wrong password", u.Username, "not the password"},
		{"password in other case", u.Email, strings.ToUpper(u.Password)},
		{"password with a trailing space", u.Username, u.Password + " "},
		{"password prefix", u.Username, u.Password[:len(u.Password)-1]},
		{"login with a NUL", u.Username + "\x00", u.Password},
		{"very long login", strings.Repeat(u.Username, 5000), u.Password},
	} {
		r := do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{"login": c.login, "password": c.password})
		wantUnauthorized(t, c.name, r)
		if first == nil {
			first = r
			continue
		}
		if !bytes.Equal(r.Body, first.Body) {
			t.Errorf("%s: body %s differs from the first bad login's %s", c.name, r.Body, first.Body)
		}
		if r.Header.Get("WWW-Authenticate") != first.Header.Get("WWW-Authenticate") {
			t.Errorf("%s: WWW-Authenticate differs from the first bad login's", c.name)
		}
	}

	wantValidation(t, "token {}", do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{}), "login", "password")
	wantProblem(t, "token with a number login", do(t, "POST", s.URL+"/api/v1/auth/token", `{"login":5,"password":"x"}`), http.StatusBadRequest)
	wantProblem(t, "token with bad JSON", do(t, "POST", s.URL+"/api/v1/auth/token", `{"login":"a"`), http.StatusBadRequest)
	wantProblem(t, "token as text", do(t, "POST", s.URL+"/api/v1/auth/token", `{}`, "Content-Type", "text/plain"), http.StatusUnsupportedMediaType)
	wantProblem(t, "GET token", do(t, "GET", s.URL+"/api/v1/auth/token", nil), http.StatusMethodNotAllowed)
}

// forge signs claims with method and key, as an attacker would.
func forge(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenClaim returns the claim called name of token, without verifying it.
func tokenClaim(t testing.TB, token, name string) any {
	t.Helper()
	var c jwt.MapClaims
	if _, _, err := jwt.NewParser().ParseUnverified(token, &c); err != nil {
		t.Fatalf("parse token: %v", err)
	}
	return c[name]
}

func testV1BadTokens(t *testing.T, s *v1Server) {
	a, b := s.newUser(t), s.newUser(t)
	key, err := auth.NewKey(testTokenSecret)
	if err != nil {
		t.Fatal(err)
	}
	otherKey, _ := auth.NewKey("another secret that is also 32 bytes or more")
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	claims := func(change func(jwt.MapClaims)) jwt.MapClaims {
		// The password stamp is copied from a real token: the test holds
		// the key but not the user's password hash.
		c := jwt.MapClaims{"iss": "scalelab", "sub": a.ID, "jti": "test", "pws": tokenClaim(t, a.Token, "pws"),
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()}
		if change != nil {
			change(c)
		}
		return c
	}
	// The control: a forged token with the right key and claims works, so
	// each case below fails for the one thing it changes.
	good := forge(t, jwt.SigningMethodHS256, key, claims(nil))
	if r := do(t, "GET", s.userURL(a.ID), nil, bearer(good)...); r.Status != http.StatusOK || r.json(t)["email"] != a.Email {
		t.Fatalf("control token: GET self = %d %s, want 200 with the full view", r.Status, r.Body)
	}

	parts := strings.Split(a.Token, ".")
	payloadB, _ := json.Marshal(claims(func(c jwt.MapClaims) { c["sub"] = b.ID }))
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payloadB) + "." + parts[2]
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))

	cases := []struct{ name, header string }{
		{"garbage", "Bearer garbage"},
		{"three garbage parts", "Bearer a.b.c"},
		{"empty bearer", "Bearer "},
		{"bearer alone", "Bearer"},
		{"empty header", ""},
		{"basic", "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password))},
		{"other scheme with a valid token", "Token " + a.Token},
		{"valid token without a scheme", a.Token},
		{"two tokens", "Bearer " + a.Token + " " + a.Token},
		{"alg none", "Bearer " + forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil))},
		{"alg none with the signature kept", "Bearer " + noneHeader + "." + parts[1] + "." + parts[2]},
		{"no signature", "Bearer " + parts[0] + "." + parts[1] + "."},
		{"truncated signature", "Bearer " + a.Token[:len(a.Token)-3]},
		{"trailing garbage", "Bearer " + a.Token + "x"},
		{"tampered subject", "Bearer " + tampered},
		{"another secret", "Bearer " + forge(t, jwt.SigningMethodHS256, otherKey, claims(nil))},
		{"HS384 with the key", "Bearer " + forge(t, jwt.SigningMethodHS384, key, claims(nil))},
		{"HS512 with the key", "Bearer " + forge(t, jwt.SigningMethodHS512, key, claims(nil))},
		{"ES256", "Bearer " + forge(t, jwt.SigningMethodES256, ecKey, claims(nil))},
		{"expired", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) {
			c["iat"], c["nbf"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		}))},
		{"without expiry", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { delete(c, "exp") }))},
		{"not yet valid", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }))},
		{"issued in the future", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }))},
		{"other issuer", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { c["iss"] = "someone-else" }))},
		{"without subject", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { delete(c, "sub") }))},
		{"unknown subject", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { c["sub"] = "0190f5a8-0000-7000-8000-000000000000" }))},
		{"subject not an id", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { c["sub"] = "../admin" }))},
		{"without password stamp", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { delete(c, "pws") }))},
		{"another user's password stamp", "Bearer " + forge(t, jwt.SigningMethodHS256, key, claims(func(c jwt.MapClaims) { c["pws"] = tokenClaim(t, b.Token, "pws") }))},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := []string{"Authorization", c.header}
			// The public view is what an anonymous request gets: a bad
			// token must not fall back to it.
			wantUnauthorized(t, "GET a user", do(t, "GET", s.userURL(a.ID), nil, h...))
			wantUnauthorized(t, "GET another user", do(t, "GET", s.userURL(b.ID), nil, h...))
			wantUnauthorized(t, "PUT", do(t, "PUT", s.userURL(a.ID), map[string]any{"profile": map[string]any{"name": "x"}}, h...))
			wantUnauthorized(t, "DELETE", do(t, "DELETE", s.userURL(a.ID), nil, h...))
			wantUnauthorized(t, "GET data", do(t, "GET", s.dataURL(a.ID), nil, h...))
			wantUnauthorized(t, "POST data", do(t, "POST", s.dataURL(a.ID), `{"data":1}`, h...))
			wantUnauthorized(t, "sign-up", do(t, "POST", s.URL+"/api/v1/users", newUserBody(100000+i), h...))
			wantUnauthorized(t, "token", do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{"login": a.Username, "password": a.Password}, h...))
		})
	}
	t.Run("header twice", func(t *testing.T) {
		for _, pair := range [][2]string{{a.Token, "garbage"}, {"garbage", a.Token}, {a.Token, b.Token}} {
			req, _ := http.NewRequest("GET", s.userURL(a.ID), nil)
			req.Header.Add("Authorization", "Bearer "+pair[0])
			req.Header.Add("Authorization", "Bearer "+pair[1])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			wantUnauthorized(t, "two Authorization headers", &response{Status: resp.StatusCode, Header: resp.Header, Body: body})
		}
	})
	// The scheme is case-insensitive (RFC 9110 §11.1).
	if r := do(t, "GET", s.userURL(a.ID), nil, "Authorization", "bearer "+a.Token); r.Status != http.StatusOK || r.json(t)["email"] != a.Email {
		t.Errorf("GET self with scheme %q = %d %s, want the full view", "bearer", r.Status, r.Body)
	}
	// Nothing above changed a.
	if r := do(t, "GET", s.userURL(a.ID), nil, bearer(a.Token)...); r.Status != http.StatusOK {
		t.Errorf("GET self after the bad tokens = %d %s", r.Status, r.Body)
	}
}

func testV1DeletedUser(t *testing.T, s *v1Server) {
	a, b := s.newUser(t), s.newUser(t)
	second := mustToken(t, s.URL, a.Email, a.Password)
	mustRecord(t, s, a, `{"x":1}`)
	// Warm any cache with a's entry.
	wantJSON(t, "GET self", do(t, "GET", s.userURL(a.ID), nil, bearer(a.Token)...), http.StatusOK)
	if r := do(t, "DELETE", s.userURL(a.ID), nil, bearer(a.Token)...); r.Status != http.StatusNoContent {
		t.Fatalf("DELETE self = %d %s, want 204", r.Status, r.Body)
	}
	for _, tok := range []string{a.Token, second} {
		wantUnauthorized(t, "GET self with a deleted user's token", do(t, "GET", s.userURL(a.ID), nil, bearer(tok)...))
		wantUnauthorized(t, "GET another user with a deleted user's token", do(t, "GET", s.userURL(b.ID), nil, bearer(tok)...))
		wantUnauthorized(t, "GET data with a deleted user's token", do(t, "GET", s.dataURL(a.ID), nil, bearer(tok)...))
		wantUnauthorized(t, "POST data with a deleted user's token", do(t, "POST", s.dataURL(a.ID), `{"data":1}`, bearer(tok)...))
		wantUnauthorized(t, "DELETE with a deleted user's token", do(t, "DELETE", s.userURL(a.ID), nil, bearer(tok)...))
	}
	wantProblem(t, "anonymous GET of a deleted user", do(t, "GET", s.userURL(a.ID), nil), http.StatusNotFound)
	wantUnauthorized(t, "token for a deleted user", do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{"login": a.Username, "password": a.Password}))

	// Someone signs up again with the same email and username: the old
	// tokens name the old id and stay dead.
	again := do(t, "POST", s.URL+"/api/v1/users", map[string]any{"email": a.Email, "username": a.Username, "password": a.Password})
	newID := wantJSON(t, "sign-up again", again, http.StatusCreated)["id"]
	if newID == a.ID {
		t.Fatalf("sign-up again reused id %s", a.ID)
	}
	wantUnauthorized(t, "old token after a new sign-up", do(t, "GET", s.userURL(b.ID), nil, bearer(a.Token)...))
}

func testV1UserViews(t *testing.T, s *v1Server) {
	a, b := s.newUser(t), s.newUser(t)
	url := s.userURL(a.ID)

	// Anonymous: the public view, cacheable by the CDN tier.
	anon := do(t, "GET", url, nil)
	pub := wantJSON(t, "anonymous GET", anon, http.StatusOK)
	wantKeys(t, "anonymous GET", pub, "id", "username", "profile", "created_at")
	if p, _ := pub["profile"].(map[string]any); p == nil {
		t.Errorf("anonymous GET profile = %v, want an object", pub["profile"])
	} else {
		wantKeys(t, "anonymous GET profile", p, "name", "avatar")
	}
	if pub["id"] != a.ID || pub["username"] != a.Username {
		t.Errorf("anonymous GET = %v, want id %s and username %s", pub, a.ID, a.Username)
	}
	if bytes.Contains(anon.Body, []byte(a.Email)) || bytes.Contains(bytes.ToLower(anon.Body), []byte("password")) {
		t.Errorf("anonymous GET shows private fields: %s", anon.Body)
	}
	wantTime(t, "anonymous GET", pub, "created_at")
	wantCaching(t, "anonymous GET", anon, ccPublic)
	pubTag := anon.Header.Get("ETag")

	// Own token: the full view, private.
	own := do(t, "GET", url, nil, bearer(a.Token)...)
	full := wantJSON(t, "GET self", own, http.StatusOK)
	wantKeys(t, "GET self", full, "id", "email", "username", "profile", "created_at", "updated_at", "records_count", "records_bytes")
	if full["email"] != a.Email || full["id"] != a.ID || full["records_count"] != 0.0 || full["records_bytes"] != 0.0 {
		t.Errorf("GET self = %v, want the full view of %s with no records", full, a.ID)
	}
	wantCaching(t, "GET self", own, ccPrivate)
	ownTag := own.Header.Get("ETag")
	if ownTag == pubTag {
		t.Errorf("the full and the public view share ETag %s", ownTag)
	}

	// Another user's token: the public view, private.
	other := do(t, "GET", url, nil, bearer(b.Token)...)
	if v := wantJSON(t, "GET as another user", other, http.StatusOK); !reflect.DeepEqual(v, pub) {
		t.Errorf("GET as another user = %v, want the public view %v", v, pub)
	}
	wantCaching(t, "GET as another user", other, ccPrivate)
	otherTag := other.Header.Get("ETag")

	// Revalidation answers 304 with the same caching headers and no body.
	for _, c := range []struct {
		name, tag, cc string
		header        []string
	}{
		{"anonymous", pubTag, ccPublic, nil},
		{"self", ownTag, ccPrivate, bearer(a.Token)},
		{"another user", otherTag, ccPrivate, bearer(b.Token)},
	} {
		for _, inm := range []string{c.tag, "W/" + c.tag, `"nope", ` + c.tag, "*"} {
			r := do(t, "GET", url, nil, append([]string{"If-None-Match", inm}, c.header...)...)
			what := fmt.Sprintf("GET %s with If-None-Match %s", c.name, inm)
			if r.Status != http.StatusNotModified {
				t.Errorf("%s = %d %s, want 304", what, r.Status, r.Body)
				continue
			}
			if len(r.Body) != 0 {
				t.Errorf("%s has a body: %s", what, r.Body)
			}
			wantCaching(t, what, r, c.cc)
			wantHeader(t, what, r, "ETag", c.tag)
		}
		if r := do(t, "GET", url, nil, append([]string{"If-None-Match", `"nope"`}, c.header...)...); r.Status != http.StatusOK {
			t.Errorf("GET %s with a stale If-None-Match = %d, want 200", c.name, r.Status)
		}
	}
	// HEAD answers as GET does, without the body.
	head := do(t, "HEAD", url, nil)
	if head.Status != http.StatusOK || len(head.Body) != 0 {
		t.Errorf("anonymous HEAD = %d %q, want 200 without a body", head.Status, head.Body)
	}
	wantCaching(t, "anonymous HEAD", head, ccPublic)
	wantHeader(t, "anonymous HEAD", head, "ETag", pubTag)
	if r := do(t, "HEAD", url, nil, "If-None-Match", pubTag); r.Status != http.StatusNotModified {
		t.Errorf("anonymous HEAD with If-None-Match = %d, want 304", r.Status)
	}
	if r := do(t, "HEAD", url, nil, "Authorization", "Bearer garbage"); r.Status != http.StatusUnauthorized {
		t.Errorf("HEAD with a bad token = %d, want 401", r.Status)
	}
	if r := do(t, "HEAD", s.dataURL(a.ID), nil, bearer(a.Token)...); r.Status != http.StatusOK || r.Header.Get("Cache-Control") != ccPrivate {
		t.Errorf("HEAD own data = %d, Cache-Control %q; want 200, private", r.Status, r.Header.Get("Cache-Control"))
	}
	// A tag of one view must not validate the other.
	if r := do(t, "GET", url, nil, append([]string{"If-None-Match", pubTag}, bearer(a.Token)...)...); r.Status != http.StatusOK {
		t.Errorf("GET self with the public view's ETag = %d, want 200 with the full view", r.Status)
	}
	if r := do(t, "GET", url, nil, "If-None-Match", ownTag); r.Status != http.StatusOK {
		t.Errorf("anonymous GET with the full view's ETag = %d, want 200", r.Status)
	}

	if r := do(t, "GET", s.userURL(strings.ToUpper(a.ID)), nil); r.Status != http.StatusOK {
		t.Errorf("GET with an upper-case id = %d, want 200", r.Status)
	}
	unknown := s.userURL("0190f5a8-0000-7000-8000-000000000000")
	wantProblem(t, "anonymous GET of an unknown id", do(t, "GET", unknown, nil), http.StatusNotFound)
	wantProblem(t, "GET of an unknown id with a token", do(t, "GET", unknown, nil, bearer(a.Token)...), http.StatusNotFound)

	// A write changes both views and their tags.
	if r := do(t, "PUT", url, map[string]any{"profile": map[string]any{"name": "Renamed"}}, bearer(a.Token)...); r.Status != http.StatusOK {
		t.Fatalf("PUT = %d %s", r.Status, r.Body)
	}
	after := do(t, "GET", url, nil, "If-None-Match", pubTag)
	if v := wantJSON(t, "anonymous GET after PUT with the old ETag", after, http.StatusOK); v["profile"].(map[string]any)["name"] != "Renamed" {
		t.Errorf("anonymous GET after PUT = %v, want the new name", v)
	}
	if after.Header.Get("ETag") == pubTag {
		t.Errorf("the public ETag did not change with the profile")
	}
	if r := do(t, "GET", url, nil, append([]string{"If-None-Match", ownTag}, bearer(a.Token)...)...); r.Status != http.StatusOK {
		t.Errorf("GET self after PUT with the old ETag = %d, want 200", r.Status)
	}
}

// wantCaching checks the caching headers of a GET of a user.
func wantCaching(t testing.TB, what string, r *response, cc string) {
	t.Helper()
	wantHeader(t, what, r, "Cache-Control", cc)
	if tag := r.Header.Get("ETag"); !strings.HasPrefix(strings.TrimPrefix(tag, "W/"), `"`) || !strings.HasSuffix(tag, `"`) {
		t.Errorf("%s: ETag = %q, want a quoted entity tag", what, tag)
	}
	if !slices.ContainsFunc(r.Header.Values("Vary"), func(v string) bool {
		return slices.ContainsFunc(strings.Split(v, ","), func(f string) bool { return strings.EqualFold(strings.TrimSpace(f), "Authorization") })
	}) {
		t.Errorf("%s: Vary = %q, want Authorization", what, r.Header.Values("Vary"))
	}
}

func testV1UserWrites(t *testing.T, s *v1Server) {
	a, b := s.newUser(t), s.newUser(t)
	url := s.userURL(a.ID)
	change := map[string]any{"profile": map[string]any{"name": "Mallory"}}
	wantUnauthorized(t, "PUT without a token", do(t, "PUT", url, change))
	wantUnauthorized(t, "PUT without a token and a bad body", do(t, "PUT", url, `{"profile":`))
	wantProblem(t, "PUT with another user's token", do(t, "PUT", url, change, bearer(b.Token)...), http.StatusForbidden)
	wantUnauthorized(t, "DELETE without a token", do(t, "DELETE", url, nil))
	wantProblem(t, "DELETE with another user's token", do(t, "DELETE", url, nil, bearer(b.Token)...), http.StatusForbidden)
	before := wantJSON(t, "GET self", do(t, "GET", url, nil, bearer(a.Token)...), http.StatusOK)
	if before["profile"].(map[string]any)["name"] == "Mallory" {
		t.Fatalf("a refused PUT changed the user: %v", before)
	}

	time.Sleep(2 * time.Millisecond)
	up := do(t, "PUT", url, map[string]any{
		"profile": map[string]any{"name": "Countess"},
		"id":      b.ID, "created_at": "2000-01-01T00:00:00Z", "updated_at": "2000-01-01T00:00:00Z",
	}, bearer(a.Token)...)
	after := wantJSON(t, "PUT self", up, http.StatusOK)
	wantHeader(t, "PUT self", up, "Cache-Control", ccPrivate)
	if bytes.Contains(bytes.ToLower(up.Body), []byte("password")) {
		t.Errorf("PUT body mentions a password: %s", up.Body)
	}
	if p := after["profile"].(map[string]any); p["name"] != "Countess" || p["avatar"] != before["profile"].(map[string]any)["avatar"] {
		t.Errorf("after PUT profile = %v, want name changed and avatar kept", p)
	}
	for _, k := range []string{"id", "email", "username", "created_at"} {
		if after[k] != before[k] {
			t.Errorf("after PUT %s = %v, want %v kept", k, after[k], before[k])
		}
	}
	if !wantTime(t, "PUT", after, "updated_at").After(wantTime(t, "GET", before, "updated_at")) {
		t.Errorf("updated_at %v did not advance past %v", after["updated_at"], before["updated_at"])
	}
	if g := wantJSON(t, "GET after PUT", do(t, "GET", url, nil, bearer(a.Token)...), http.StatusOK); !reflect.DeepEqual(g, after) {
		t.Errorf("GET after PUT = %v, want %v", g, after)
	}

	// The email sent unchanged needs no re-authentication; a new email or
	// password needs the current password in the same body: 403 without
	// it or with a wrong one, and nothing changes.
	if r := do(t, "PUT", url, map[string]any{"email": strings.ToUpper(a.Email)}, bearer(a.Token)...); r.Status != http.StatusOK {
		t.Errorf("PUT the same email = %d %s, want 200", r.Status, r.Body)
	}
	newEmail := "Renamed." + a.Email
	for _, c := range []struct {
		what string
		body map[string]any
	}{
		{"a new password without current_password", map[string]any{"password": "a brand new password"}},
		{"a new email without current_password", map[string]any{"email": newEmail}},
		{"a new password with a wrong current_password", map[string]any{"password": "a brand new password", "current_password": "not " + a.Password}},
		{"a new email with an empty current_password", map[string]any{"email": newEmail, "current_password": ""}},
	} {
		p := wantProblem(t, "PUT "+c.what, do(t, "PUT", url, c.body, bearer(a.Token)...), http.StatusForbidden)
		if d, _ := p["detail"].(string); !strings.Contains(d, "current_password") {
			t.Errorf("PUT %s: detail %q does not name current_password", c.what, d)
		}
	}
	mustToken(t, s.URL, a.Email, a.Password)

	// A new password and email take effect for logins at once, and the
	// password change ends every token issued before it.
	older := mustToken(t, s.URL, a.Username, a.Password)
	if r := do(t, "PUT", url, map[string]any{"password": "a brand new password", "email": newEmail, "current_password": a.Password}, bearer(a.Token)...); r.Status != http.StatusOK {
		t.Fatalf("PUT password = %d %s", r.Status, r.Body)
	}
	wantUnauthorized(t, "token with the old password", do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{"login": a.Username, "password": a.Password}))
	for _, tok := range []string{a.Token, older} {
		wantUnauthorized(t, "GET self with a token issued before the password change", do(t, "GET", url, nil, bearer(tok)...))
		wantUnauthorized(t, "PUT with a token issued before the password change", do(t, "PUT", url, change, bearer(tok)...))
	}
	a.Password = "a brand new password"
	a.Token = mustToken(t, s.URL, strings.ToLower(newEmail), a.Password)
	if g := wantJSON(t, "GET self with a token issued after the password change", do(t, "GET", url, nil, bearer(a.Token)...), http.StatusOK); g["email"] != newEmail {
		t.Errorf("GET self after the change: email = %v, want %s", g["email"], newEmail)
	}

	wantValidation(t, "PUT a bad email", do(t, "PUT", url, map[string]any{"email": "nope"}, bearer(a.Token)...), "email")
	wantValidation(t, "PUT a short password", do(t, "PUT", url, map[string]any{"password": "short"}, bearer(a.Token)...), "password")
	wantValidation(t, "PUT a name with a NUL", do(t, "PUT", url, map[string]any{"profile": map[string]any{"name": "a\x00b"}}, bearer(a.Token)...), "profile.name")
	wantProblem(t, "PUT a wrong type", do(t, "PUT", url, `{"profile":{"name":7}}`, bearer(a.Token)...), http.StatusBadRequest)
	wantProblem(t, "PUT bad JSON", do(t, "PUT", url, `{"profile":`, bearer(a.Token)...), http.StatusBadRequest)
	wantProblem(t, "PUT a taken username", do(t, "PUT", url, map[string]any{"username": strings.ToUpper(b.Username)}, bearer(a.Token)...), http.StatusConflict)

	wantProblem(t, "PUT an unknown user", do(t, "PUT", s.userURL("0190f5a8-0000-7000-8000-000000000000"), change, bearer(a.Token)...), http.StatusForbidden)
	if r := do(t, "DELETE", url, nil, bearer(a.Token)...); r.Status != http.StatusNoContent || len(r.Body) != 0 {
		t.Fatalf("DELETE self = %d %s, want 204 without a body", r.Status, r.Body)
	}
	wantProblem(t, "GET after DELETE", do(t, "GET", url, nil), http.StatusNotFound)
	if r := do(t, "GET", s.userURL(b.ID), nil, bearer(b.Token)...); r.Status != http.StatusOK {
		t.Errorf("GET of another user after DELETE = %d, want 200", r.Status)
	}
}

func testV1Records(t *testing.T, s *v1Server) {
	u := s.newUser(t)
	values := []string{
		`{"a":{"b":[1,2,{"c":null}],"d":{"e":{"f":"g"}}},"s":"x"}`,
		`[1,"two",3.5,true,null,{},[],{"k":[{"deep":[1]}]}]`,
		`"a string with \"quotes\", \\ and ünïcødé ✓"`,
		`42`, `-1.5e-7`, `12345678901234567890123456789`, `0`,
		`null`, `true`, `false`, `{}`, `[]`, `""`,
		`"<script>&</script>"`,
		`{"b":1,"a":2}`,
		"{ \"spaced\" :\t[ 1 ,\n 2 ] }",
		`"\u0000 and \ud83d\ude00"`,
	}
	for _, v := range values {
		r := do(t, "POST", s.dataURL(u.ID), `{"data":`+v+`}`, bearer(u.Token)...)
		rec, data := recordOf(t, "POST data "+v, r, http.StatusCreated)
		id, _ := rec["id"].(string)
		if !server.ValidID(id) || rec["user_id"] != u.ID {
			t.Fatalf("POST data %s = %v, want a new id and user_id %s", v, rec, u.ID)
		}
		wantHeader(t, "POST data", r, "Location", "/api/v1/users/"+u.ID+"/data/"+id)
		if !sameJSON(t, data, []byte(v)) {
			t.Errorf("POST data %s: data = %s", v, data)
		}
		if created, updated := wantTime(t, "POST data", rec, "created_at"), wantTime(t, "POST data", rec, "updated_at"); !created.Equal(updated) {
			t.Errorf("new record: created_at %v != updated_at %v", created, updated)
		}
		got, gotData := recordOf(t, "GET record", do(t, "GET", s.dataURL(u.ID)+"/"+id, nil, bearer(u.Token)...), http.StatusOK)
		if !sameJSON(t, gotData, []byte(v)) || got["created_at"] != rec["created_at"] || got["updated_at"] != rec["updated_at"] {
			t.Errorf("GET record = %s, want %s", gotData, r.Body)
		}
	}

	// Server-owned fields are never taken from the request.
	other := s.newUser(t)
	r := do(t, "POST", s.dataURL(u.ID), map[string]any{"data": 1, "id": "0190f5a8-0000-7000-8000-000000000001",
		"user_id": other.ID, "created_at": "2000-01-01T00:00:00Z", "updated_at": "2000-01-01T00:00:00Z"}, bearer(u.Token)...)
	rec, _ := recordOf(t, "POST data with server-owned fields", r, http.StatusCreated)
	if rec["id"] == "0190f5a8-0000-7000-8000-000000000001" || rec["user_id"] != u.ID || wantTime(t, "POST", rec, "created_at").Year() == 2000 {
		t.Errorf("POST with server-owned fields = %v, want them ignored", rec)
	}
	recURL := s.dataURL(u.ID) + "/" + rec["id"].(string)

	time.Sleep(2 * time.Millisecond)
	up := do(t, "PUT", recURL, map[string]any{"data": map[string]any{"v": []any{2, "x"}}, "created_at": "2000-01-01T00:00:00Z", "user_id": other.ID}, bearer(u.Token)...)
	upd, updData := recordOf(t, "PUT record", up, http.StatusOK)
	if !sameJSON(t, updData, []byte(`{"v":[2,"x"]}`)) {
		t.Errorf("PUT record data = %s", updData)
	}
	if upd["id"] != rec["id"] || upd["user_id"] != u.ID || upd["created_at"] != rec["created_at"] {
		t.Errorf("PUT record = %v, want id, user_id and created_at of %v", upd, rec)
	}
	if !wantTime(t, "PUT", upd, "updated_at").After(wantTime(t, "POST", rec, "updated_at")) {
		t.Errorf("PUT record: updated_at %v did not advance past %v", upd["updated_at"], rec["updated_at"])
	}
	if _, d := recordOf(t, "GET after PUT", do(t, "GET", recURL, nil, bearer(u.Token)...), http.StatusOK); !sameJSON(t, d, updData) {
		t.Errorf("GET after PUT data = %s, want %s", d, updData)
	}
	if _, d := recordOf(t, "PUT null", do(t, "PUT", recURL, `{"data":null}`, bearer(u.Token)...), http.StatusOK); string(d) != "null" {
		t.Errorf("PUT null: data = %s, want null", d)
	}

	del := do(t, "DELETE", recURL, nil, bearer(u.Token)...)
	if del.Status != http.StatusNoContent || len(del.Body) != 0 {
		t.Fatalf("DELETE record = %d %s, want 204 without a body", del.Status, del.Body)
	}
	wantHeader(t, "DELETE record", del, "Cache-Control", ccPrivate)
	wantProblem(t, "GET after DELETE", do(t, "GET", recURL, nil, bearer(u.Token)...), http.StatusNotFound)
	wantProblem(t, "PUT after DELETE", do(t, "PUT", recURL, `{"data":1}`, bearer(u.Token)...), http.StatusNotFound)
	wantProblem(t, "DELETE after DELETE", do(t, "DELETE", recURL, nil, bearer(u.Token)...), http.StatusNotFound)
	wantProblem(t, "GET an unknown record", do(t, "GET", s.dataURL(u.ID)+"/0190f5a8-0000-7000-8000-000000000000", nil, bearer(u.Token)...), http.StatusNotFound)
}

func testV1RecordBodies(t *testing.T, s *v1Server) {
	u := s.newUser(t)
	recURL := s.dataURL(u.ID) + "/" + mustRecord(t, s, u, `"original"`)
	deep := `{"data":` + strings.Repeat("[", 64) + strings.Repeat("]", 64) + `}`   // 65 levels
	okDeep := `{"data":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}` // 64 levels
	big := `{"data":"` + strings.Repeat("a", MaxBodyForTest) + `"}`
	tests := []struct {
		name, body, ctype string
		status            int
		field             string // for 422
	}{
		{"no data", `{}`, "application/json", 422, "data"},
		{"other fields only", `{"date":1}`, "application/json", 422, "data"},
		{"key without value", `{"data"}`, "application/json", 400, ""},
		{"missing value", `{"data":}`, "application/json", 400, ""},
		{"syntax", `{"data":[1,}`, "application/json", 400, ""},
		{"bare value", `"x"`, "application/json", 400, ""},
		{"array body", `[{"data":1}]`, "application/json", 400, ""},
		{"null body", `null`, "application/json", 400, ""},
		{"empty body", ``, "application/json", 400, ""},
		{"trailing garbage", `{"data":1} x`, "application/json", 400, ""},
		{"two objects", `{"data":1}{"data":2}`, "application/json", 400, ""},
		{"invalid UTF-8", "{\"data\":\"\xff\xfe\"}", "application/json", 400, ""},
		{"too deep", deep, "application/json", 400, ""},
		{"too large", big, "application/json", 413, ""},
		{"text", `{"data":1}`, "text/plain", 415, ""},
		{"form", `data=1`, "application/x-www-form-urlencoded", 415, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, m := range []struct{ method, url string }{{"POST", s.dataURL(u.ID)}, {"PUT", recURL}} {
				what := m.method + " " + tc.name
				r := do(t, m.method, m.url, tc.body, append([]string{"Content-Type", tc.ctype}, bearer(u.Token)...)...)
				if tc.status == 422 {
					wantValidation(t, what, r, tc.field)
				} else {
					wantProblem(t, what, r, tc.status)
				}
			}
		})
	}
	if r := do(t, "POST", s.dataURL(u.ID), okDeep, bearer(u.Token)...); r.Status != http.StatusCreated {
		t.Errorf("POST with 64 levels = %d %s, want 201", r.Status, r.Body)
	}
	if _, d := recordOf(t, "GET after bad bodies", do(t, "GET", recURL, nil, bearer(u.Token)...), http.StatusOK); string(d) != `"original"` {
		t.Errorf("after bad bodies data = %s, want unchanged", d)
	}
}

func testV1RecordAccess(t *testing.T, s *v1Server) {
	a, b := s.newUser(t), s.newUser(t)
	recID := mustRecord(t, s, a, `{"secret":"a's"}`)
	bRec := mustRecord(t, s, b, `{"secret":"b's"}`)
	recURL := s.dataURL(a.ID) + "/" + recID
	routes := []struct{ method, url, body string }{
		{"GET", s.dataURL(a.ID), ""},
		{"POST", s.dataURL(a.ID), `{"data":"planted"}`},
		{"GET", recURL, ""},
		{"PUT", recURL, `{"data":"overwritten"}`},
		{"DELETE", recURL, ""},
	}
	for _, rt := range routes {
		var body any
		if rt.body != "" {
			body = rt.body
		}
		what := rt.method + " " + strings.TrimPrefix(rt.url, s.URL)
		wantUnauthorized(t, what+" without a token", do(t, rt.method, rt.url, body))
		r := do(t, rt.method, rt.url, body, bearer(b.Token)...)
		if r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
			t.Errorf("%s with another user's token = %d %s, want 403 or 404", what, r.Status, r.Body)
		} else {
			wantProblem(t, what+" with another user's token", r, r.Status)
		}
	}
	// b's token on b's own path cannot reach a's record either.
	crossURL := s.dataURL(b.ID) + "/" + recID
	wantProblem(t, "GET a's record under b", do(t, "GET", crossURL, nil, bearer(b.Token)...), http.StatusNotFound)
	wantProblem(t, "PUT a's record under b", do(t, "PUT", crossURL, `{"data":"overwritten"}`, bearer(b.Token)...), http.StatusNotFound)
	wantProblem(t, "DELETE a's record under b", do(t, "DELETE", crossURL, nil, bearer(b.Token)...), http.StatusNotFound)
	// Nor does a's token reach b's record through a's path.
	wantProblem(t, "GET b's record under a", do(t, "GET", s.dataURL(a.ID)+"/"+bRec, nil, bearer(a.Token)...), http.StatusNotFound)

	if _, d := recordOf(t, "GET own record", do(t, "GET", recURL, nil, bearer(a.Token)...), http.StatusOK); !sameJSON(t, d, []byte(`{"secret":"a's"}`)) {
		t.Errorf("a's record = %s after others' attempts, want unchanged", d)
	}
	if p := getPage(t, s.dataURL(a.ID), a.Token); len(p.Items) != 1 {
		t.Errorf("a has %d records after others' attempts, want 1", len(p.Items))
	}
}

func testV1Pagination(t *testing.T, s *v1Server) {
	u := s.newUser(t)
	empty := getPage(t, s.dataURL(u.ID), u.Token)
	if len(empty.Items) != 0 || empty.NextCursor != nil {
		t.Errorf("empty list = %+v, want no items and a null next_cursor", empty)
	}
	const n = 25
	ids := make([]string, n) // oldest first
	for i := range n {
		ids[i] = mustRecord(t, s, u, fmt.Sprintf(`{"i":%d}`, i))
	}
	newestFirst := slices.Clone(ids)
	slices.Reverse(newestFirst)

	first := getPage(t, s.dataURL(u.ID), u.Token)
	if len(first.Items) != 20 || first.NextCursor == nil {
		t.Fatalf("default page: %d items, next_cursor %v; want 20 and a cursor", len(first.Items), first.NextCursor)
	}
	for i := 1; i < len(first.Items); i++ {
		if first.Items[i].CreatedAt.After(first.Items[i-1].CreatedAt) {
			t.Errorf("item %d is newer than item %d", i, i-1)
		}
	}
	for _, limit := range []int{1, 7, 20, 24, 25, 26, 100} {
		var got []string
		cursor, pages := "", 0
		for {
			url := fmt.Sprintf("%s?limit=%d", s.dataURL(u.ID), limit)
			if cursor != "" {
				url += "&cursor=" + cursor
			}
			p := getPage(t, url, u.Token)
			pages++
			if len(p.Items) > limit || (p.NextCursor != nil && len(p.Items) != limit) {
				t.Fatalf("limit %d: page %d has %d items, next_cursor %v", limit, pages, len(p.Items), p.NextCursor)
			}
			for _, it := range p.Items {
				if it.UserID != u.ID {
					t.Errorf("limit %d: item of user %s", limit, it.UserID)
				}
				got = append(got, it.ID)
			}
			if p.NextCursor == nil {
				break
			}
			cursor = *p.NextCursor
			if pages > n+1 {
				t.Fatalf("limit %d: more than %d pages", limit, pages)
			}
		}
		if !slices.Equal(got, newestFirst) {
			t.Errorf("limit %d: ids = %v, want all %d newest first %v", limit, got, n, newestFirst)
		}
		if want := (n + limit - 1) / limit; pages != want {
			t.Errorf("limit %d: %d pages, want %d (no empty last page)", limit, pages, want)
		}
	}

	for _, q := range []string{"limit=0", "limit=101", "limit=-1", "limit=x", "limit=", "limit=1.5", "limit=1e2", "limit=%205", "limit=99999999999999999999",
		"cursor=!!!", "cursor=abc", "cursor=" + base64.RawURLEncoding.EncodeToString(make([]byte, 15))} {
		wantProblem(t, "GET ?"+q, do(t, "GET", s.dataURL(u.ID)+"?"+q, nil, bearer(u.Token)...), http.StatusBadRequest)
	}
	// A cursor whose following records are all gone pages to an empty
	// last page, not to an error.
	p := getPage(t, s.dataURL(u.ID)+"?limit=24", u.Token)
	if p.NextCursor == nil {
		t.Fatal("limit 24 of 25: no next_cursor")
	}
	if r := do(t, "DELETE", s.dataURL(u.ID)+"/"+ids[0], nil, bearer(u.Token)...); r.Status != http.StatusNoContent {
		t.Fatalf("DELETE oldest = %d %s", r.Status, r.Body)
	}
	if last := getPage(t, s.dataURL(u.ID)+"?cursor="+*p.NextCursor, u.Token); len(last.Items) != 0 || last.NextCursor != nil {
		t.Errorf("page after the last record = %+v, want empty with a null next_cursor", last)
	}
}

// testV1PagingUnderInserts pages through a user's records while another
// client keeps adding records: every record that existed when paging began
// appears exactly once, in order.
func testV1PagingUnderInserts(t *testing.T, s *v1Server) {
	u := s.newUser(t)
	const n = 30
	existing := make(map[string]bool, n)
	for i := range n {
		existing[mustRecord(t, s, u, fmt.Sprintf(`{"before":%d}`, i))] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var inserted atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(ctx, "POST", s.dataURL(u.ID), strings.NewReader(fmt.Sprintf(`{"data":{"during":%d}}`, i)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+u.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("insert during paging: %v", err)
				}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				t.Errorf("insert during paging = %d, want 201", resp.StatusCode)
				return
			}
			inserted.Add(1)
		}
	}()
	// Let the inserter get going before the first page.
	for deadline := time.Now().Add(5 * time.Second); inserted.Load() < 3 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	seen := map[string]int{}
	var order []string
	cursor := ""
	for pages := 0; ; pages++ {
		url := s.dataURL(u.ID) + "?limit=4"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		p := getPage(t, url, u.Token)
		for _, it := range p.Items {
			seen[it.ID]++
			order = append(order, it.ID)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
	cancel()
	wg.Wait()
	for id, c := range seen {
		if c > 1 {
			t.Errorf("record %s listed %d times", id, c)
		}
	}
	for id := range existing {
		if seen[id] != 1 {
			t.Errorf("record %s that existed before paging was listed %d times, want once", id, seen[id])
		}
	}
	if !slices.IsSortedFunc(order, func(x, y string) int { return strings.Compare(y, x) }) {
		t.Errorf("paged ids are not newest first: %v", order)
	}
	t.Logf("%d records inserted while paging", inserted.Load())
}

func testV1MalformedIDs(t *testing.T, s *v1Server) {
	u := s.newUser(t)
	recID := mustRecord(t, s, u, `1`)
	bad := []string{"not-a-uuid", "123", strings.Repeat("a", 300), "0190f5a8-0000-7000-8000-00000000000g",
		"0190f5a8-0000-7000-8000-0000000000000", "0190f5a800007000800000000000000000", "%00", "%20", "%27%20OR%201=1",
		"{" + u.ID + "}", "urn:uuid:" + u.ID, "%E2%9C%93"}
	// check reports whether r is an acceptable answer to a malformed id: 404
	// or 400 as a problem, or 401/403 when the request lacks the right
	// token; never 500 and never success.
	check := func(t *testing.T, what string, r *response, allowed ...int) {
		t.Helper()
		if !slices.Contains(allowed, r.Status) {
			t.Errorf("%s = %d %s, want one of %v", what, r.Status, r.Body, allowed)
			return
		}
		wantProblem(t, what, r, r.Status)
	}
	for _, id := range bad {
		for _, tok := range []string{"", u.Token} {
			var h []string
			who := "anonymous"
			if tok != "" {
				h, who = bearer(tok), "with a token"
			}
			users := s.URL + "/api/v1/users/" + id
			check(t, "GET "+users+" "+who, do(t, "GET", users, nil, h...), 400, 404)
			writeAllowed := []int{400, 401, 403, 404}
			dataAllowed := []int{400, 401, 404}
			if tok != "" {
				writeAllowed = []int{400, 403, 404}
				dataAllowed = []int{400, 403, 404}
			}
			check(t, "PUT "+users+" "+who, do(t, "PUT", users, `{"profile":{"name":"x"}}`, h...), writeAllowed...)
			check(t, "DELETE "+users+" "+who, do(t, "DELETE", users, nil, h...), writeAllowed...)
			check(t, "GET "+users+"/data "+who, do(t, "GET", users+"/data", nil, h...), dataAllowed...)
			check(t, "POST "+users+"/data "+who, do(t, "POST", users+"/data", `{"data":1}`, h...), dataAllowed...)
			check(t, "GET "+users+"/data/{id} "+who, do(t, "GET", users+"/data/"+recID, nil, h...), dataAllowed...)
			rec := s.dataURL(u.ID) + "/" + id
			recAllowed := []int{400, 404}
			if tok == "" {
				recAllowed = []int{401}
			}
			check(t, "GET "+rec+" "+who, do(t, "GET", rec, nil, h...), recAllowed...)
			check(t, "PUT "+rec+" "+who, do(t, "PUT", rec, `{"data":1}`, h...), recAllowed...)
			check(t, "DELETE "+rec+" "+who, do(t, "DELETE", rec, nil, h...), recAllowed...)
		}
	}
	// Upper-case hex names the same ids.
	if r := do(t, "GET", s.dataURL(strings.ToUpper(u.ID))+"/"+strings.ToUpper(recID), nil, bearer(u.Token)...); r.Status != http.StatusOK {
		t.Errorf("GET record by upper-case ids = %d %s, want 200", r.Status, r.Body)
	}
	if p := getPage(t, s.dataURL(u.ID), u.Token); len(p.Items) != 1 {
		t.Errorf("after malformed requests the user has %d records, want 1", len(p.Items))
	}
}

func testV1Routing(t *testing.T, s *v1Server) {
	u := s.newUser(t)
	for _, c := range []struct{ method, path string }{
		{"PATCH", "/api/v1/users/" + u.ID},
		{"POST", "/api/v1/users/" + u.ID},
		{"DELETE", "/api/v1/users"},
		{"GET", "/api/v1/auth/token"},
		{"DELETE", "/api/v1/users/" + u.ID + "/data"},
		{"POST", "/api/v1/users/" + u.ID + "/data/" + mustRecord(t, s, u, `1`)},
	} {
		r := do(t, c.method, s.URL+c.path, nil, bearer(u.Token)...)
		wantProblem(t, c.method+" "+c.path, r, http.StatusMethodNotAllowed)
		if r.Header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", c.method, c.path)
		}
	}
	wantProblem(t, "unknown v1 route", do(t, "GET", s.URL+"/api/v1/nope", nil), http.StatusNotFound)
	wantProblem(t, "unknown v1 sub-resource", do(t, "GET", s.userURL(u.ID)+"/friends", nil, bearer(u.Token)...), http.StatusNotFound)
}

func TestV1RateLimits(t *testing.T) {
	t.Parallel()
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			t.Run("requests", func(t *testing.T) {
				t.Parallel()
				testV1RequestLimits(t, startV1Server(t, "--db", dsn(t), "--rate-limit", "5"))
			})
			t.Run("logins", func(t *testing.T) {
				t.Parallel()
				// Trusting the test's own address as a proxy lets each
				// case act as a client of its own through X-Forwarded-For.
				testV1LoginLimits(t, startV1Server(t, "--db", dsn(t), "--login-limit", "3", "--trusted-proxy", "127.0.0.1"))
			})
		})
	}
}

// wantLimited checks a 429 and its headers and returns Retry-After.
func wantLimited(t testing.TB, what string, r *response) time.Duration {
	t.Helper()
	wantProblem(t, what, r, http.StatusTooManyRequests)
	retry, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || retry < 1 {
		t.Errorf("%s: Retry-After = %q, want whole seconds >= 1", what, r.Header.Get("Retry-After"))
	}
	wantRateHeaders(t, what, r)
	wantHeader(t, what, r, "RateLimit-Remaining", "0")
	return time.Duration(retry) * time.Second
}

// wantRateHeaders checks that r carries the RateLimit-* headers and returns
// RateLimit-Limit and RateLimit-Remaining.
func wantRateHeaders(t testing.TB, what string, r *response) (limit, remaining int) {
	t.Helper()
	for _, k := range []string{"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} {
		v, err := strconv.Atoi(r.Header.Get(k))
		if err != nil || v < 0 {
			t.Errorf("%s: %s = %q, want a non-negative integer", what, k, r.Header.Get(k))
		}
		switch k {
		case "RateLimit-Limit":
			limit = v
		case "RateLimit-Remaining":
			remaining = v
		}
	}
	return limit, remaining
}

// burst sends requests until one is refused and returns how many passed and
// the refusal; it fails the test if none is refused within max.
func burst(t *testing.T, what string, max int, send func() *response) (int, *response) {
	t.Helper()
	for i := 0; i < max; i++ {
		r := send()
		if r.Status == http.StatusTooManyRequests {
			return i, r
		}
		if r.Status >= 400 && r.Status != http.StatusUnprocessableEntity {
			t.Fatalf("%s: request %d = %d %s", what, i, r.Status, r.Body)
		}
	}
	t.Fatalf("%s: no 429 within %d requests", what, max)
	return 0, nil
}

// testV1RequestLimits runs against --rate-limit 5: a burst of 10 per token
// and per address, and 2/s with a burst of 4 for anonymous reads.
func testV1RequestLimits(t *testing.T, s *v1Server) {
	// Two sign-ups and two token requests spend 4 of the address's 10.
	a, b := s.newUser(t), s.newUser(t)

	r := do(t, "GET", s.userURL(a.ID), nil, bearer(a.Token)...)
	if r.Status != http.StatusOK {
		t.Fatalf("GET self = %d %s", r.Status, r.Body)
	}
	if limit, remaining := wantRateHeaders(t, "GET self", r); limit != 10 || remaining != 9 {
		t.Errorf("GET self: RateLimit-Limit %d, Remaining %d; want 10 and 9 (burst 2×5)", limit, remaining)
	}

	t.Run("per token", func(t *testing.T) {
		passed, refused := burst(t, "GET with a's token", 40, func() *response {
			return do(t, "GET", s.userURL(b.ID), nil, bearer(a.Token)...)
		})
		// 9 at once; a slow machine may see a few refill (one per 200ms).
		if passed < 9 || passed > 14 {
			t.Errorf("a's token: %d more requests passed after the first, want 9 (burst 10, refill 5/s)", passed)
		}
		wantLimited(t, "a's token over budget", refused)
		// Data routes share the budget; the refusal comes before the handler.
		wantLimited(t, "POST data over budget", do(t, "POST", s.dataURL(a.ID), `{"data":1}`, bearer(a.Token)...))
		// Another user's token has its own budget.
		if r := do(t, "GET", s.userURL(a.ID), nil, bearer(b.Token)...); r.Status != http.StatusOK {
			t.Errorf("GET with b's token while a is limited = %d %s, want 200", r.Status, r.Body)
		}
		// A fresh token of the same user buys no fresh budget.
		fresh := mustToken(t, s.URL, a.Username, a.Password)
		wantLimited(t, "a's second token", do(t, "GET", s.userURL(b.ID), nil, bearer(fresh)...))
	})

	t.Run("anonymous reads", func(t *testing.T) {
		i := 0
		passed, refused := burst(t, "anonymous GET", 20, func() *response {
			// X-Forwarded-For from an untrusted peer must not pick the key.
			i++
			return do(t, "GET", s.userURL(a.ID), nil, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		})
		if passed < 4 || passed > 6 {
			t.Errorf("anonymous reads: %d passed, want 4 (their own budget: 2/s, burst 4)", passed)
		}
		retry := wantLimited(t, "anonymous GET over budget", refused)
		if limit, _ := wantRateHeaders(t, "anonymous 429", refused); limit >= 10 {
			t.Errorf("anonymous reads: RateLimit-Limit %d, want a stricter budget than the token's 10", limit)
		}
		// Tokens and anonymous writes have budgets of their own.
		if r := do(t, "GET", s.userURL(a.ID), nil, bearer(b.Token)...); r.Status != http.StatusOK {
			t.Errorf("GET with a token while anonymous reads are limited = %d, want 200", r.Status)
		}
		wantValidation(t, "anonymous sign-up while anonymous reads are limited", do(t, "POST", s.URL+"/api/v1/users", map[string]any{}))
		time.Sleep(retry)
		if r := do(t, "GET", s.userURL(a.ID), nil); r.Status != http.StatusOK {
			t.Errorf("anonymous GET after Retry-After = %d %s, want 200", r.Status, r.Body)
		}
	})

	t.Run("anonymous writes", func(t *testing.T) {
		_, refused := burst(t, "anonymous POST", 30, func() *response {
			return do(t, "POST", s.URL+"/api/v1/users", map[string]any{})
		})
		wantLimited(t, "anonymous POST over budget", refused)
		wantLimited(t, "token request over budget", do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{"login": a.Username, "password": a.Password}))
	})
}

// testV1LoginLimits runs against --login-limit 3, with 127.0.0.1 trusted to
// forward client addresses.
func testV1LoginLimits(t *testing.T, s *v1Server) {
	from := func(addr string) []string { return []string{"X-Forwarded-For", addr} }
	login := func(login, password, addr string) *response {
		return do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{"login": login, "password": password}, from(addr)...)
	}
	a, b := s.newUser(t), s.newUser(t)

	t.Run("successes are free", func(t *testing.T) {
		for range 6 {
			mustToken(t, s.URL, a.Username, a.Password, from("198.51.100.1")...)
		}
	})

	t.Run("per login and address", func(t *testing.T) {
		// Three failures for a's login from one address use up the budget
		// of that (login, address): the fourth attempt from there is
		// refused before the password is checked, even with the right one.
		const attacker = "198.51.100.10"
		for range 3 {
			wantUnauthorized(t, "wrong password", login(a.Username, "wrong password", attacker))
		}
		retry := wantLimited(t, "right password from the limited address", login(a.Username, a.Password, attacker))
		if retry < 2*time.Second || retry > time.Minute {
			t.Errorf("Retry-After = %v, want about 20s (3 failures a minute)", retry)
		}
		// No lockout: failures elsewhere never stop the owner with the
		// right password from a fresh address, by username or by email.
		for i := range 3 {
			wantUnauthorized(t, "wrong password from another address", login(a.Username, "wrong password", fmt.Sprintf("198.51.100.%d", 30+i)))
		}
		if r := login(a.Username, a.Password, "198.51.100.13"); r.Status != http.StatusOK {
			t.Errorf("a's right password from a fresh address after failures elsewhere = %d %s, want 200", r.Status, r.Body)
		}
		// No oracle: the email does not share the username's budget, so a
		// limited username says nothing of which email is its.
		if r := login(a.Email, a.Password, "198.51.100.16"); r.Status != http.StatusOK {
			t.Errorf("a's email while the username is limited at %s = %d %s, want 200", attacker, r.Status, r.Body)
		}
		// Other logins from fresh addresses are not affected.
		if r := login(b.Username, b.Password, "198.51.100.15"); r.Status != http.StatusOK {
			t.Errorf("b's login while a's is limited = %d %s, want 200", r.Status, r.Body)
		}
		// Tokens issued before still work.
		if r := do(t, "GET", s.userURL(a.ID), nil, bearer(a.Token)...); r.Status != http.StatusOK {
			t.Errorf("a's existing token while a's login is limited = %d, want 200", r.Status)
		}
	})

	t.Run("per address", func(t *testing.T) {
		const addr = "198.51.100.20"
		for i := range 3 {
			wantUnauthorized(t, "unknown login", login(fmt.Sprintf("nobody_%d", i), "whatever password", addr))
		}
		wantLimited(t, "b's right password from a limited address", login(b.Username, b.Password, addr))
		if r := login(b.Username, b.Password, "198.51.100.21"); r.Status != http.StatusOK {
			t.Errorf("b's login from another address = %d %s, want 200", r.Status, r.Body)
		}
	})
}

// TestV1TokenExpiry waits for real tokens to expire: --token-ttl sets
// expires_in, and a token is refused once that has passed (plus less than a
// second, as exp rounds up to whole seconds), never downgraded.
func TestV1TokenExpiry(t *testing.T) {
	t.Parallel()
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := startV1Server(t, "--db", dsn(t), "--token-ttl", "1s")
			u := s.newUser(t)
			r := do(t, "POST", s.URL+"/api/v1/auth/token", map[string]any{"login": u.Username, "password": u.Password})
			if tok := wantJSON(t, "token", r, http.StatusOK); tok["expires_in"] != float64(1) {
				t.Errorf("expires_in = %v, want 1 (--token-ttl 1s)", tok["expires_in"])
			}
			if r := do(t, "GET", s.userURL(u.ID), nil, bearer(u.Token)...); r.Status != http.StatusOK {
				t.Fatalf("GET self with a fresh 1s token = %d %s", r.Status, r.Body)
			}
			time.Sleep(2 * time.Second)
			wantUnauthorized(t, "GET with an expired token", do(t, "GET", s.userURL(u.ID), nil, bearer(u.Token)...))
			wantUnauthorized(t, "GET data with an expired token", do(t, "GET", s.dataURL(u.ID), nil, bearer(u.Token)...))
		})
	}
}
