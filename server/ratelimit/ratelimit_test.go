package ratelimit

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func mustLimiter(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) add(d time.Duration)     { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func addr(s string) netip.Addr               { return netip.MustParseAddr(s) }
func spend(l *Limiter, n int, r Request) int { return spendCtx(context.Background(), l, n, r) }

func spendCtx(ctx context.Context, l *Limiter, n int, r Request) int {
	ok := 0
	for range n {
		if l.AllowRequest(ctx, r).Allowed {
			ok++
		}
	}
	return ok
}

func TestLocalBudgets(t *testing.T) {
	clock := newFakeClock()
	l := mustLimiter(t, Config{Rate: 10, Now: clock.now})
	alice := Request{Subject: "alice", Addr: addr("192.0.2.1")}

	// Burst is 2×Rate.
	if got := spend(l, 25, alice); got != 20 {
		t.Errorf("token burst: %d of 25 allowed, want 20", got)
	}
	d := l.AllowRequest(context.Background(), alice)
	if d.Allowed || d.Kind != KindToken || d.Limit != 20 || d.Remaining != 0 || !d.Local {
		t.Errorf("after burst: %+v", d)
	}
	if d.RetryAfter <= 0 || d.RetryAfter > 100*time.Millisecond {
		t.Errorf("RetryAfter = %v, want (0, 100ms]", d.RetryAfter)
	}
	if d.ResetAfter < 1900*time.Millisecond || d.ResetAfter > 2*time.Second {
		t.Errorf("ResetAfter = %v, want about 2s", d.ResetAfter)
	}
	// Another token is not affected; the same address without a token is
	// not either (tokens are not limited by address).
	if got := spend(l, 20, Request{Subject: "bob", Addr: alice.Addr}); got != 20 {
		t.Errorf("second token: %d of 20 allowed", got)
	}
	// Refill: 10/s.
	clock.add(500 * time.Millisecond)
	if got := spend(l, 10, alice); got != 5 {
		t.Errorf("after 0.5s: %d of 10 allowed, want 5", got)
	}

	// Anonymous reads: Rate/2, burst 2×that = 10; anonymous writes: full.
	anonRead := Request{Addr: addr("192.0.2.9"), Read: true}
	if got := spend(l, 15, anonRead); got != 10 {
		t.Errorf("anonymous reads: %d of 15 allowed, want 10", got)
	}
	if d := l.AllowRequest(context.Background(), anonRead); d.Kind != KindAnonymous || d.Limit != 10 {
		t.Errorf("anonymous read decision = %+v", d)
	}
	anonWrite := Request{Addr: addr("192.0.2.9")}
	if got := spend(l, 25, anonWrite); got != 20 {
		t.Errorf("anonymous writes: %d of 25 allowed, want 20", got)
	}

	// IPv6 clients share a /64.
	if got := spend(l, 10, Request{Addr: addr("2001:db8::1"), Read: true}); got != 10 {
		t.Fatalf("v6 first address: %d of 10", got)
	}
	if got := spend(l, 1, Request{Addr: addr("2001:db8::2"), Read: true}); got != 0 {
		t.Errorf("v6 same /64: %d allowed, want 0", got)
	}
	if got := spend(l, 1, Request{Addr: addr("2001:db8:0:1::1"), Read: true}); got != 1 {
		t.Errorf("v6 other /64: %d allowed, want 1", got)
	}
}

func TestDisabled(t *testing.T) {
	l := mustLimiter(t, Config{})
	for range 1000 {
		if d := l.AllowRequest(context.Background(), Request{Addr: addr("192.0.2.1")}); !d.Allowed || d.Limit != 0 {
			t.Fatalf("disabled limiter: %+v", d)
		}
	}
	if d := l.CheckLogin(context.Background(), "x", addr("192.0.2.1")); !d.Allowed {
		t.Fatal("disabled login limiter refused")
	}
	h := http.Header{}
	SetHeaders(h, Decision{Allowed: true})
	if len(h) != 0 {
		t.Errorf("SetHeaders with no limit wrote %v", h)
	}
}

func TestLocalLogin(t *testing.T) {
	clock := newFakeClock()
	l := mustLimiter(t, Config{LoginLimit: 3, Now: clock.now})
	ctx := context.Background()
	a1, a2 := addr("192.0.2.1"), addr("192.0.2.2")

	for i := range 3 {
		if d := l.CheckLogin(ctx, "Alice", a1); !d.Allowed {
			t.Fatalf("attempt %d refused: %+v", i, d)
		}
		l.LoginFailed(ctx, "alice", a1)
	}
	d := l.CheckLogin(ctx, "ALICE", a1) // same login, case-insensitively, same address
	if d.Allowed || d.Kind != KindLoginAddress && d.Kind != KindLogin {
		t.Fatalf("4th attempt on the login from the address = %+v, want refused", d)
	}
	if d.RetryAfter < 19*time.Second || d.RetryAfter > 20*time.Second {
		t.Errorf("RetryAfter = %v, want 20s (3 per minute)", d.RetryAfter)
	}
	d = l.CheckLogin(ctx, "bob", a1) // another login from the same address
	if d.Allowed || d.Kind != KindLoginAddress {
		t.Errorf("attempt from the address = %+v, want refused by address", d)
	}
	if d := l.CheckLogin(ctx, "alice", a2); !d.Allowed || d.Delay != 0 {
		t.Errorf("same login from another address = %+v, want allowed at once", d)
	}
	clock.add(20 * time.Second)
	if d := l.CheckLogin(ctx, "alice", a1); !d.Allowed {
		t.Errorf("after 20s: %+v, want allowed", d)
	}
}

// loginAttackChecks runs the lockout and oracle checks of issue 9 (finding
// 4) on l, whose LoginLimit is 3: dozens of failures from many addresses on
// one login never refuse it from a fresh address (they only delay it, up
// to maxDelay), and failures on an email spend nothing of the username's
// budgets.
func loginAttackChecks(t *testing.T, l *Limiter, maxDelay time.Duration) {
	t.Helper()
	ctx := context.Background()
	// 40 failures on the email, 2 from each of 20 addresses: each under
	// both of its address's budgets.
	for i := range 40 {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(i / 2)})
		if d := l.CheckLogin(ctx, "alice@example.com", a); !d.Allowed {
			t.Fatalf("failure %d from %v refused: %+v", i, a, d)
		}
		l.LoginFailed(ctx, "alice@example.com", a)
	}
	fresh := addr("203.0.113.9")
	d := l.CheckLogin(ctx, "alice@example.com", fresh)
	if !d.Allowed {
		t.Fatalf("owner from a fresh address after 40 failures elsewhere = %+v, want allowed (no lockout)", d)
	}
	if d.Delay <= 0 || d.Delay > maxDelay {
		t.Errorf("owner's delay after 40 failures = %v, want a slowdown in (0, %v]", d.Delay, maxDelay)
	}
	// The username of the same account, and an unrelated one, from the
	// same fresh address: the same answer, no delay, full budgets.
	alice := l.CheckLogin(ctx, "alice", fresh)
	other := l.CheckLogin(ctx, "zed", fresh)
	if !alice.Allowed || alice.Delay != 0 || alice.Remaining != other.Remaining || alice.Delay != other.Delay {
		t.Errorf("CheckLogin(alice) = %+v, CheckLogin(zed) = %+v: want the same, undelayed (no oracle)", alice, other)
	}
}

