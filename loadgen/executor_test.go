package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// These tests run real servers on 127.0.0.1 and assert on counts, which the
// schedule fixes, and on latencies with wide margins: a noisy 2-core box may
// delay a goroutine by tens of milliseconds, never by the hundreds the
// assertions leave room for.

func mustServer(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func mustRun(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func getOp(name, path string) Op {
	return Op{Name: name, Weight: 1, Do: func(ctx context.Context, c *Client, s *Session) error {
		_, err := c.Do(&Request{Path: path})
		return err
	}}
}

func opStats(t *testing.T, res *Result, name string) Stats {
	t.Helper()
	for _, s := range res.Operations {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no operation %q in %+v", name, res.Operations)
	return Stats{}
}

func requestStats(t *testing.T, res *Result, name string) Stats {
	t.Helper()
	for _, s := range res.Requests {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no request %q in result", name)
	return Stats{}
}

// The open model keeps offering its rate when the server slows down, and
// counts what it cannot start rather than quietly sending less.
func TestConstantArrivalRateHoldsRateWhenServerSlows(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(50 * time.Millisecond)
		io.WriteString(w, "slow")
	})
	tests := []struct {
		name        string
		pool        Pool
		minOps      int64 // operations that must have run
		minDropped  int64
		maxDropped  int64
		wantLatency time.Duration // p50 at least
	}{
		// 200/s × 50 ms needs 10 workers at a time; 100 is plenty.
		{"enough workers", Pool{PreAllocated: 5, MaxWorkers: 100, MaxDelay: 250 * time.Millisecond}, 380, 0, 20, 50 * time.Millisecond},
		// 2 workers serve at most 40/s: about 320 of 400 must be dropped.
		{"too few workers", Pool{PreAllocated: 1, MaxWorkers: 2, MaxDelay: 5 * time.Millisecond}, 20, 200, 400, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{
				Target:   srv.URL,
				Ops:      []Op{getOp("get", "/")},
				Executor: ConstantArrivalRate{Rate: 200, Duration: 2 * time.Second, Pool: tt.pool},
				// A stall of the machine longer than the default 10 s
				// (CI saw a 2 s run take 28 s) fires a request's deadline
				// as it resumes; the test is about drops, not timeouts.
				Timeout: time.Minute,
			}
			// A stall of the machine past MaxDelay drops arrivals too.
			res := runSteady(t, 100*time.Millisecond, func() Config { return cfg })
			get := opStats(t, res, "get")
			// The schedule alone fixes the arrivals: 200/s for 2 s.
			if res.Offered != 400 {
				t.Errorf("Offered = %d, want 400", res.Offered)
			}
			if get.Dropped != res.Dropped {
				t.Errorf("operation dropped %d, run dropped %d, want equal", get.Dropped, res.Dropped)
			}
			if get.Count+res.Dropped != res.Offered {
				t.Errorf("operations %d + dropped %d = %d, want offered %d", get.Count, res.Dropped, get.Count+res.Dropped, res.Offered)
			}
			if get.Count < tt.minOps {
				t.Errorf("operations = %d, want >= %d", get.Count, tt.minOps)
			}
			if res.Dropped < tt.minDropped || res.Dropped > tt.maxDropped {
				t.Errorf("Dropped = %d, want %d..%d", res.Dropped, tt.minDropped, tt.maxDropped)
			}
			if get.Errors != 0 {
				t.Errorf("Errors = %d (%v), want 0", get.Errors, res.ErrorsByClass)
			}
			if p50 := get.Percentiles().P50; p50 < ms(tt.wantLatency) {
				t.Errorf("p50 = %vms, want >= %v", p50, tt.wantLatency)
			}
			if res.Workers > tt.pool.MaxWorkers {
				t.Errorf("Workers = %d, want <= %d", res.Workers, tt.pool.MaxWorkers)
			}
			var offered, dropped int64
			for _, p := range res.Series {
				offered += p.Offered
				dropped += p.Dropped
			}
			if offered != res.Offered || dropped != res.Dropped {
				t.Errorf("series sums offered %d dropped %d, want %d and %d", offered, dropped, res.Offered, res.Dropped)
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Each operation's series adds up to the operation's stats, and lines up
// with the total's series.
func TestOperationSeriesSumToStats(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	res := mustRun(t, Config{
		Target:   srv.URL,
		Ops:      []Op{getOp("get", "/"), getOp("fail", "/fail")},
		Executor: ConstantArrivalRate{Rate: 200, Duration: 2 * time.Second},
	})
	var ops int64
	for _, st := range res.Operations {
		t.Run(st.Name, func(t *testing.T) {
			if len(st.Series) != len(res.Series) {
				t.Fatalf("series has %d points, want %d as the total's", len(st.Series), len(res.Series))
			}
			var sum Stats
			var latencies int64
			for i, p := range st.Series {
				if p.Second != i || p.Interval != res.Series[i].Interval {
					t.Errorf("point %d: second %d interval %v, want %d and %v", i, p.Second, p.Interval, i, res.Series[i].Interval)
				}
				sum.Count += p.Ops
				sum.Errors += p.Errors
				sum.Throttled += p.Throttled
				sum.Dropped += p.Dropped
				if p.Latency != nil {
					latencies += p.Latency.TotalCount()
				}
			}
			if sum.Count != st.Count || sum.Errors != st.Errors || sum.Throttled != st.Throttled || sum.Dropped != st.Dropped {
				t.Errorf("series sums count %d errors %d throttled %d dropped %d, want %d, %d, %d, %d",
					sum.Count, sum.Errors, sum.Throttled, sum.Dropped, st.Count, st.Errors, st.Throttled, st.Dropped)
			}
			if latencies != st.Latency.TotalCount() {
				t.Errorf("series latencies %d, want %d", latencies, st.Latency.TotalCount())
			}
			if st.Count == 0 {
				t.Errorf("no %s operations", st.Name)
			}
		})
		ops += st.Count
	}
	if fail := opStats(t, res, "fail"); fail.Errors != fail.Count {
		t.Errorf("fail: %d errors of %d, want all", fail.Errors, fail.Count)
	}
	var seriesOps int64
	for _, p := range res.Series {
		seriesOps += p.Ops
	}
	if seriesOps != ops {
		t.Errorf("total series has %d operations, operations' series %d", seriesOps, ops)
	}
}

// stallServer answers at once, except that from its 100th request on it
// stalls for one second: requests arriving in that second all wait for its
// end.
func stallServer(t *testing.T) *httptest.Server {
	var (
		mu       sync.Mutex
		n        int
		stallEnd time.Time
	)
	return mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		if n == 100 {
			stallEnd = time.Now().Add(time.Second)
		}
		wait := time.Until(stallEnd)
		mu.Unlock()
		if wait > 0 {
			time.Sleep(wait)
		}
		io.WriteString(w, "ok")
	})
}

// Latency is measured from each request's scheduled start, so a one-second
// stall shows in p99 and max as it would to users. A closed model, whose
// users wait for the stall before sending again, hides it in p99.
func TestStallShowsInP99AndMax(t *testing.T) {
	t.Parallel()
	t.Run("open model", func(t *testing.T) {
		t.Parallel()
		// The server's stall is the one to see, not the machine's (CI: a
		// stall of about 2 s put p50 at 1.9 s).
		res := runSteady(t, 200*time.Millisecond, func() Config {
			return Config{
				Target: stallServer(t).URL,
				Ops:    []Op{getOp("get", "/")},
				// MaxDelay a minute: no arrival is dropped for waiting out
				// the stall (seen: a box stall dropped 51 at 250 ms).
				Executor: ConstantArrivalRate{Rate: 100, Duration: 3 * time.Second, Pool: Pool{MaxWorkers: 300, MaxDelay: time.Minute}},
			}
		})
		lat := res.Total.Percentiles()
		// About 100 of 300 requests arrive during the stall and wait up to
		// 1 s each: the slowest 1% waited about a second.
		if lat.Max < 900 {
			t.Errorf("max = %vms, want >= 900ms", lat.Max)
		}
		if lat.P99 < 800 {
			t.Errorf("p99 = %vms, want >= 800ms", lat.P99)
		}
		if lat.P50 > 500 {
			t.Errorf("p50 = %vms, want the fast majority under 500ms", lat.P50)
		}
		if res.Dropped > 5 {
			t.Errorf("Dropped = %d, want (nearly) none: the pool has room for the stall", res.Dropped)
		}
		var stalled bool
		for _, p := range res.Series {
			if p.P99 >= 500 {
				stalled = true
			}
		}
		if !stalled {
			t.Errorf("no second of the series has p99 >= 500ms: %+v", res.Series)
		}
	})
	t.Run("closed model", func(t *testing.T) {
		t.Parallel()
		res := runSteady(t, 200*time.Millisecond, func() Config {
			return Config{
				Target:   stallServer(t).URL,
				Ops:      []Op{getOp("get", "/")},
				Executor: ConstantVUs{VUs: 1, Duration: 3 * time.Second, Think: 2 * time.Millisecond},
			}
		})
		lat := res.Total.Percentiles()
		// One request waits out the stall; the user sends nothing else
		// meanwhile, so the stall is one slow request among hundreds.
		if lat.Max < 900 {
			t.Errorf("max = %vms, want >= 900ms", lat.Max)
		}
		if lat.P99 > 500 {
			t.Errorf("p99 = %vms, want under 500ms (the closed model hides the stall)", lat.P99)
		}
	})
}

func TestRampingArrivalRateReachesStageTargets(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	// 0 → 200/s over 1 s, hold 200/s for 1 s, 200 → 400/s over 1s:
	// 100 + 200 + 300 arrivals.
	res := runSteady(t, 100*time.Millisecond, func() Config {
		return Config{
			Target: srv.URL,
			Ops:    []Op{getOp("get", "/")},
			Executor: RampingArrivalRate{StartRate: 0, Stages: []Stage{
				{Target: 200, Duration: time.Second},
				{Target: 200, Duration: time.Second},
				{Target: 400, Duration: time.Second},
			}, Pool: Pool{MaxDelay: 250 * time.Millisecond}},
		}
	})
	if res.Offered != 600 {
		t.Errorf("Offered = %d, want 600", res.Offered)
	}
	if got := opStats(t, res, "get").Count + res.Dropped; got != 600 {
		t.Errorf("operations + dropped = %d, want 600", got)
	}
	// The series ticks about once a second, so allow for ticks that come
	// late or early: each second within 30% of its share.
	for i, want := range []float64{100, 200, 300} {
		if i >= len(res.Series) {
			t.Fatalf("series has %d points, want >= 3", len(res.Series))
		}
		if got := float64(res.Series[i].Offered); got < want*0.7 || got > want*1.3 {
			t.Errorf("second %d offered %v, want about %v", i, got, want)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/503":
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case "/429":
			w.Header().Set("Retry-After", "1")
			http.Error(w, "slow down", http.StatusTooManyRequests)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/reset":
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.(*net.TCPConn).SetLinger(0) // close with RST
			conn.Close()
		case "/bad":
		default:
			io.WriteString(w, "ok")
		}
	})
	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name, target, path string
		wantClass          string
		wantThrottled      bool
	}{
		{"5xx", srv.URL, "/500", "http 500", false},
		{"503", srv.URL, "/503", "http 503", false},
		{"throttled", srv.URL, "/429", "", true},
		{"timeout", srv.URL, "/slow", ClassTimeout, false},
		{"reset", srv.URL, "/reset", ClassReset, false},
		{"refused", refused, "/", ClassRefused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var retryAfter atomic.Value
			op := Op{Name: "op", Weight: 1, Do: func(ctx context.Context, c *Client, s *Session) error {
				resp, err := c.Do(&Request{Method: "POST", Path: tt.path})
				if resp != nil && resp.Status == 429 {
					retryAfter.Store(resp.Header("Retry-After"))
				}
				return err
			}}
			// A stall of the machine near the 100 ms timeout turns any
			// class into timeouts.
			res := runSteady(t, 50*time.Millisecond, func() Config {
				return Config{
					Target:   tt.target,
					Ops:      []Op{op},
					Executor: ConstantArrivalRate{Rate: 20, Duration: 500 * time.Millisecond, Pool: Pool{MaxDelay: time.Minute}}, // counts, not drops: a stalled box must not drop one
					Timeout:  100 * time.Millisecond,
				}
			})
			st := res.Total
			if st.Count != 10 {
				t.Errorf("Count = %d, want 10", st.Count)
			}
			if tt.wantThrottled {
				if st.Throttled != 10 || st.Errors != 0 || len(res.ErrorsByClass) != 0 {
					t.Errorf("throttled %d, errors %d %v; want 10 throttled, no errors", st.Throttled, st.Errors, res.ErrorsByClass)
				}
				if op := opStats(t, res, "op"); op.Throttled != 10 || op.Errors != 0 {
					t.Errorf("operation throttled %d errors %d, want 10 and 0", op.Throttled, op.Errors)
				}
				if got := retryAfter.Load(); got != "1" {
					t.Errorf("Retry-After = %v, want 1", got)
				}
				return
			}
			if st.Errors != 10 || res.ErrorsByClass[tt.wantClass] != 10 || len(res.ErrorsByClass) != 1 {
				t.Errorf("errors %d by class %v, want 10 of %q", st.Errors, res.ErrorsByClass, tt.wantClass)
			}
			if op := opStats(t, res, "op"); op.Errors != 10 {
				t.Errorf("operation errors = %d, want 10", op.Errors)
			}
			if tt.wantClass == ClassTimeout {
				if p50 := st.Percentiles().P50; p50 < 100 {
					t.Errorf("timeouts' p50 = %vms, want >= the 100ms timeout", p50)
				}
			}
		})
	}
}

// An operation of two requests, a check, a custom counter and a
// per-session identity set up before the run.
func TestMultiRequestOpAndCounter(t *testing.T) {
	t.Parallel()
	var (
		mu     sync.Mutex
		value  = map[string]string{}
		gets   int
		stale  int
		tokens = map[string]bool{}
	)
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		tok := r.Header.Get("Authorization")
		if !strings.HasPrefix(tok, "Bearer user-") {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		tokens[tok] = true
		key := r.URL.Path
		switch r.Method {
		case "PUT":
			b, _ := io.ReadAll(r.Body)
			value[key] = string(b)
			w.WriteHeader(http.StatusNoContent)
		case "GET":
			gets++
			if gets%4 == 0 { // every fourth read comes from a lagging replica
				stale++
				io.WriteString(w, "old")
				return
			}
			io.WriteString(w, value[key])
		}
	})
	readAfterWrite := Op{Name: "read-after-write", Weight: 1, Do: func(ctx context.Context, c *Client, s *Session) error {
		path := fmt.Sprintf("/items/%d", s.ID)
		want := fmt.Sprintf("v%d", s.Rand.Int())
		if _, err := c.Do(&Request{Name: "PUT /items/{id}", Method: "PUT", Path: path, Body: []byte(want)}); err != nil {
			return err
		}
		resp, err := c.Do(&Request{Name: "GET /items/{id}", Path: path})
		if err != nil {
			return err
		}
		if string(resp.Body) != want {
			s.Counter("stale_reads").Add(1)
		}
		return nil
	}}
	failing := Op{Name: "failing-check", Weight: 1, Do: func(ctx context.Context, c *Client, s *Session) error {
		return errors.New("response did not check out")
	}}
	res := mustRun(t, Config{
		Target:   srv.URL,
		Ops:      []Op{readAfterWrite, failing},
		Executor: ConstantVUs{VUs: 4, Duration: 500 * time.Millisecond, Think: time.Millisecond},
		Seed:     42,
		Setup: func(ctx context.Context, c *Client, s *Session) error {
			c.SetHeader("Authorization", fmt.Sprintf("Bearer user-%d", s.ID))
			return nil
		},
	})
	raw := opStats(t, res, "read-after-write")
	put, get := requestStats(t, res, "PUT /items/{id}"), requestStats(t, res, "GET /items/{id}")
	if raw.Count == 0 || put.Count != raw.Count || get.Count != raw.Count {
		t.Errorf("operations %d, PUTs %d, GETs %d: want equal and > 0", raw.Count, put.Count, get.Count)
	}
	if raw.Errors != 0 || put.Errors != 0 || get.Errors != 0 {
		t.Errorf("errors: op %d put %d get %d, want none (%v)", raw.Errors, put.Errors, get.Errors, res.ErrorsByClass)
	}
	mu.Lock()
	wantStale, nTokens := int64(stale), len(tokens)
	mu.Unlock()
	if got := res.Counters["stale_reads"]; got != wantStale || got == 0 {
		t.Errorf(`Counters["stale_reads"] = %d, want %d (> 0)`, got, wantStale)
	}
	if nTokens != 4 {
		t.Errorf("server saw %d distinct tokens, want 4 (one per session)", nTokens)
	}
	fail := opStats(t, res, "failing-check")
	if fail.Count == 0 || fail.Errors != fail.Count || res.ErrorsByClass[ClassCheck] != fail.Count {
		t.Errorf("failing-check count %d errors %d, ErrorsByClass %v: want every one a %q error", fail.Count, fail.Errors, res.ErrorsByClass, ClassCheck)
	}
	if res.Total.Count != put.Count+get.Count {
		t.Errorf("Total.Count = %d, want %d", res.Total.Count, put.Count+get.Count)
	}
	// Equal weights: each operation about half of the picks.
	if n, m := raw.Count, fail.Count; n < (n+m)/4 || m < (n+m)/4 {
		t.Errorf("mix of equal weights ran %d and %d", n, m)
	}
}

