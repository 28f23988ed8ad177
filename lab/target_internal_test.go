package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/server"
)

func TestCheckTarget(t *testing.T) {
	tests := []struct {
		url    string
		remote bool
		want   string // "" for an error
	}{
		{"http://127.0.0.1:8080", false, "http://127.0.0.1:8080"},
		{"http://127.0.0.1:8080/", false, "http://127.0.0.1:8080"},
		{"http://127.1.2.3:80/prefix/", false, "http://127.1.2.3:80/prefix"},
		{"http://localhost:9000", false, "http://localhost:9000"},
		{"http://[::1]:9000", false, "http://[::1]:9000"},
		{"http://10.0.0.5:8080", false, ""},
		{"http://example.com", false, ""},
		{"http://example.com", true, "http://example.com"},
		{"https://127.0.0.1:8443", false, ""},
		{"127.0.0.1:8080", false, ""},
		{"http://127.0.0.1:8080/?x=1", false, ""},
		{"http://127.0.0.1:8080/api/v1", false, ""},
	}
	for _, tt := range tests {
		got, err := CheckTarget(tt.url, tt.remote)
		if tt.want == "" {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("CheckTarget(%q, %v) = %q, %v; want an ErrInvalid", tt.url, tt.remote, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CheckTarget(%q, %v) = %q, %v; want %q", tt.url, tt.remote, got, err, tt.want)
		}
	}
}

// targetScenario is a v1 mix with writes, so that each generator signs in
// and writes as its own users.
func targetScenario(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("target.yaml", []byte(`
name: target-mix
executor: {type: constant-arrival-rate, rate: 150}
duration: 2s
warmup: 300ms
users: 20
max_workers: 8
mix:
  - {op: get-user, weight: 6}
  - {op: update-user, weight: 2}
  - {op: create-record, weight: 1}
keys: {distribution: zipfian}
thresholds:
  - errors < 1%
`))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// A run against a target split over two generators and merged counts,
// operation by operation, the arrivals of the same run made by one
// generator, error-free (each generator writes only as its own users, or
// the server would answer 403); the merged percentiles are those of the
// shards' histograms merged directly.
func TestRunTargetSplitMergesExactly(t *testing.T) {
	target, _ := startServer(t, 20)
	ctx := context.Background()
	cfg := func(s loadgen.Shard) TargetConfig {
		return TargetConfig{URL: target, Scenario: targetScenario(t), Seed: 9, Shard: s, Argv: []string{"test"}}
	}
	whole, wholeLoad, err := runTarget(ctx, cfg(loadgen.Shard{}))
	if err != nil {
		t.Fatal(err)
	}
	if whole.Target != target || whole.Load != nil || whole.Components != nil || whole.Cache.L1HitRate != nil {
		t.Errorf("whole run: target %q, load %v, components %v, L1 %v; want the target and no load or topology figures",
			whole.Target, whole.Load != nil, whole.Components, whole.Cache.L1HitRate)
	}
	if !slices.ContainsFunc(whole.Notes, func(n string) bool { return strings.Contains(n, "not measured, not zero") }) {
		t.Errorf("notes do not say that topology figures were not measured: %q", whole.Notes)
	}

	// The generators start together, as RunGenerators starts them.
	const n = 2
	var barrier sync.WaitGroup
	barrier.Add(n)
	parts := make([]*reports.Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c := cfg(loadgen.Shard{Index: i, Count: n})
			ready := false
			c.Ready = func(context.Context) error { ready = true; barrier.Done(); barrier.Wait(); return nil }
			res, err := RunTarget(ctx, c)
			if err != nil {
				if !ready {
					barrier.Done()
				}
				t.Errorf("shard %d/%d: %v", i, n, err)
				return
			}
			dir := filepath.Join(t.TempDir(), "shard")
			if err := res.WriteAll(dir); err != nil {
				t.Error(err)
				return
			}
			if parts[i], err = reports.Read(dir); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	merged, err := Merge(parts, []string{"scalelab", "merge"})
	if err != nil {
		t.Fatal(err)
	}
	if merged.Generators != n || merged.Totals.Errors != 0 || whole.Totals.Errors != 0 {
		t.Errorf("merged %d generators, %d errors (whole run %d); want %d and none: %v", merged.Generators, merged.Totals.Errors, whole.Totals.Errors, n, merged.Totals.ErrorsByClass)
	}
	// Count+Dropped is every arrival of an operation, whatever the
	// machine's load made late.
	arrivals := func(lr *loadgen.Result) map[string]int64 {
		m := map[string]int64{}
		for _, st := range lr.Operations {
			m[st.Name] = st.Count + st.Dropped
		}
		return m
	}
	if got, want := arrivals(merged.Load), arrivals(wholeLoad); !maps.Equal(got, want) || len(want) != 3 {
		t.Errorf("arrivals by operation: merged generators %v, the whole run %v", got, want)
	}
	direct := loadgen.NewHistogram()
	var sum int64
	for _, p := range parts {
		direct.Merge(p.Load.Total.Latency)
		sum += p.Totals.Requests
	}
	if merged.Totals.Requests != sum || !merged.Load.Total.Latency.Equals(direct) {
		t.Errorf("merged %d requests (histogram equal to the direct merge: %v), shards sent %d", merged.Totals.Requests, merged.Load.Total.Latency.Equals(direct), sum)
	}
	if want := (&loadgen.Stats{Latency: direct}).Percentiles(); merged.Totals.LatencyMS != want {
		t.Errorf("merged latency %+v, want the directly merged histogram's %+v", merged.Totals.LatencyMS, want)
	}
	var md bytes.Buffer
	if err := reports.RenderMarkdown(&md, &merged); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), target) || !strings.Contains(md.String(), "2 load generators") {
		t.Errorf("report.md of the merge names neither the target nor the generators:\n%s", md.String())
	}
}

// Merge takes only parts of one run, each once, each with its histograms.
func TestMergeRefuses(t *testing.T) {
	part := func(scenario, shard string, load bool) *reports.Result {
		r := &reports.Result{Scenario: scenario, Target: "http://127.0.0.1:1", Executor: "constant-arrival-rate 10/s", Shard: shard}
		if load {
			r.Load = &loadgen.Result{Total: loadgen.Stats{Name: "total", Latency: loadgen.NewHistogram()}}
		}
		return r
	}
	tests := []struct {
		name  string
		parts []*reports.Result
		want  string
	}{
		{"none", nil, "no results"},
		{"no histograms", []*reports.Result{part("s", "0/2", true), part("s", "", false)}, "no load generator histograms"},
		{"twice", []*reports.Result{part("s", "0/2", true), part("s", "0/2", true)}, "given twice"},
		{"other run", []*reports.Result{part("s", "0/2", true), part("t", "1/2", true)}, "not parts of one run"},
		{"other split", []*reports.Result{part("s", "0/2", true), part("s", "1/3", true)}, "share of 3 generators"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Merge(tt.parts, nil)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Merge = %v, want an ErrInvalid saying %q", err, tt.want)
			}
		})
	}
	// One of two shards merges, with a note that it is only a share.
	res, err := Merge([]*reports.Result{part("s", "1/2", true)}, nil)
	if err != nil || !slices.ContainsFunc(res.Notes, func(n string) bool { return strings.Contains(n, "Only 1 of the 2") }) {
		t.Errorf("Merge(one shard of two) = %v, notes %q; want a note that it is a share", err, res.Notes)
	}
}

