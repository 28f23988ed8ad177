package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"scalelab/server"
)

// testServer is a scalelab server started through the real run function on
// a free port.
type testServer struct {
	URL string
	// MetricsURL is the base URL of the metrics listener.
	MetricsURL string
	cancel     context.CancelFunc
	done       chan error
}

// cheapArgon makes sign-ups fast in tests; the server warns about it.
var cheapArgon = []string{"--argon2-memory", "64", "--argon2-time", "1"}

// startServer runs `scalelab server --addr 127.0.0.1:0 args...` and waits
// until /healthz answers. The server is stopped when the test ends.
func startServer(t testing.TB, args ...string) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &testServer{cancel: cancel, done: make(chan error, 1)}
	argv := append([]string{"server", "--addr", "127.0.0.1:0", "--log-level", "error"}, cheapArgon...)
	argv = append(argv, args...)
	go func() {
		err := run(ctx, argv, func(string) string { return "" }, pw, io.Discard)
		pw.CloseWithError(fmt.Errorf("server exited: %v", err))
		s.done <- err
	}()
	br := bufio.NewReader(pr)
	line, err := br.ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("server did not start: %v", err)
	}
	s.URL = strings.TrimSpace(line[strings.Index(line, "http://"):])
	if !slices.Contains(args, "--metrics-addr") {
		line, err := br.ReadString('\n')
		if err != nil || !strings.Contains(line, "metrics on http://") {
			cancel()
			t.Fatalf("server did not say where its metrics are: %q, %v", line, err)
		}
		s.MetricsURL = strings.TrimSuffix(strings.TrimSpace(line[strings.Index(line, "http://"):]), "/metrics")
	}
	go io.Copy(io.Discard, br)
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server at %s not healthy after 10s: %v", s.URL, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *testServer) stop(t testing.TB) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server exited with %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Errorf("server did not stop within 20s")
	}
}

// response is a decoded HTTP response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
	return m
}

// do sends a request with an optional JSON body (a string is sent as is).
func do(t testing.TB, method, url string, body any, header ...string) *response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// wantProblem checks that r is an RFC 9457 problem with the given status.
func wantProblem(t testing.TB, what string, r *response, status int) map[string]any {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status = %d, want %d; body %s", what, r.Status, status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type = %q, want application/problem+json", what, ct)
	}
	p := r.json(t)
	for _, k := range []string{"type", "title", "status", "detail"} {
		if _, ok := p[k]; !ok {
			t.Errorf("%s: problem has no %q: %s", what, k, r.Body)
		}
	}
	if got, _ := p["status"].(float64); int(got) != status {
		t.Errorf("%s: problem status = %v, want %d", what, p["status"], status)
	}
	return p
}

func newUserBody(i int) map[string]any {
	return map[string]any{
		"email":    fmt.Sprintf("ada%d@example.com", i),
		"username": fmt.Sprintf("ada_%d", i),
		"password": "correct horse battery",
		"profile":  map[string]any{"name": "Ada Lovelace", "avatar": "https://example.com/ada.png"},
	}
}

func mustCreate(t testing.TB, base string, body map[string]any) map[string]any {
	t.Helper()
	r := do(t, "POST", base+"/api/users", body)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /api/users = %d %s, want 201", r.Status, r.Body)
	}
	return r.json(t)
}

// storeDSNs returns the databases every contract test runs against.
func storeDSNs(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + t.TempDir() + "/test.db" },
		"postgres": func(t *testing.T) string { return postgresDSN(t) },
	}
}

func TestUnversionedAPI(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "--api", "users", "--db", dsn(t))
			t.Run("crud", func(t *testing.T) { testCRUD(t, s.URL) })
			t.Run("validation", func(t *testing.T) { testValidation(t, s.URL) })
			t.Run("malformed", func(t *testing.T) { testMalformed(t, s.URL) })
			t.Run("conflicts", func(t *testing.T) { testConflicts(t, s.URL) })
			t.Run("routing", func(t *testing.T) { testRouting(t, s.URL, s.MetricsURL) })
			t.Run("read-after-update", func(t *testing.T) { testReadAfterUpdate(t, s.URL) })
		})
	}
}