// Cancelling the context stops a run promptly, even with requests stuck
// in flight, returns what was measured, and leaves no goroutine behind.
// Not parallel: it counts goroutines.
func TestRunStopsPromptlyOnCancel(t *testing.T) {
	stuckNow := make(chan struct{}, 100)
	release := make(chan struct{})
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stuck" {
			stuckNow <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}
		io.WriteString(w, "ok")
	})
	defer close(release)
	before := runtime.NumGoroutine()

	for _, exec := range []Executor{
		ConstantArrivalRate{Rate: 50, Duration: time.Minute},
		ConstantVUs{VUs: 5, Duration: time.Minute},
	} {
		t.Run(exec.Name(), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var n atomic.Int64
			op := Op{Name: "op", Weight: 1, Do: func(ctx context.Context, c *Client, s *Session) error {
				path := "/"
				if n.Add(1) > 20 {
					path = "/stuck"
				}
				_, err := c.Do(&Request{Path: path})
				return err
			}}
			// Cancel once three requests are stuck in the server.
			go func() {
				for range 3 {
					<-stuckNow
				}
				cancel()
			}()
			start := time.Now()
			res, err := Run(ctx, Config{Target: srv.URL, Ops: []Op{op}, Executor: exec, GracefulStop: time.Minute})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run error = %v, want context.Canceled", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Run took %v, want a prompt stop after cancel (the timeout is 10s)", took)
			}
			// Quick requests still in flight at the cancel are cut off.
			if res == nil || res.Total.Count < 15 {
				t.Fatalf("result %v, want most of the 20 quick requests", res)
			}
			if res.Total.Errors != 0 {
				t.Errorf("%d errors %v: requests cut off by the end must not count", res.Total.Errors, res.ErrorsByClass)
			}
			for len(stuckNow) > 0 {
				<-stuckNow
			}
		})
	}
	// Goroutines owned by the runs are gone (the server's idle ones may
	// take a moment to close).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines, was %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func TestSetupFailureFailsRun(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) {})
	_, err := Run(context.Background(), Config{
		Target:   srv.URL,
		Ops:      []Op{getOp("get", "/")},
		Executor: ConstantVUs{VUs: 3, Duration: time.Second},
		Setup: func(ctx context.Context, c *Client, s *Session) error {
			if s.ID == 2 {
				return errors.New("login refused")
			}
			return nil
		},
	})
	if err == nil || !strings.Contains(err.Error(), "login refused") {
		t.Errorf("Run error = %v, want the setup's", err)
	}
}