// Users created in the warm-up and in the measured run, and by each
// generator, have names of their own: no sign-up of the run is a 409.
func TestRunTargetCreatesUniqueUsers(t *testing.T) {
	target, _ := startServer(t, 5)
	sc, err := scenarios.Parse("signup.yaml", []byte(`
name: signup
executor: {type: constant-arrival-rate, rate: 10}
duration: 1s
warmup: 1s
users: 5
mix: [{op: create-user, weight: 1}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range []loadgen.Shard{{}, {Index: 0, Count: 2}, {Index: 1, Count: 2}} {
		res, err := RunTarget(context.Background(), TargetConfig{URL: target, Scenario: sc, Seed: 1, Shard: sh})
		if err != nil {
			t.Fatal(err)
		}
		if res.Totals.Requests == 0 || res.Totals.Errors != 0 {
			t.Errorf("shard %q: %d sign-ups, %d errors %v; want some and none", sh, res.Totals.Requests, res.Totals.Errors, res.Totals.ErrorsByClass)
		}
	}
}

// Sign-ups wait out a 503's Retry-After and take what the server assigns;
// the users file keeps them for later runs.
func TestSignUpUsersAndUsersFile(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Username string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.URL.Path != "/api/v1/users" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[body.Username]++
		n := seen[body.Username]
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		id, _ := server.NewID()
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id":%q}`, id)
	}))
	t.Cleanup(srv.Close)
	u, err := SignUpUsers(context.Background(), srv.URL, "/api/v1/users", 7, SignUpOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if u.N != 7 || len(u.IDs) != 7 || u.Password == "" || len(seen) != 7 {
		t.Fatalf("signed up %d users (%d ids, %d logins tried), password %q", u.N, len(u.IDs), len(seen), u.Password)
	}
	for i := range u.N {
		if !server.ValidID(u.ID(i)) || seen[u.Login(i)] != 2 {
			t.Errorf("user %d: id %q, login %q tried %d times; want an id after a 503 and a retry", i, u.ID(i), u.Login(i), seen[u.Login(i)])
		}
	}
	path := filepath.Join(t.TempDir(), "users.json")
	if err := WriteUsersFile(path, srv.URL, "/api/v1/users", u); err != nil {
		t.Fatal(err)
	}
	back, at, err := ReadUsersFile(path)
	if err != nil || at != srv.URL || !slices.Equal(back.IDs, u.IDs) || !slices.Equal(back.Logins, u.Logins) || back.Password != u.Password {
		t.Errorf("ReadUsersFile = %+v, %q, %v; want what was written for %s", back, at, err, srv.URL)
	}
}