func testCRUD(t *testing.T, base string) {
	in := newUserBody(1)
	in["id"] = "00000000-0000-7000-8000-000000000000" // server-owned: ignored
	in["created_at"] = "2000-01-01T00:00:00Z"
	in["unknown_field"] = true
	r := do(t, "POST", base+"/api/users", in)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /api/users = %d %s, want 201", r.Status, r.Body)
	}
	if bytes.Contains(bytes.ToLower(r.Body), []byte("password")) {
		t.Errorf("created user body mentions a password: %s", r.Body)
	}
	u := r.json(t)
	id, _ := u["id"].(string)
	if !server.ValidID(id) || id[14] != '7' || id == in["id"] {
		t.Fatalf("id = %q, want a new lower-case UUIDv7", id)
	}
	if loc := r.Header.Get("Location"); loc != "/api/users/"+id {
		t.Errorf("Location = %q, want /api/users/%s", loc, id)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	for _, k := range []string{"created_at", "updated_at"} {
		ts, _ := u[k].(string)
		parsed, err := time.Parse(time.RFC3339, ts)
		if err != nil || !strings.HasSuffix(ts, "Z") || parsed.Year() == 2000 {
			t.Errorf("%s = %q, want a current RFC 3339 UTC time", k, ts)
		}
	}
	if u["email"] != in["email"] || u["username"] != in["username"] {
		t.Errorf("created = %v, want email and username of %v", u, in)
	}
	if p, _ := u["profile"].(map[string]any); p["name"] != "Ada Lovelace" || p["avatar"] != "https://example.com/ada.png" {
		t.Errorf("profile = %v", u["profile"])
	}

	got := do(t, "GET", base+"/api/users/"+id, nil)
	if got.Status != 200 {
		t.Fatalf("GET = %d %s", got.Status, got.Body)
	}
	if g := got.json(t); g["id"] != id || g["email"] != u["email"] || g["created_at"] != u["created_at"] {
		t.Errorf("GET = %v, want %v", g, u)
	}
	if bytes.Contains(bytes.ToLower(got.Body), []byte("password")) {
		t.Errorf("GET body mentions a password: %s", got.Body)
	}
	if etag := got.Header.Get("ETag"); etag == "" {
		t.Errorf("GET has no ETag")
	} else if nm := do(t, "GET", base+"/api/users/"+id, nil, "If-None-Match", etag); nm.Status != http.StatusNotModified {
		t.Errorf("GET with If-None-Match = %d, want 304", nm.Status)
	}

	time.Sleep(2 * time.Millisecond)
	up := do(t, "PUT", base+"/api/users/"+id, map[string]any{"profile": map[string]any{"name": "Countess"}, "updated_at": "2000-01-01T00:00:00Z"})
	if up.Status != 200 {
		t.Fatalf("PUT = %d %s", up.Status, up.Body)
	}
	uu := up.json(t)
	if p, _ := uu["profile"].(map[string]any); p["name"] != "Countess" || p["avatar"] != "https://example.com/ada.png" {
		t.Errorf("after PUT profile = %v, want name changed and avatar kept", uu["profile"])
	}
	if uu["email"] != u["email"] || uu["username"] != u["username"] || uu["created_at"] != u["created_at"] {
		t.Errorf("after PUT = %v, want absent fields kept from %v", uu, u)
	}
	before, _ := time.Parse(time.RFC3339, u["updated_at"].(string))
	after, _ := time.Parse(time.RFC3339, uu["updated_at"].(string))
	if !after.After(before) {
		t.Errorf("updated_at %v did not advance past %v", after, before)
	}
	if g := do(t, "GET", base+"/api/users/"+id, nil).json(t); g["updated_at"] != uu["updated_at"] {
		t.Errorf("GET after PUT = %v, want %v", g, uu)
	}
	up2 := do(t, "PUT", base+"/api/users/"+id, map[string]any{"email": "ADA.NEW@example.com", "password": "another long password"})
	if up2.Status != 200 || up2.json(t)["email"] != "ADA.NEW@example.com" {
		t.Errorf("PUT email = %d %s", up2.Status, up2.Body)
	}

	if d := do(t, "DELETE", base+"/api/users/"+id, nil); d.Status != http.StatusNoContent {
		t.Errorf("DELETE = %d %s, want 204", d.Status, d.Body)
	}
	wantProblem(t, "GET after DELETE", do(t, "GET", base+"/api/users/"+id, nil), 404)
	wantProblem(t, "DELETE after DELETE", do(t, "DELETE", base+"/api/users/"+id, nil), 404)
	wantProblem(t, "PUT after DELETE", do(t, "PUT", base+"/api/users/"+id, map[string]any{"profile": map[string]any{"name": "x"}}), 404)
}

