package ratelimit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"scalelab/internal/breaker"
	"scalelab/internal/redisserver/redistest"
	"scalelab/server/cache"
)

// mustRedisLimiter returns a Limiter with its own client to addr, as a
// second app instance would have.
func mustRedisLimiter(t *testing.T, addr string, cfg Config) *Limiter {
	t.Helper()
	rdb, err := cache.NewRedisClient(cache.RedisOptions{Addrs: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.Timeout == 0 {
		// These tests judge what Redis decides: a call that a loaded test
		// machine slows past the 50ms default would be decided locally.
		// The tests of the fallback set their own.
		cfg.Timeout = 2 * time.Second
	}
	l, err := New(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestRedisShared: two instances, each with its own client, spend one
// budget.
func TestRedisShared(t *testing.T) {
	r := redistest.Start(t)
	cfg := Config{Rate: 10, LoginLimit: 3, KeyPrefix: "shared-test:"}
	a := mustRedisLimiter(t, r.Addr(), cfg)
	b := mustRedisLimiter(t, r.Addr(), cfg)
	ctx := context.Background()

	alice := Request{Subject: "alice", Addr: addr("192.0.2.1")}
	allowed := 0
	for i := range 40 {
		l := a
		if i%2 == 1 {
			l = b
		}
		d := l.AllowRequest(ctx, alice)
		if d.Local {
			t.Fatalf("decision %d made locally with Redis up", i)
		}
		if d.Allowed {
			allowed++
		}
	}
	// Burst 2×10; the loop takes a few ms, in which less than one more
	// request's worth refills.
	if allowed < 20 || allowed > 21 {
		t.Errorf("two instances allowed %d of 40, want the shared burst of 20", allowed)
	}
	d := b.AllowRequest(ctx, alice)
	if d.Allowed || d.Limit != 20 || d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond || d.ResetAfter < time.Second {
		t.Errorf("after the burst: %+v", d)
	}
	if got := counterValue(a.m.rejections.WithLabelValues("token")) + counterValue(b.m.rejections.WithLabelValues("token")); got < 19 {
		t.Errorf("token rejections = %v", got)
	}

	// Failed logins counted on one instance refuse on the other.
	for range 3 {
		if d := b.CheckLogin(ctx, "alice", alice.Addr); !d.Allowed {
			t.Fatalf("CheckLogin before 3 failures: %+v", d)
		}
		a.LoginFailed(ctx, "Alice", alice.Addr)
	}
	d = b.CheckLogin(ctx, "alice", alice.Addr)
	if d.Allowed || d.Local {
		t.Fatalf("CheckLogin after 3 failures: %+v", d)
	}
	if d.RetryAfter < 19*time.Second || d.RetryAfter > 20*time.Second {
		t.Errorf("login RetryAfter = %v, want about 20s", d.RetryAfter)
	}
	if d := b.CheckLogin(ctx, "bob", alice.Addr); d.Allowed || d.Kind != KindLoginAddress {
		t.Errorf("CheckLogin from the same address: %+v", d)
	}
	if d := b.CheckLogin(ctx, "alice", addr("192.0.2.78")); !d.Allowed {
		t.Errorf("CheckLogin of the login from another address: %+v, want allowed (no lockout)", d)
	}
}

// TestRedisLoginNoLockoutNoOracle: the lockout and oracle checks with the
// budgets shared through Redis.
func TestRedisLoginNoLockoutNoOracle(t *testing.T) {
	r := redistest.Start(t)
	l := mustRedisLimiter(t, r.Addr(), Config{LoginLimit: 3, KeyPrefix: "oracle-test:"})
	loginAttackChecks(t, l, 2*time.Second)
	if d := l.CheckLogin(context.Background(), "alice", addr("203.0.113.10")); d.Local {
		t.Errorf("decided locally with Redis up: %+v", d)
	}
}

// TestSignupBudget: sign-ups have their own small per-address budget.
func TestRedisSignupBudget(t *testing.T) {
	r := redistest.Start(t)
	l := mustRedisLimiter(t, r.Addr(), Config{Rate: 1000, SignupLimit: 5, KeyPrefix: "signup-test:"})
	ctx := context.Background()
	allowed := 0
	for range 20 {
		if l.AllowSignup(ctx, addr("192.0.2.5")).Allowed {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("AllowSignup passed %d of 20, want the burst of 5", allowed)
	}
	if d := l.AllowSignup(ctx, addr("192.0.2.6")); !d.Allowed || d.Limit != 5 || d.Kind != KindSignup {
		t.Errorf("AllowSignup from another address = %+v", d)
	}
}

// TestRedisFallback: while Redis hangs or is dead the local limiter
// decides, within the timeout and then at no cost, and Redis takes over
// again by itself.
func TestRedisFallback(t *testing.T) {
	r := redistest.Start(t)
	const timeout, cooldown = 50 * time.Millisecond, 100 * time.Millisecond
	reg := prometheus.NewRegistry()
	l := mustRedisLimiter(t, r.Addr(), Config{Rate: 100, Timeout: timeout, BreakerCooldown: cooldown, Registerer: reg})
	ctx := context.Background()
	req := Request{Subject: "carol"}
	if d := l.AllowRequest(ctx, req); !d.Allowed || d.Local {
		t.Fatalf("with Redis up: %+v", d)
	}

	check := func(phase string) {
		t.Helper()
		for i := range 5 {
			begin := time.Now()
			d := l.AllowRequest(ctx, req)
			if took := time.Since(begin); took > timeout+100*time.Millisecond {
				t.Errorf("%s: decision %d took %v", phase, i, took)
			}
			if !d.Allowed || !d.Local {
				t.Errorf("%s: decision %d = %+v, want allowed locally", phase, i, d)
			}
		}
		if st := l.breaker.State(); st != breaker.Open {
			t.Errorf("%s: breaker %v, want open", phase, st)
		}
		// With the breaker open a decision costs no network at all.
		begin := time.Now()
		for range 1000 {
			l.Allow(ctx, KindAddress, "bulk")
		}
		if took := time.Since(begin); took > 50*time.Millisecond {
			t.Errorf("%s: 1000 decisions with the breaker open took %v", phase, took)
		}
	}
	recovered := func(phase string) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Second)
		// Until Redis decides again and the breaker closed (after a few
		// good probes).
		for l.AllowRequest(ctx, req).Local || l.breaker.State() != breaker.Closed {
			if time.Now().After(deadline) {
				t.Fatalf("%s: still deciding locally 3s after Redis came back", phase)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	// For up to syncEvery carol's requests spend the share Redis last
	// gave this instance, without asking; past it each asks Redis.
	time.Sleep(syncEvery)
	check("redis hung")
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	recovered("after resume")

	if err := r.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(syncEvery)
	check("redis dead")
	// The local limiter still limits: burst 200 at 100/s.
	allowed := 0
	for range 300 {
		if l.AllowRequest(ctx, Request{Subject: "dave"}).Allowed {
			allowed++
		}
	}
	if allowed < 200 || allowed > 210 {
		t.Errorf("local fallback allowed %d of 300, want the burst of 200", allowed)
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	recovered("after restart")

	if got := counterValue(l.m.fallback); got < 2000 {
		t.Errorf("fallback counter = %v, want every local decision counted", got)
	}
	if got := counterValue(l.m.redisErrors); got < 2 {
		t.Errorf("redis errors = %v", got)
	}
	if got := counterValue(l.m.breaker); got != float64(breaker.Closed) {
		t.Errorf("breaker gauge = %v after recovery", got)
	}
}

// TestNoRedis: without a client every decision is local and nothing is
// counted as a fallback.
func TestNoRedis(t *testing.T) {
	var rdb redis.UniversalClient
	l, err := New(rdb, Config{Rate: 1})
	if err != nil {
		t.Fatal(err)
	}
	if d := l.AllowRequest(context.Background(), Request{Subject: "x"}); !d.Allowed || !d.Local {
		t.Errorf("decision = %+v", d)
	}
	if got := counterValue(l.m.fallback); got != 0 {
		t.Errorf("fallback counter = %v without Redis, want 0", got)
	}
}

// TestRedisSharedLeases: three instances that decide most requests from
// their shares of one Redis budget still hold it within ±10%, over it and
// far from it, while asking Redis for only a fraction of the requests.
func TestRedisSharedLeases(t *testing.T) {
	r := redistest.Start(t)
	ctx := context.Background()

	t.Run("over the limit", func(t *testing.T) {
		// A generous Redis timeout: this is about sharing, not a slow Redis
		// on a busy test machine.
		cfg := Config{Rate: 200, KeyPrefix: "lease-over:", Timeout: 5 * time.Second}
		var ls [3]*Limiter
		for i := range ls {
			ls[i] = mustRedisLimiter(t, r.Addr(), cfg)
		}
		// Each instance offers 400/s, together 6× the rate, for 2s.
		const each, dur = 400, 2 * time.Second
		start := time.Now()
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for _, l := range ls {
			wg.Go(func() {
				tick := time.NewTicker(time.Second / each)
				defer tick.Stop()
				for time.Since(start) < dur {
					<-tick.C
					if d := l.AllowRequest(ctx, Request{Subject: "shared", Addr: addr("192.0.2.1")}); d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		want := float64(2*cfg.Rate) + float64(cfg.Rate)*elapsed.Seconds()
		t.Logf("three instances admitted %d in %s; the shared budget allows %.0f", allowed.Load(), elapsed.Round(time.Millisecond), want)
		if got := float64(allowed.Load()); got < 0.9*want || got > 1.1*want {
			t.Errorf("three instances admitted %v in %s, want %.0f ±10%% (burst %d + %d/s)", got, elapsed.Round(time.Millisecond), want, 2*cfg.Rate, cfg.Rate)
		}
	})

	t.Run("far from the limit", func(t *testing.T) {
		cfg := Config{Rate: 100000, KeyPrefix: "lease-far:", Timeout: 5 * time.Second}
		var ls [3]*Limiter
		for i := range ls {
			ls[i] = mustRedisLimiter(t, r.Addr(), cfg)
		}
		const each = 2000
		var wg sync.WaitGroup
		for _, l := range ls {
			wg.Go(func() {
				for range each {
					if d := l.AllowRequest(ctx, Request{Subject: "busy", Addr: addr("192.0.2.1")}); !d.Allowed || d.Local {
						t.Errorf("AllowRequest far from the limit = %+v, want allowed by the shared budget", d)
						return
					}
				}
			})
		}
		wg.Wait()
		var leased float64
		for _, l := range ls {
			var m dto.Metric
			if err := l.m.leased.Write(&m); err != nil {
				t.Fatal(err)
			}
			leased += m.GetCounter().GetValue()
		}
		t.Logf("%v of %d requests decided from a share", leased, 3*each)
		if total := float64(3 * each); leased < 0.5*total {
			t.Errorf("%v of %v requests decided from a share, want most", leased, total)
		}
	})
}