func TestLocalLoginNoLockoutNoOracle(t *testing.T) {
	clock := newFakeClock()
	l := mustLimiter(t, Config{LoginLimit: 3, Now: clock.now})
	loginAttackChecks(t, l, 2*time.Second)
}

func TestLocalBounded(t *testing.T) {
	clock := newFakeClock()
	l := mustLimiter(t, Config{Rate: 1, LocalMaxKeys: 100, Now: clock.now})
	for i := range 1000 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		l.AllowRequest(context.Background(), Request{Addr: a})
	}
	if n := len(l.local.buckets); n > 100 {
		t.Errorf("local limiter holds %d buckets, want at most 100", n)
	}
}

func TestSetHeaders(t *testing.T) {
	tests := []struct {
		name string
		d    Decision
		want map[string]string
	}{
		{"allowed", Decision{Allowed: true, Limit: 20, Remaining: 7, ResetAfter: 1300 * time.Millisecond},
			map[string]string{"RateLimit-Limit": "20", "RateLimit-Remaining": "7", "RateLimit-Reset": "2", "Retry-After": ""}},
		{"rejected, short wait", Decision{Limit: 20, ResetAfter: 2 * time.Second, RetryAfter: 20 * time.Millisecond},
			map[string]string{"RateLimit-Limit": "20", "RateLimit-Remaining": "0", "RateLimit-Reset": "2", "Retry-After": "1"}},
		{"rejected, long wait", Decision{Limit: 3, Remaining: -1, ResetAfter: 59500 * time.Millisecond, RetryAfter: 19500 * time.Millisecond},
			map[string]string{"RateLimit-Limit": "3", "RateLimit-Remaining": "0", "RateLimit-Reset": "60", "Retry-After": "20"}},
		{"full", Decision{Allowed: true, Limit: 5, Remaining: 5},
			map[string]string{"RateLimit-Reset": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			SetHeaders(h, tt.d)
			for k, v := range tt.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	trusted, err := ParseTrustedProxies([]string{"10.0.0.0/8", "127.0.0.1", " ", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		remote string
		xff    []string
		want   string
	}{
		{"direct", "192.0.2.1:5555", nil, "192.0.2.1"},
		{"untrusted peer's xff ignored", "192.0.2.1:5555", []string{"203.0.113.7"}, "192.0.2.1"},
		{"trusted peer, one hop", "10.1.2.3:80", []string{"203.0.113.7"}, "203.0.113.7"},
		{"client-sent xff ignored", "10.1.2.3:80", []string{"6.6.6.6, 203.0.113.7"}, "203.0.113.7"},
		{"chain of trusted proxies", "127.0.0.1:80", []string{"1.1.1.1, 203.0.113.7, 10.9.9.9"}, "203.0.113.7"},
		{"repeated header lines", "127.0.0.1:80", []string{"1.1.1.1", "203.0.113.7", "10.9.9.9"}, "203.0.113.7"},
		{"trusted peer, no xff", "10.1.2.3:80", nil, "10.1.2.3"},
		{"all trusted", "10.1.2.3:80", []string{"10.0.0.2, 10.0.0.1"}, "10.0.0.2"},
		{"garbage hop stops at last trusted", "10.1.2.3:80", []string{"203.0.113.7, bogus, 10.0.0.5"}, "10.0.0.5"},
		{"hop with port", "10.1.2.3:80", []string{"203.0.113.7:4711"}, "203.0.113.7"},
		{"v6 hop", "[::1]:80", []string{"[2001:db8::5]:1234"}, "2001:db8::5"},
		{"v4-mapped peer", "[::ffff:192.0.2.1]:80", nil, "192.0.2.1"},
		{"v4-mapped trusted peer", "[::ffff:10.0.0.1]:80", []string{"203.0.113.7"}, "203.0.113.7"},
		{"bad remote", "nonsense", []string{"203.0.113.7"}, "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ClientIP(r, trusted).String(); got != tt.want {
				t.Errorf("ClientIP(%q, %q) = %s, want %s", tt.remote, tt.xff, got, tt.want)
			}
		})
	}
	if _, err := ParseTrustedProxies([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParseTrustedProxies accepted a bad prefix")
	}
	if _, err := ParseTrustedProxies([]string{"proxy.example"}); err == nil {
		t.Error("ParseTrustedProxies accepted a host name")
	}
}

func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	clock := newFakeClock()
	l, err := New(nil, Config{Rate: 1, Registerer: reg, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	spend(l, 5, Request{Addr: addr("192.0.2.1"), Read: true})
	if got := counterValue(l.m.rejections.WithLabelValues("anonymous")); got != 3 {
		t.Errorf("anonymous rejections = %v, want 3", got)
	}
	if _, err := New(nil, Config{Registerer: reg}); err == nil {
		t.Error("registering the metrics twice on one registry succeeded")
	}
}

// counterValue reads a counter or gauge (testutil would need another module).
func counterValue(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	if m.Counter != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

func TestLocalSignupBudget(t *testing.T) {
	clock := newFakeClock()
	l := mustLimiter(t, Config{SignupLimit: 3, Now: clock.now})
	ctx := context.Background()
	for i := range 3 {
		if d := l.AllowSignup(ctx, addr("192.0.2.1")); !d.Allowed {
			t.Fatalf("sign-up %d refused: %+v", i, d)
		}
	}
	d := l.AllowSignup(ctx, addr("192.0.2.1"))
	if d.Allowed || d.Kind != KindSignup || d.RetryAfter < 19*time.Second {
		t.Errorf("4th sign-up = %+v, want refused for 20s", d)
	}
	if d := l.AllowSignup(ctx, addr("192.0.2.2")); !d.Allowed {
		t.Errorf("sign-up from another address = %+v", d)
	}
	if d := mustLimiter(t, Config{Rate: 10}).AllowSignup(ctx, addr("192.0.2.1")); !d.Allowed || d.Limit != 0 {
		t.Errorf("sign-up budget off = %+v", d)
	}
}
