package lab

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"scalelab/loadgen"
	"scalelab/scenarios"
	"scalelab/server"
	"scalelab/server/app"
)

func TestDriverNeedsAuth(t *testing.T) {
	tests := []struct {
		api  string
		ops  []scenarios.Op
		auth bool
	}{
		{"/api/users", []scenarios.Op{scenarios.OpGetUser, scenarios.OpUpdateUser, scenarios.OpCreateUser, scenarios.OpReadAfterWrite}, false},
		{"/api/v1/users", []scenarios.Op{scenarios.OpGetUser, scenarios.OpCreateUser}, false},
		{"/api/v1/users", []scenarios.Op{scenarios.OpGetUser, scenarios.OpUpdateUser}, true},
		{"/api/v1/users", []scenarios.Op{scenarios.OpReadAfterWrite}, true},
		{"/api/users", []scenarios.Op{scenarios.OpCreateRecord}, true},
		{"/api/v1/users", []scenarios.Op{scenarios.OpListRecords}, true},
	}
	for _, tt := range tests {
		sc := &scenarios.Scenario{}
		for _, op := range tt.ops {
			sc.Mix = append(sc.Mix, scenarios.WeightedOp{Op: op, Weight: 1})
		}
		d := newDriver(sc, tt.api, 10, "tag")
		if d.auth != tt.auth || d.v1 != (tt.api == "/api/v1/users") {
			t.Errorf("newDriver(%s, %v): auth %v, v1 %v; want auth %v", tt.api, tt.ops, d.auth, d.v1, tt.auth)
		}
	}
}

func TestDriverOps(t *testing.T) {
	sc := &scenarios.Scenario{}
	for i, op := range scenarios.Ops() {
		sc.Mix = append(sc.Mix, scenarios.WeightedOp{Op: op, Weight: i + 1})
	}
	ops, err := newDriver(sc, "/api/v1/users", 10, "tag").ops(sc)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != len(sc.Mix) {
		t.Fatalf("%d ops for a mix of %d", len(ops), len(sc.Mix))
	}
	for i, op := range ops {
		if op.Name != string(sc.Mix[i].Op) || op.Weight != sc.Mix[i].Weight || op.Do == nil {
			t.Errorf("op %d = %s weight %d, want %s weight %d", i, op.Name, op.Weight, sc.Mix[i].Op, sc.Mix[i].Weight)
		}
	}
	bad := &scenarios.Scenario{Mix: scenarios.Mix{{Op: "delete-user", Weight: 1}}}
	if _, err := newDriver(bad, "/api/users", 10, "tag").ops(bad); err == nil || !strings.Contains(err.Error(), `"delete-user"`) {
		t.Errorf("ops(delete-user) = %v, want an error naming it", err)
	}
}

// request is what the recording proxy saw.
type request struct {
	method, path string
	token        bool
	status       int
}

// startServer runs the reference server in-process on SQLite with users
// seeded users, behind a proxy that records every request.
func startServer(t *testing.T, users int) (target string, seen func() []request) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db := "sqlite:" + filepath.Join(t.TempDir(), "lab.db")
	fs, cfg := app.FlagSet("server")
	if err := fs.Parse([]string{"--addr=127.0.0.1:0", "--db=" + db, "--log-level=error"}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	store, err := app.OpenStore(ctx, app.StoreOptions{DSN: db, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SeedUsers(ctx, store, users, io.Discard, log); err != nil {
		t.Fatal(err)
	}
	store.Close()
	s, err := app.New(ctx, *cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("server: %v", err)
		}
	})

	u, err := url.Parse(s.URL())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		reqs []request
	)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(resp *http.Response) error {
		r := resp.Request
		mu.Lock()
		reqs = append(reqs, request{r.Method, r.URL.Path, r.Header.Get("Authorization") != "", resp.StatusCode})
		mu.Unlock()
		return nil
	}
	ps := httptest.NewServer(proxy)
	t.Cleanup(ps.Close)
	return ps.URL, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), reqs...)
	}
}

