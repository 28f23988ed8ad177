package flows

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scalelab/topologies"
)

// An app instance killed under GET load through HAProxy fails no GET:
// requests in flight at the dying instance (the connection closes with no
// answer) and those sent before the health check notices are retried on
// another instance. The instance is started again afterwards.
func TestAppKilledUnderGETLoadFailsNoGET(t *testing.T) {
	top := phase3.Topology(t)
	ctx := context.Background()
	users := []*user{signUp(t, top.EntryURL), signUp(t, top.EntryURL)}
	for _, u := range users {
		waitReplicated(t, top, u.ID, 1)
	}
	const victim = "app-2"
	killed := false
	t.Cleanup(func() {
		if killed {
			if err := top.Inject(ctx, victim, topologies.FaultRestart); err != nil {
				t.Errorf("restart %s: %v", victim, err)
			}
		}
		// Back in HAProxy's rotation before the next test.
		waitAllServing(t, top)
	})

	runCtx, stop := context.WithTimeout(ctx, 4*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	start := time.Now()
	// Enough concurrent readers that some GETs are in flight at the
	// instance when it dies: 32 closed-loop clients of anonymous reads,
	// each from a fresh address (its own anonymous budget), and 4 paced
	// clients of reads with a token.
	for c := range 36 {
		wg.Go(func() {
			var tick <-chan time.Time
			if c >= 32 {
				t := time.NewTicker(5 * time.Millisecond)
				defer t.Stop()
				tick = t.C
			}
			for i := 0; ; i++ {
				if tick != nil {
					select {
					case <-runCtx.Done():
						return
					case <-tick:
					}
				} else if runCtx.Err() != nil {
					return
				}
				u := users[(c+i)%len(users)]
				r := request{Method: http.MethodGet, URL: userURL(top.EntryURL, u.ID), XFF: clientAddr()}
				if tick != nil {
					r = request{Method: http.MethodGet, URL: userURL(top.EntryURL, u.ID), Token: u.Token}
				}
				sent := time.Now()
				resp, err := send(ctx, r)
				switch {
				case err == nil && resp.Status == http.StatusOK:
					ok.Add(1)
				default:
					failed.Add(1)
					what := fmt.Sprint(err)
					if err == nil {
						what = fmt.Sprintf("%d %s", resp.Status, resp.Body)
					}
					mu.Lock()
					failures = append(failures, fmt.Sprintf("GET at %v: %s", sent.Sub(start).Round(time.Millisecond), what))
					mu.Unlock()
				}
			}
		})
	}
	time.Sleep(time.Second)
	killedAt := time.Since(start)
	killed = true
	if err := top.Inject(ctx, victim, topologies.FaultKill); err != nil {
		t.Fatalf("kill %s: %v", victim, err)
	}
	wg.Wait()
	t.Logf("%s killed at %v: %d GETs ok, %d failed", victim, killedAt.Round(time.Millisecond), ok.Load(), failed.Load())
	for _, f := range failures {
		t.Log("  " + f)
	}
	if n := failed.Load(); n > 0 {
		t.Errorf("%d GETs failed around the kill of %s, want 0", n, victim)
	}
}

// waitAllServing waits until HAProxy sends requests to every instance
// again, for at most 10s.
func waitAllServing(t *testing.T, top *topologies.Topology) {
	t.Helper()
	for _, a := range appURLs(top) {
		ok := eventually(10*time.Second, func() bool {
			resp, err := send(context.Background(), request{Method: http.MethodGet, URL: a + "/readyz"})
			return err == nil && resp.Status == http.StatusOK
		})
		if !ok {
			t.Errorf("%s not ready within 10s", a)
		}
	}
	// HAProxy's next check (downinter) brings it back.
	time.Sleep(time.Second)
}

// A paused primary (SIGSTOP, 3s) fails no read of data whose last
// acknowledged write reached the replicas: every instance stays in
// HAProxy's rotation (/readyz reports the primary down but reads served),
// reads are served by replicas and caches, and writes fail fast with 503
// and Retry-After instead of hanging for the pause. Once the primary
// resumes, writes succeed again.
//
// Users written while the primary stops may have an acknowledged write
// that the replicas never received (the primary stopped before shipping
// it): their reads answer 503 with Retry-After until it is back, since
// serving them from a replica would break read-your-writes (own reads) or
// serve what an acknowledged write replaced (anyone's). The test counts
// those apart and only checks they fail fast.
func TestPrimaryPausedFailsNoRead(t *testing.T) {
	top := phase3.Topology(t)
	ctx := context.Background()
	writers := []*user{signUp(t, top.EntryURL), signUp(t, top.EntryURL)}
	readers := []*user{signUp(t, top.EntryURL), signUp(t, top.EntryURL)}
	for _, u := range append(append([]*user{}, writers...), readers...) {
		waitReplicated(t, top, u.ID, 1)
	}
	paused := false
	t.Cleanup(func() {
		if paused {
			if err := top.Inject(ctx, "primary", topologies.FaultResume); err != nil {
				t.Errorf("resume primary: %v", err)
			}
		}
	})

	const pauseFor = 3 * time.Second
	runCtx, stop := context.WithTimeout(ctx, 2*time.Second+pauseFor+2*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var readsOK, readsFailed, writerReads503, writesOK, writes503, other int
	var slowest503 time.Duration
	var failures []string
	var pausedAt, resumedAt time.Time
	start := time.Now()
	for c := range 4 {
		wg.Go(func() {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
				}
				w, rd := writers[c%len(writers)], readers[c%len(readers)]
				var r request
				writerRead := false
				switch i % 6 {
				case 0:
					r = request{Method: http.MethodPut, URL: userURL(top.EntryURL, w.ID), Token: w.Token,
						Body: map[string]any{"profile": map[string]string{"name": fmt.Sprintf("c%d-%d", c, i)}}}
				case 1:
					r = request{Method: http.MethodGet, URL: userURL(top.EntryURL, w.ID), Token: w.Token}
					writerRead = true
				case 2, 3:
					r = request{Method: http.MethodGet, URL: userURL(top.EntryURL, rd.ID), Token: rd.Token}
				default:
					r = request{Method: http.MethodGet, URL: userURL(top.EntryURL, readers[(c+1)%len(readers)].ID), XFF: clientAddr()}
				}
				sent := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				resp, err := send(rctx, r)
				cancel()
				took := time.Since(sent)
				mu.Lock()
				during := !pausedAt.IsZero() && sent.After(pausedAt) && (resumedAt.IsZero() || sent.Before(resumedAt))
				what := fmt.Sprint(err)
				if err == nil {
					what = fmt.Sprintf("%d %s", resp.Status, resp.Body)
				}
				fast503 := err == nil && resp.Status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" && took < 3*time.Second // the server waits 1s (primaryDownAfter) before it takes the primary for gone, and a write in flight answers after its deadline (2s)
				switch {
				case err == nil && resp.Status == http.StatusOK && r.Method == http.MethodGet:
					readsOK++
				case err == nil && resp.Status == http.StatusOK:
					writesOK++
				case r.Method != http.MethodGet && fast503:
					writes503++
					slowest503 = max(slowest503, took)
				case writerRead && fast503:
					writerReads503++
					slowest503 = max(slowest503, took)
				case r.Method == http.MethodGet && !writerRead:
					readsFailed++
					failures = append(failures, fmt.Sprintf("GET at %v (paused %v) took %v: %s", sent.Sub(start).Round(time.Millisecond), during, took.Round(time.Millisecond), what))
				default:
					other++
					failures = append(failures, fmt.Sprintf("%s at %v (paused %v) took %v: %s", r.Method, sent.Sub(start).Round(time.Millisecond), during, took.Round(time.Millisecond), what))
				}
				mu.Unlock()
			}
		})
	}
	time.Sleep(2 * time.Second)
	mu.Lock()
	pausedAt = time.Now()
	mu.Unlock()
	paused = true
	if err := top.Inject(ctx, "primary", topologies.FaultPause); err != nil {
		t.Fatalf("pause primary: %v", err)
	}
	// Readiness while the primary is paused: ready for reads, not writes.
	time.Sleep(pauseFor / 2)
	for _, a := range appURLs(top) {
		resp, err := send(ctx, request{Method: http.MethodGet, URL: a + "/readyz"})
		if err != nil || resp.Status != http.StatusOK || !strings.Contains(string(resp.Body), `"primary":"down"`) {
			t.Errorf("GET %s/readyz with the primary paused = %v, %v; want 200 with \"primary\":\"down\"", a, describe(resp), err)
		}
		resp, err = send(ctx, request{Method: http.MethodGet, URL: a + "/readyz?write=1"})
		if err != nil || resp.Status != http.StatusServiceUnavailable {
			t.Errorf("GET %s/readyz?write=1 with the primary paused = %v, %v; want 503", a, describe(resp), err)
		}
	}
	time.Sleep(pauseFor / 2)
	if err := top.Inject(ctx, "primary", topologies.FaultResume); err != nil {
		t.Fatalf("resume primary: %v", err)
	}
	paused = false
	mu.Lock()
	resumedAt = time.Now()
	mu.Unlock()
	wg.Wait()

	t.Logf("primary paused %v: reads ok %d, failed %d, of written users 503 with Retry-After %d; writes ok %d, 503 with Retry-After %d; slowest 503 %v; other failures %d",
		pauseFor, readsOK, readsFailed, writerReads503, writesOK, writes503, slowest503.Round(time.Millisecond), other)
	for _, f := range failures {
		t.Log("  " + f)
	}
	if readsFailed > 0 {
		t.Errorf("%d reads of users not written during the pause failed, want 0", readsFailed)
	}
	if other > 0 {
		t.Errorf("%d requests neither succeeded nor failed fast with 503 and Retry-After", other)
	}
	// Writes work again.
	ok := eventually(5*time.Second, func() bool {
		resp, err := send(ctx, request{Method: http.MethodPut, URL: userURL(top.EntryURL, writers[0].ID), Token: writers[0].Token,
			Body: map[string]any{"profile": map[string]string{"name": "after the pause"}}})
		return err == nil && resp.Status == http.StatusOK
	})
	if !ok {
		t.Errorf("writes still failing 5s after the primary resumed")
	}
	// Every instance, not only the one that took that write, must take
	// writes again before the next test shares the topology.
	for _, a := range appURLs(top) {
		if !eventually(5*time.Second, func() bool {
			resp, err := send(ctx, request{Method: http.MethodGet, URL: a + "/readyz?write=1"})
			return err == nil && resp.Status == http.StatusOK
		}) {
			t.Errorf("%s/readyz?write=1 still failing 5s after the primary resumed", a)
		}
	}
}

