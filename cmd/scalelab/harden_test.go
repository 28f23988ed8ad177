package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A server serves one API surface: the default is /api/v1 alone, so the
// unauthenticated /api/users routes cannot change a /api/v1 account; and
// --api users serves nothing of /api/v1.
func TestOneAPISurfacePerServer(t *testing.T) {
	t.Parallel()
	v1 := startV1Server(t, "--db", "sqlite:"+t.TempDir()+"/v1.db")
	u := v1.newUser(t)
	for _, c := range []struct {
		method string
		body   any
	}{{"GET", nil}, {"PUT", map[string]any{"password": "taken over by anyone"}}, {"DELETE", nil}} {
		wantProblem(t, c.method+" /api/users/{id} on a default server",
			do(t, c.method, v1.URL+"/api/users/"+u.ID, c.body), http.StatusNotFound)
	}
	wantProblem(t, "POST /api/users on a default server", do(t, "POST", v1.URL+"/api/users", newUserBody(1)), http.StatusNotFound)
	mustToken(t, v1.URL, u.Username, u.Password) // the password is unchanged

	users := startServer(t, "--api", "users", "--db", "sqlite:"+t.TempDir()+"/users.db")
	created := mustCreate(t, users.URL, newUserBody(2))
	wantProblem(t, "POST /api/v1/users on --api users", do(t, "POST", users.URL+"/api/v1/users", newUserBody(3)), http.StatusNotFound)
	wantProblem(t, "GET /api/v1/users/{id} on --api users", do(t, "GET", users.URL+"/api/v1/users/"+created["id"].(string), nil), http.StatusNotFound)
}

// The unauthenticated API refuses an address other machines can reach,
// and says why, unless --insecure-listen.
func TestUsersAPIRefusesNonLoopbackAddress(t *testing.T) {
	t.Parallel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		var stderr strings.Builder
		err := run(context.Background(), []string{"server", "--api", "users", "--addr", addr, "--db", "sqlite:" + t.TempDir() + "/x.db"},
			func(string) string { return "" }, io.Discard, &stderr)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("server --api users --addr %s = %v, want exit status 2", addr, err)
			continue
		}
		if !strings.Contains(ee.msg, "no authentication") || !strings.Contains(ee.msg, "--insecure-listen") {
			t.Errorf("refusal of --addr %s = %q, want it to say that the API has no authentication and name --insecure-listen", addr, ee.msg)
		}
	}
	var stderr strings.Builder
	err := run(context.Background(), []string{"server", "--api", "both"}, func(string) string { return "" }, io.Discard, &stderr)
	if ee := (*exitError)(nil); !errors.As(err, &ee) || ee.code != 2 {
		t.Errorf("server --api both = %v, want exit status 2", err)
	}
}

// Every response carries nosniff, errors and health checks included; every
// response with personal data is private or no-store; /metrics is not on
// the API port; a body without Content-Type is 415.
func TestResponseHeadersAndOperations(t *testing.T) {
	t.Parallel()
	for _, api := range []string{"v1", "users"} {
		t.Run(api, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, "--api", api, "--token-secret", testTokenSecret, "--db", "sqlite:"+t.TempDir()+"/h.db")
			base := s.URL + "/api/users"
			if api == "v1" {
				base = s.URL + "/api/v1/users"
			}
			r := do(t, "POST", base, newUserBody(1))
			if r.Status != http.StatusCreated {
				t.Fatalf("POST %s = %d %s", base, r.Status, r.Body)
			}
			id := r.json(t)["id"].(string)
			var h []string
			if api == "v1" {
				h = bearer(mustToken(t, s.URL, "ada_1", "correct horse battery"))
			}
			personal := map[string]*response{
				"sign-up":  r,
				"GET self": do(t, "GET", base+"/"+id, nil, h...),
				"PUT self": do(t, "PUT", base+"/"+id, map[string]any{"profile": map[string]any{"name": "x"}}, h...),
			}
			for what, r := range personal {
				if r.Status >= 300 {
					t.Errorf("%s = %d %s", what, r.Status, r.Body)
				}
				if cc := r.Header.Get("Cache-Control"); cc != "private" && cc != "no-store" {
					t.Errorf("%s: Cache-Control = %q, want private or no-store (it carries the email)", what, cc)
				}
			}
			noCT, err := http.NewRequest("PUT", base+"/"+id, strings.NewReader(`{"profile":{"name":"y"}}`))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+1 < len(h); i += 2 {
				noCT.Header.Set(h[i], h[i+1])
			}
			all := map[string]*response{
				"404":                     do(t, "GET", s.URL+"/nope", nil),
				"405":                     do(t, "PATCH", base+"/"+id, `{}`),
				"413":                     do(t, "POST", base, strings.Repeat(" ", 2<<20)),
				"415 without a type":      send(t, noCT),
				"healthz":                 do(t, "GET", s.URL+"/healthz", nil),
				"readyz":                  do(t, "GET", s.URL+"/readyz", nil),
				"/metrics on the API":     do(t, "GET", s.URL+"/metrics", nil),
				"metrics on its listener": do(t, "GET", s.MetricsURL+"/metrics", nil),
				"pprof on the API":        do(t, "GET", s.URL+"/debug/pprof/", nil),
				"pprof on its listener":   do(t, "GET", s.MetricsURL+"/debug/pprof/heap", nil),
			}
			for what, r := range personal {
				all[what] = r
			}
			for what, r := range all {
				if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
					t.Errorf("%s: X-Content-Type-Options = %q, want nosniff", what, got)
				}
			}
			wantProblem(t, "405", all["405"], http.StatusMethodNotAllowed)
			wantProblem(t, "413", all["413"], http.StatusRequestEntityTooLarge)
			wantProblem(t, "PUT without Content-Type", all["415 without a type"], http.StatusUnsupportedMediaType)
			wantProblem(t, "/metrics on the API port", all["/metrics on the API"], http.StatusNotFound)
			if m := all["metrics on its listener"]; m.Status != http.StatusOK || !strings.Contains(string(m.Body), "scalelab_http_request_duration_seconds") {
				t.Errorf("GET /metrics on %s = %d, want the server's metrics", s.MetricsURL, m.Status)
			}
			wantProblem(t, "/debug/pprof/ on the API port", all["pprof on the API"], http.StatusNotFound)
			if p := all["pprof on its listener"]; p.Status != http.StatusOK || !bytes.HasPrefix(p.Body, []byte{0x1f, 0x8b}) {
				t.Errorf("GET /debug/pprof/heap on %s = %d, want a gzipped profile", s.MetricsURL, p.Status)
			}
			// One CPU profile at a time per process, and both subtests'
			// servers run in this one: only v1 asks for it.
			if api == "v1" {
				if p := do(t, "GET", s.MetricsURL+"/debug/pprof/profile?seconds=1", nil); p.Status != http.StatusOK || !bytes.HasPrefix(p.Body, []byte{0x1f, 0x8b}) {
					t.Errorf("GET /debug/pprof/profile on %s = %d %s, want a gzipped CPU profile", s.MetricsURL, p.Status, p.Body)
				}
			}
			if host, _, _ := net.SplitHostPort(strings.TrimPrefix(s.MetricsURL, "http://")); host != "127.0.0.1" {
				t.Errorf("metrics listener on %s, want loopback by default", s.MetricsURL)
			}
		})
	}
}