func testValidation(t *testing.T, base string) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name  string
		patch map[string]any
		field string
	}{
		{"email without at", map[string]any{"email": "not-an-email"}, "email"},
		{"email with name", map[string]any{"email": "Ada <ada@example.com>"}, "email"},
		{"email empty", map[string]any{"email": ""}, "email"},
		{"username short", map[string]any{"username": "ab"}, "username"},
		{"username long", map[string]any{"username": long(101)}, "username"},
		{"username chars", map[string]any{"username": "ada lovelace"}, "username"},
		{"password short", map[string]any{"password": "1234567"}, "password"},
		{"password long", map[string]any{"password": long(1025)}, "password"},
		{"name long", map[string]any{"profile": map[string]any{"name": long(101)}}, "profile.name"},
		{"avatar scheme", map[string]any{"profile": map[string]any{"avatar": "ftp://example.com/a.png"}}, "profile.avatar"},
		{"avatar relative", map[string]any{"profile": map[string]any{"avatar": "/a.png"}}, "profile.avatar"},
		{"avatar long", map[string]any{"profile": map[string]any{"avatar": "https://example.com/" + long(2048)}}, "profile.avatar"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := newUserBody(1000 + i)
			for k, v := range tc.patch {
				body[k] = v
			}
			p := wantProblem(t, "POST", do(t, "POST", base+"/api/users", body), 422)
			if !hasFieldError(p, tc.field) {
				t.Errorf("errors = %v, want one for %q", p["errors"], tc.field)
			}
		})
	}
	t.Run("missing fields", func(t *testing.T) {
		p := wantProblem(t, "POST {}", do(t, "POST", base+"/api/users", map[string]any{}), 422)
		for _, f := range []string{"email", "username", "password"} {
			if !hasFieldError(p, f) {
				t.Errorf("errors = %v, want one for %q", p["errors"], f)
			}
		}
	})
	t.Run("limits accepted", func(t *testing.T) {
		body := newUserBody(1100)
		body["username"] = long(100)
		body["password"] = long(1024)
		body["profile"] = map[string]any{"name": strings.Repeat("é", 100), "avatar": "http://example.com/" + long(2048-len("http://example.com/"))}
		mustCreate(t, base, body)
	})
	t.Run("update", func(t *testing.T) {
		u := mustCreate(t, base, newUserBody(1200))
		p := wantProblem(t, "PUT bad email", do(t, "PUT", base+"/api/users/"+u["id"].(string), map[string]any{"email": "nope"}), 422)
		if !hasFieldError(p, "email") {
			t.Errorf("errors = %v, want email", p["errors"])
		}
		if g := do(t, "GET", base+"/api/users/"+u["id"].(string), nil).json(t); g["email"] != u["email"] {
			t.Errorf("after rejected PUT email = %v, want %v", g["email"], u["email"])
		}
	})
}

func hasFieldError(p map[string]any, field string) bool {
	errs, _ := p["errors"].([]any)
	for _, e := range errs {
		if m, _ := e.(map[string]any); m["field"] == field && m["message"] != "" {
			return true
		}
	}
	return false
}

func testMalformed(t *testing.T, base string) {
	u := mustCreate(t, base, newUserBody(2000))
	userURL := base + "/api/users/" + u["id"].(string)
	deep := strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65)
	okDeep := `{"x":` + strings.Repeat(`[`, 63) + strings.Repeat(`]`, 63) + `}`
	big := `{"email":"` + strings.Repeat("a", MaxBodyForTest) + `"}`
	tests := []struct {
		name   string
		method string
		url    string
		body   string
		ctype  string
		status int
	}{
		{"syntax", "POST", base + "/api/users", `{"email":`, "application/json", 400},
		{"trailing garbage", "POST", base + "/api/users", `{"email":"a@b.c"} x`, "application/json", 400},
		{"two objects", "POST", base + "/api/users", `{}{}`, "application/json", 400},
		{"wrong type", "POST", base + "/api/users", `{"email":5,"username":"abc","password":"12345678"}`, "application/json", 400},
		{"wrong profile type", "POST", base + "/api/users", `{"email":"a@b.c","username":"abc","password":"12345678","profile":"x"}`, "application/json", 400},
		{"array body", "POST", base + "/api/users", `[]`, "application/json", 400},
		{"empty body", "POST", base + "/api/users", ``, "application/json", 400},
		{"too deep", "POST", base + "/api/users", deep, "application/json", 400},
		{"too large", "POST", base + "/api/users", big, "application/json", 413},
		{"not json", "POST", base + "/api/users", `email=a@b.c`, "application/x-www-form-urlencoded", 415},
		{"text plain", "PUT", userURL, `{}`, "text/plain", 415},
		{"put wrong type", "PUT", userURL, `{"profile":{"name":7}}`, "application/json", 400},
		{"put too deep", "PUT", userURL, deep, "application/json", 400},
		{"put trailing garbage", "PUT", userURL, `{} ]`, "application/json", 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, tc.name, do(t, tc.method, tc.url, tc.body, "Content-Type", tc.ctype), tc.status)
		})
	}
	t.Run("deep but allowed", func(t *testing.T) {
		if r := do(t, "PUT", userURL, okDeep); r.Status != 200 {
			t.Errorf("PUT with 64 levels = %d %s, want 200", r.Status, r.Body)
		}
	})
	if g := do(t, "GET", userURL, nil).json(t); g["email"] != u["email"] {
		t.Errorf("after bad requests user = %v, want unchanged %v", g, u)
	}
}

