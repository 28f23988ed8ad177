package flows

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"scalelab/topologies"
)

// Redis killed mid-run costs no failed requests: a steady mix of reads and
// writes through HAProxy keeps being served while the L2 tier, the shared
// rate limits and the read-your-writes markers are gone (each instance
// falls back to the database, its own limiter and the primary), and once
// Redis is back every instance returns to it by itself: both circuit
// breakers close, L2 hits resume, each L1 is flushed on resubscription.
// No acknowledged write is lost.
//
// It kills the shared topology's Redis, so it runs last in the package
// (files run in name order) and restores Redis even when it fails.
func TestRedisKilledMidRunFailsNoRequests(t *testing.T) {
	top := phase3.Topology(t)
	apps := appURLs(top)
	ctx := context.Background()

	const (
		clients  = 4
		interval = 20 * time.Millisecond // 50 req/s per client, 200 in all
		killAt   = 2 * time.Second
		backAt   = 4 * time.Second
		runFor   = 7 * time.Second
	)
	users := make([]*user, clients)
	for i := range users {
		users[i] = signUp(t, top.EntryURL)
	}
	for _, u := range users {
		waitReplicated(t, top, u.ID, 1)
	}

	redisDown := false
	t.Cleanup(func() {
		if redisDown {
			if err := top.Inject(ctx, "redis", topologies.FaultRestart); err != nil {
				t.Errorf("restart redis: %v", err)
			}
		}
		waitBreakersClosed(t, apps, users[0])
	})

	// What each client saw, by period: before the kill, while Redis was
	// down, after it was restarted.
	type tally struct {
		ok, throttled, failed int
		ownBehind             int // own reads older than the client's last acknowledged write
		slowest               time.Duration
		failures              []string
	}
	periods := []string{"before", "down", "after"}
	var mu sync.Mutex
	tallies := map[string]*tally{}
	for _, p := range periods {
		tallies[p] = &tally{}
	}
	var killedAt, restartedAt time.Time // set before the period flips
	period := func(sent time.Time) string {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !restartedAt.IsZero() && sent.After(restartedAt):
			return "after"
		case !killedAt.IsZero() && sent.After(killedAt):
			return "down"
		}
		return "before"
	}
	lastName := make([]string, clients) // last acknowledged name per user
	posted := make([]int, clients)      // acknowledged records per user

	start := time.Now()
	runCtx, stop := context.WithTimeout(ctx, runFor)
	defer stop()
	var wg sync.WaitGroup
	for c := range clients {
		u, other := users[c], users[(c+1)%clients]
		wg.Go(func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			acked := -1 // this client's last acknowledged write, by i
			for i := 0; ; i++ {
				select {
				case <-runCtx.Done():
					return
				case <-tick.C:
				}
				var r request
				name := ""
				switch i % 10 {
				case 0, 1:
					name = fmt.Sprintf("c%d-%d", c, i)
					r = request{Method: http.MethodPut, URL: userURL(top.EntryURL, u.ID), Token: u.Token,
						Body: map[string]any{"profile": map[string]string{"name": name}}}
				case 2:
					r = request{Method: http.MethodPost, URL: userURL(top.EntryURL, u.ID) + "/data", Token: u.Token,
						Body: map[string]any{"data": i}}
				case 8, 9:
					r = request{Method: http.MethodGet, URL: userURL(top.EntryURL, other.ID), XFF: clientAddr()}
				default:
					r = request{Method: http.MethodGet, URL: userURL(top.EntryURL, u.ID), Token: u.Token}
				}
				own := r.Method == http.MethodGet && r.Token != ""
				sent := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				resp, err := send(rctx, r)
				cancel()
				took := time.Since(sent)
				p := period(sent)
				mu.Lock()
				tl := tallies[p]
				tl.slowest = max(tl.slowest, took)
				switch {
				case err != nil:
					tl.failed++
					tl.failures = append(tl.failures, fmt.Sprintf("%s %s at %v: %v", r.Method, r.URL, sent.Sub(start).Round(time.Millisecond), err))
				case resp.Status == http.StatusTooManyRequests:
					tl.throttled++
				case resp.Status >= 400: // 5xx, or any refusal the outage must not cause
					tl.failed++
					tl.failures = append(tl.failures, fmt.Sprintf("%s %s at %v: %d %s", r.Method, r.URL, sent.Sub(start).Round(time.Millisecond), resp.Status, resp.Body))
				default:
					tl.ok++
					if name != "" {
						lastName[c] = name
						acked = i
					}
					if own {
						// Read-your-writes holds through the outage too:
						// without Redis, own reads go to the primary.
						var rc, ri int
						if n, _ := nameOf(resp.Body); n != "initial" {
							if _, err := fmt.Sscanf(n, "c%d-%d", &rc, &ri); err != nil || rc != c {
								ri = -2
							}
						} else {
							ri = -1
						}
						if ri < acked {
							tl.ownBehind++
							tl.failures = append(tl.failures, fmt.Sprintf("own GET at %v: name %s, last acknowledged write c%d-%d",
								sent.Sub(start).Round(time.Millisecond), resp.Body, c, acked))
						}
					}
					if r.Method == http.MethodPost {
						posted[c]++
					}
				}
				mu.Unlock()
			}
		})
	}

	time.Sleep(time.Until(start.Add(killAt)))
	mu.Lock()
	killedAt = time.Now()
	mu.Unlock()
	redisDown = true
	if err := top.Inject(ctx, "redis", topologies.FaultKill); err != nil {
		t.Fatalf("kill redis: %v", err)
	}
	time.Sleep(time.Until(start.Add(backAt)))
	if err := top.Inject(ctx, "redis", topologies.FaultRestart); err != nil {
		t.Fatalf("restart redis: %v", err)
	}
	redisDown = false
	mu.Lock()
	restartedAt = time.Now()
	mu.Unlock()
	afterRestart := make([]metrics, len(apps))
	for i, a := range apps {
		afterRestart[i] = scrape(t, a)
	}
	// The breakers close under the running load, by themselves.
	recovery := waitBreakersClosed(t, apps, users[0])
	wg.Wait()

	failed, behind := 0, 0
	for _, p := range periods {
		tl := tallies[p]
		failed += tl.failed
		behind += tl.ownBehind
		t.Logf("%-6s ok %4d, throttled %d, failed %d, own reads behind own write %d, slowest %v",
			p, tl.ok, tl.throttled, tl.failed, tl.ownBehind, tl.slowest.Round(time.Millisecond))
		for _, f := range tl.failures {
			t.Logf("  failed: %s", f)
		}
	}
	t.Logf("redis killed at %v, restarted (ready) at %v, every breaker closed %v later; %d failed requests in all",
		killedAt.Sub(start).Round(time.Millisecond), restartedAt.Sub(start).Round(time.Millisecond), recovery.Round(time.Millisecond), failed)
	// Requests in flight at the kill may at worst see a reset; none should
	// fail, and the bound allows for a handful.
	const maxFailed = 5
	if failed > maxFailed {
		t.Errorf("%d requests failed around a Redis kill, want at most %d", failed, maxFailed)
	}
	if behind > 0 {
		t.Errorf("%d own reads returned a name older than the client's last acknowledged write, want 0", behind)
	}
	if tl := tallies["down"]; tl.ok == 0 {
		t.Errorf("no request was served while Redis was down")
	}
	for _, p := range periods {
		if n := tallies[p].throttled; n > 0 {
			t.Errorf("%d requests throttled %s, want 0 (each client's own budget is far above its rate)", n, p)
		}
	}

	// L2 serves hits again.
	ok := eventually(5*time.Second, func() bool {
		for _, u := range users {
			for _, a := range apps {
				send(ctx, request{Method: http.MethodGet, URL: userURL(a, u.ID), XFF: clientAddr()})
			}
		}
		var hits, before float64
		for i, a := range apps {
			hits += scrape(t, a).sum("scalelab_cache_hits_total", `tier="l2"`)
			before += afterRestart[i].sum("scalelab_cache_hits_total", `tier="l2"`)
		}
		return hits > before
	})
	if !ok {
		t.Errorf("no L2 hit on any instance within 5s of Redis' restart")
	}
	for i, a := range apps {
		m := scrape(t, a)
		t.Logf("app-%d: l1 flushes on resubscribe %.0f, l2 errors %.0f, l2 bypassed %.0f, l2 hits %.0f, l2 fills stored %.0f, stale %.0f, skipped %.0f, limiter fallbacks %.0f, invalidations pending %.0f",
			i+1, m.sum("scalelab_cache_l1_flushes_total"), m.sum("scalelab_cache_errors_total", `tier="l2"`),
			m.sum("scalelab_cache_bypass_total", `tier="l2"`), m.sum("scalelab_cache_hits_total", `tier="l2"`),
			m.sum("scalelab_cache_fills_total", `result="stored"`), m.sum("scalelab_cache_fills_total", `result="stale"`),
			m.sum("scalelab_cache_fills_total", `result="skipped"`), m.sum("scalelab_ratelimit_fallback_total"),
			m.sum("scalelab_cache_invalidations_pending"))
	}

	// No acknowledged write is lost: each user reads back their last
	// acknowledged name and every acknowledged record.
	for c, u := range users {
		resp := mustSend(t, request{Method: http.MethodGet, URL: userURL(top.EntryURL, u.ID), Token: u.Token}, http.StatusOK)
		if got := profileName(t, resp.Body); lastName[c] != "" && got != lastName[c] {
			t.Errorf("user %d: name %q after the run, want the last acknowledged %q", c, got, lastName[c])
		}
		resp = mustSend(t, request{Method: http.MethodGet, URL: userURL(top.EntryURL, u.ID) + "/data?limit=100", Token: u.Token}, http.StatusOK)
		var page struct{ Items []json.RawMessage }
		if err := json.Unmarshal(resp.Body, &page); err != nil {
			t.Fatalf("GET data answered %s: %v", resp.Body, err)
		}
		if len(page.Items) < posted[c] {
			t.Errorf("user %d has %d records after the run, want the %d acknowledged", c, len(page.Items), posted[c])
		}
	}
}

// waitBreakersClosed sends requests through every instance until each
// reports both Redis circuit breakers closed (a breaker only probes Redis
// when a request needs it), for at most 10s, and returns how long that
// took.
func waitBreakersClosed(t *testing.T, apps []string, u *user) time.Duration {
	t.Helper()
	ctx := context.Background()
	start := time.Now()
	var states string
	ok := eventually(10*time.Second, func() bool {
		states = ""
		closed := true
		for i, a := range apps {
			send(ctx, request{Method: http.MethodGet, URL: userURL(a, u.ID), Token: u.Token})
			m := scrape(t, a)
			l2, limiter := m.sum("scalelab_cache_breaker_state", `tier="l2"`), m.sum("scalelab_ratelimit_breaker_state")
			states += fmt.Sprintf(" app-%d l2=%.0f limiter=%.0f", i+1, l2, limiter)
			closed = closed && l2 == 0 && limiter == 0
		}
		return closed
	})
	if !ok {
		t.Errorf("Redis circuit breakers not all closed within 10s (0 closed, 1 open, 2 half-open):%s", states)
	}
	return time.Since(start)
}