func describe(r *response) string {
	if r == nil {
		return "no response"
	}
	return fmt.Sprintf("%d %s", r.Status, r.Body)
}

// While Redis is down, an instance that did not take a write stops serving
// the old anonymous view within the degraded L1 bound (--l1-ttl-degraded,
// 1s by default; see docs/consistency.md), instead of until Redis returns.
//
// It runs after the primary-pause test: for markerTTL after Redis trouble,
// own reads go to the primary (see httpapi's ryw.go), which a paused
// primary would then fail.
func TestL1StalenessBoundedWhileRedisDown(t *testing.T) {
	top := phase3.Topology(t)
	apps := appURLs(top)
	ctx := context.Background()
	u := signUp(t, top.EntryURL)
	waitReplicated(t, top, u.ID, 1)
	anonymous := func(app string) string {
		return profileName(t, mustSend(t, request{Method: http.MethodGet, URL: userURL(app, u.ID), XFF: clientAddr()}, http.StatusOK).Body)
	}
	// app-2's L1 holds the user.
	before := anonymous(apps[1])
	redisDown := false
	t.Cleanup(func() {
		if redisDown {
			if err := top.Inject(ctx, "redis", topologies.FaultRestart); err != nil {
				t.Errorf("restart redis: %v", err)
			}
		}
		waitBreakersClosed(t, apps, u)
	})
	redisDown = true
	if err := top.Inject(ctx, "redis", topologies.FaultKill); err != nil {
		t.Fatalf("kill redis: %v", err)
	}
	// The write goes through app-1; its invalidation cannot reach app-2.
	const renamed = "renamed while redis is down"
	written := time.Now()
	setName(t, apps[0], u, renamed)
	const bound = time.Second
	var got string
	for {
		got = anonymous(apps[1])
		if got == renamed || time.Since(written) > 3*bound {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(written)
	t.Logf("app-2 served %q before the write; the new name %v after the write, with Redis down (bound %v)", before, took.Round(time.Millisecond), bound)
	// The bound, plus the time to notice the outage, a replica's lag and
	// the polling.
	if got != renamed || took > bound+250*time.Millisecond {
		t.Errorf("anonymous GET at app-2 %v after a write at app-1 with Redis down: name %q, want %q within %v",
			took.Round(time.Millisecond), got, renamed, bound)
	}
	if err := top.Inject(ctx, "redis", topologies.FaultRestart); err != nil {
		t.Fatalf("restart redis: %v", err)
	}
	redisDown = false
}