func TestConfigErrors(t *testing.T) {
	op := getOp("get", "/")
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no executor", Config{Target: "http://127.0.0.1:1", Ops: []Op{op}}, "no executor"},
		{"bad target", Config{Target: "ftp://x", Ops: []Op{op}, Executor: ConstantVUs{VUs: 1, Duration: time.Second}}, "scheme"},
		{"no ops", Config{Target: "http://127.0.0.1:1", Executor: ConstantVUs{VUs: 1, Duration: time.Second}}, "no operations"},
		{"zero weight", Config{Target: "http://127.0.0.1:1", Ops: []Op{{Name: "x", Do: op.Do}}, Executor: ConstantVUs{VUs: 1, Duration: time.Second}}, "weight"},
		{"duplicate", Config{Target: "http://127.0.0.1:1", Ops: []Op{op, op}, Executor: ConstantVUs{VUs: 1, Duration: time.Second}}, "duplicate"},
		{"zero rate", Config{Target: "http://127.0.0.1:1", Ops: []Op{op}, Executor: ConstantArrivalRate{Duration: time.Second}}, "rate"},
		{"pool", Config{Target: "http://127.0.0.1:1", Ops: []Op{op}, Executor: ConstantArrivalRate{Rate: 1, Duration: time.Second, Pool: Pool{PreAllocated: 5, MaxWorkers: 2}}}, "exceed"},
		{"ramp", Config{Target: "http://127.0.0.1:1", Ops: []Op{op}, Executor: RampingArrivalRate{Stages: []Stage{{Target: -1, Duration: time.Second}}}}, "target"},
		{"think", Config{Target: "http://127.0.0.1:1", Ops: []Op{op}, Executor: ConstantVUs{VUs: 1, Duration: time.Second, ThinkJitter: time.Second}}, "jitter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Run(context.Background(), tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// A pacer of one's own: bursts of 5 every 100ms, 20 arrivals in all; the
// run ends with the pacer.
func TestArrivalRateWithPacerFunc(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	burst := PacerFunc(func(n int64) (time.Duration, bool) {
		return time.Duration(n/5) * 100 * time.Millisecond, n < 20
	})
	res := mustRun(t, Config{Target: srv.URL, Ops: []Op{getOp("get", "/")}, Executor: ArrivalRate{Pacer: burst}})
	if res.Offered != 20 || res.Total.Count+res.Dropped != 20 {
		t.Errorf("offered %d, ran %d, dropped %d; want 20 offered and accounted for", res.Offered, res.Total.Count, res.Dropped)
	}
	if res.Duration > 5*time.Second {
		t.Errorf("Duration = %v, want the run to end with its pacer", res.Duration)
	}
}

// A generator that stalls is told apart from a system that does: arrivals
// the pacer itself hands over past MaxDelay are counted as Late (and
// dropped), while a quick server never made one wait.
func TestArrivalRateCountsGeneratorStalls(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	const stall = 300 * time.Millisecond
	stalling := PacerFunc(func(n int64) (time.Duration, bool) {
		if n == 10 {
			time.Sleep(stall) // the pacer's goroutine stops, as in a stalled process
		}
		// 10 arrivals at once, then 10 more due 10 ms later: all of
		// the second lot are handed over at least 290 ms late.
		return time.Duration(n/10) * 10 * time.Millisecond, n < 20
	})
	res := mustRun(t, Config{Target: srv.URL, Ops: []Op{getOp("get", "/")},
		Executor: ArrivalRate{Pacer: stalling, Pool: Pool{MaxDelay: 100 * time.Millisecond}}})
	if res.Late != 10 {
		t.Errorf("Late = %d, want the 10 arrivals due during the stall", res.Late)
	}
	if res.Dropped < res.Late || res.Offered != 20 || res.Total.Count+res.Dropped != 20 {
		t.Errorf("offered %d, ran %d, dropped %d, late %d; want 20 offered, the late ones dropped", res.Offered, res.Total.Count, res.Dropped, res.Late)
	}
}