// send sends req and reads the response.
func send(t testing.TB, req *http.Request) *response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// slowRequest starts a PUT whose body arrives only when the returned
// function is called: until then its handler holds an in-flight slot, as
// a slow request would.
func slowRequest(t *testing.T, url string) (finish func() *response) {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest("PUT", url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	done := make(chan *response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- &response{Status: -1, Body: []byte(err.Error())}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- &response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	}()
	pw.Write([]byte(`{"profile":`)) // the handler is now reading the body
	return func() *response {
		pw.Write([]byte(`{"name":"slow"}}`))
		pw.Close()
		return <-done
	}
}

// Past its in-flight limit and queue time an instance answers 503 with
// Retry-After at once; health checks are never shed.
func TestOverloadIsShedFast(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--api", "users", "--db", "sqlite:"+t.TempDir()+"/o.db", "--max-inflight", "1", "--queue-timeout", "50ms")
	u := mustCreate(t, s.URL, newUserBody(1))
	url := s.URL + "/api/users/" + u["id"].(string)
	finish := slowRequest(t, url)
	// Wait until the slow request holds the slot.
	deadline := time.Now().Add(5 * time.Second)
	var r *response
	for {
		start := time.Now()
		r = do(t, "GET", url, nil)
		took := time.Since(start)
		if r.Status == http.StatusServiceUnavailable {
			if took > 2*time.Second {
				t.Errorf("shed GET took %v, want about the 50ms queue timeout", took)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET while the only slot is held = %d %s, want 503", r.Status, r.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	wantProblem(t, "shed GET", r, http.StatusServiceUnavailable)
	if r.Header.Get("Retry-After") != "1" {
		t.Errorf("shed GET: Retry-After = %q, want 1", r.Header.Get("Retry-After"))
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if h := do(t, "GET", s.URL+p, nil); h.Status != http.StatusOK {
			t.Errorf("GET %s while overloaded = %d %s, want 200: health checks are never shed", p, h.Status, h.Body)
		}
	}
	if m := do(t, "GET", s.MetricsURL+"/metrics", nil); !strings.Contains(string(m.Body), `scalelab_admission_shed_total{reason="queue_timeout"}`) {
		t.Errorf("metrics do not count the shed request")
	}
	if f := finish(); f.Status != http.StatusOK {
		t.Errorf("the slow PUT = %d %s, want 200", f.Status, f.Body)
	}
	if r := do(t, "GET", url, nil); r.Status != http.StatusOK {
		t.Errorf("GET after the slot was freed = %d %s, want 200", r.Status, r.Body)
	}
}

// --max-conns caps the connections served at once: one more waits until
// one closes.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--api", "users", "--db", "sqlite:"+t.TempDir()+"/c.db", "--max-conns", "1")
	addr := strings.TrimPrefix(s.URL, "http://")
	// startServer's health checks may still hold the one connection in
	// its idle pool: drop them first.
	http.DefaultClient.CloseIdleConnections()
	held, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(held, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
	buf := make([]byte, 512)
	if _, err := held.Read(buf); err != nil {
		t.Fatalf("read the held connection's answer: %v", err)
	}
	client := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := client.Get(s.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a second connection was served (%s) while --max-conns 1 was held", resp.Status)
	}
	held.Close()
	client.Timeout = 5 * time.Second
	resp, err := client.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz after the held connection closed: %v", err)
	}
	resp.Body.Close()
}

// A PostgreSQL pool size out of range is refused with a usage error that
// names the flag, before anything is opened.
func TestServerRefusesABadDBPool(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"-1", "10001"} {
		err := run(context.Background(), []string{"server", "--db-pool", v, "--db", "sqlite:" + t.TempDir() + "/x.db"},
			func(string) string { return "" }, io.Discard, io.Discard)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, "--db-pool "+v) {
			t.Errorf("server --db-pool %s = %v, want exit status 2 naming --db-pool", v, err)
		}
	}
}