// The driver against the real server (API v1): every operation of the mix
// runs without an error, which also means each write went to its client's
// own user (the server answers 403 otherwise); anonymous reads pick users
// by the scenario's key distribution; read-after-write checks what it
// reads.
func TestDriverAgainstServer(t *testing.T) {
	const users = 20
	target, seen := startServer(t, users)
	sc, err := scenarios.Parse("test.yaml", []byte(`
name: all-ops
executor: {type: constant-arrival-rate, rate: 200}
duration: 1s
users: 20
max_workers: 8
mix:
  - {op: get-user, weight: 4}
  - {op: update-user, weight: 1}
  - {op: read-after-write, weight: 1}
  - {op: create-user, weight: 1}
  - {op: create-record, weight: 1}
  - {op: list-records, weight: 1}
  - {op: get-record, weight: 1}
keys: {distribution: hotspot, hot_keys: 1, hot_op_fraction: 0.9}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := newDriver(sc, "/api/v1/users", users, "drivertest")
	if err := d.signIn(ctx, target, sc.MaxWorkers); err != nil {
		t.Fatal(err)
	}
	if len(d.tokens) != sc.MaxWorkers {
		t.Fatalf("signed in %d clients, want %d", len(d.tokens), sc.MaxWorkers)
	}
	ops, err := d.ops(sc)
	if err != nil {
		t.Fatal(err)
	}
	before := len(seen())
	lr, err := loadgen.Run(ctx, loadgen.Config{
		Target: target, Ops: ops, Seed: 3, Setup: d.setup, Timeout: 10 * time.Second,
		Executor: loadgen.ConstantArrivalRate{Rate: 200, Duration: time.Second, Pool: loadgen.Pool{MaxWorkers: sc.MaxWorkers}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if lr.Total.Errors != 0 {
		t.Errorf("%d errors: %v", lr.Total.Errors, lr.ErrorsByClass)
	}
	for _, st := range lr.Operations {
		if st.Count == 0 {
			t.Errorf("operation %s never ran", st.Name)
		}
	}
	if lr.Counters["reads_after_write"] == 0 || lr.Counters["stale_reads"] != 0 {
		t.Errorf("counters %v, want reads after write and no stale reads (one process)", lr.Counters)
	}

	seeded := map[string]int{}
	for i := range users {
		seeded[server.SeedUserID(i)] = i
	}
	owners := map[string]bool{}
	for i := range d.tokens {
		owners[server.SeedUserID(i)] = true
	}
	var reads, hot, owned int
	for _, r := range seen()[before:] {
		rest, ok := strings.CutPrefix(r.path, "/api/v1/users/")
		id, sub, _ := strings.Cut(rest, "/")
		switch {
		case r.method == "GET" && ok && sub == "" && !r.token: // get-user
			i, ok := seeded[id]
			if !ok {
				t.Errorf("GET of %s, not a seeded user", id)
			}
			reads++
			if i == 0 {
				hot++
			}
		case r.method == "PUT" || sub == "data":
			if !r.token || !owners[id] {
				t.Errorf("%s %s: token %v; want the client's own user with its token", r.method, r.path, r.token)
			}
			owned++
		case r.method == "POST" && r.path == "/api/v1/users":
			if r.token {
				t.Errorf("sign-up with a token")
			}
		}
	}
	if owned == 0 {
		t.Errorf("no writes or record requests seen")
	}
	// 90% of key draws go to the one hot key.
	if reads == 0 || float64(hot)/float64(reads) < 0.8 {
		t.Errorf("%d of %d anonymous reads went to the hot user, want about 90%%", hot, reads)
	}
}

func TestSyntheticClientAddr(t *testing.T) {
	seen := map[string]bool{}
	for _, n := range []int{0, 1, 255, 256, 65535, 65536, 131071} {
		a := syntheticClientAddr(n)
		if !strings.HasPrefix(a, "198.18.") && !strings.HasPrefix(a, "198.19.") {
			t.Errorf("syntheticClientAddr(%d) = %s, outside 198.18.0.0/15", n, a)
		}
		if seen[a] {
			t.Errorf("syntheticClientAddr(%d) = %s, given twice", n, a)
		}
		seen[a] = true
	}
}