// MaxBodyForTest is a string length that pushes a body past 1 MiB.
const MaxBodyForTest = 1<<20 + 10

func testConflicts(t *testing.T, base string) {
	u := mustCreate(t, base, newUserBody(3000))
	dupEmail := newUserBody(3001)
	dupEmail["email"] = strings.ToUpper(u["email"].(string))
	wantProblem(t, "duplicate email in other case", do(t, "POST", base+"/api/users", dupEmail), 409)
	dupName := newUserBody(3002)
	dupName["username"] = strings.ToUpper(u["username"].(string))
	wantProblem(t, "duplicate username in other case", do(t, "POST", base+"/api/users", dupName), 409)
	other := mustCreate(t, base, newUserBody(3003))
	wantProblem(t, "PUT to a taken email", do(t, "PUT", base+"/api/users/"+other["id"].(string), map[string]any{"email": u["email"]}), 409)

	const n = 12
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := newUserBody(3100 + i)
			body["email"] = "race@example.com"
			statuses[i] = do(t, "POST", base+"/api/users", body).Status
		}()
	}
	wg.Wait()
	created, conflicts := 0, 0
	for _, s := range statuses {
		switch s {
		case 201:
			created++
		case 409:
			conflicts++
		}
	}
	if created != 1 || conflicts != n-1 {
		t.Errorf("concurrent sign-ups with one email: statuses %v, want one 201 and %d 409", statuses, n-1)
	}
}

func testRouting(t *testing.T, base, metrics string) {
	u := mustCreate(t, base, newUserBody(4000))
	id := u["id"].(string)
	wantProblem(t, "unknown id", do(t, "GET", base+"/api/users/0190f5a8-0000-7000-8000-000000000000", nil), 404)
	wantProblem(t, "malformed id", do(t, "GET", base+"/api/users/not-a-uuid", nil), 404)
	wantProblem(t, "malformed id delete", do(t, "DELETE", base+"/api/users/123", nil), 404)
	wantProblem(t, "unknown route", do(t, "GET", base+"/nope", nil), 404)
	r := wantProblem(t, "PATCH", do(t, "PATCH", base+"/api/users/"+id, `{}`), 405)
	_ = r
	if allow := do(t, "PATCH", base+"/api/users/"+id, `{}`).Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "PUT") {
		t.Errorf("405 Allow = %q, want GET, PUT, DELETE", allow)
	}
	wantProblem(t, "POST on item", do(t, "POST", base+"/api/users/"+id, `{}`), 405)
	wantProblem(t, "GET on collection", do(t, "GET", base+"/api/users", nil), 405)
	if r := do(t, "GET", base+"/api/users/"+strings.ToUpper(id), nil); r.Status != 200 {
		t.Errorf("GET with upper-case id = %d, want 200", r.Status)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := do(t, "GET", base+p, nil); r.Status != 200 {
			t.Errorf("GET %s = %d %s", p, r.Status, r.Body)
		}
	}
	m := do(t, "GET", metrics+"/metrics", nil)
	if m.Status != 200 || !bytes.Contains(m.Body, []byte("scalelab_http_request_duration_seconds")) {
		t.Errorf("GET /metrics on the metrics listener = %d, want request duration histograms", m.Status)
	}
}

// testReadAfterUpdate proves that with L1 on, a read after an update never
// returns the old value, while other readers keep the key hot.
func testReadAfterUpdate(t *testing.T, base string) {
	u := mustCreate(t, base, newUserBody(5000))
	url := base + "/api/users/" + u["id"].(string)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				resp, err := http.Get(url)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	for i := range 50 {
		name := fmt.Sprintf("name %d", i)
		if r := do(t, "PUT", url, map[string]any{"profile": map[string]any{"name": name}}); r.Status != 200 {
			t.Fatalf("PUT = %d %s", r.Status, r.Body)
		}
		g := do(t, "GET", url, nil).json(t)
		if p, _ := g["profile"].(map[string]any); p["name"] != name {
			t.Fatalf("GET right after PUT %d: name = %v, want %q (stale read)", i, p["name"], name)
		}
	}
}

func TestDrainFailsReadyz(t *testing.T) {
	s := startServer(t, "--db", "sqlite:"+t.TempDir()+"/drain.db", "--drain-delay", "1s")
	s.cancel()
	deadline := time.Now().Add(900 * time.Millisecond)
	var last int
	for time.Now().Before(deadline) {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			break
		}
		resp.Body.Close()
		last = resp.StatusCode
		if last == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if last != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining = %d, want 503", last)
	}
	if err := <-s.done; err != nil {
		t.Errorf("server exited with %v", err)
	}
	s.cancel = nil
}
