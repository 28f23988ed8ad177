package flows

import (
	"context"
	"fmt"
	"net/http"
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
	for c := range 8 {
		wg.Go(func() {
			// 200 GETs a second per client, far below each token's and
			// address's budget.
			tick := time.NewTicker(5 * time.Millisecond)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
				}
				u := users[(c+i)%len(users)]
				r := request{Method: http.MethodGet, URL: userURL(top.EntryURL, u.ID), XFF: clientAddr()}
				if i%2 == 0 {
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

// While Redis is down, an instance that did not take a write stops serving
// the old anonymous view within the degraded L1 bound (--l1-ttl-degraded,
// 1s by default; see docs/consistency.md), instead of until Redis returns.
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
