// Package ratelimit limits /api/v1 requests and failed logins with GCRA,
// shared by every app instance through Redis (go-redis/redis_rate), and
// falls back to an in-process limiter when there is no Redis or while it is
// down, so that a Redis outage never fails a request.
//
// Budgets (Config):
//
//   - a client with a token: Rate requests/s, burst 2×Rate, keyed by the
//     token's subject;
//   - a client without a token, writing (sign-up, token requests): the same
//     budget, keyed by client address;
//   - a client without a token, reading: a stricter budget of its own,
//     AnonymousRate requests/s (Rate/2 by default, at least 1), burst
//     2×AnonymousRate, keyed by client address. Anonymous reads are the
//     cheapest requests to send in bulk (no sign-up, no token) and the
//     ones a scraper sends, so they get less;
//   - sign-ups: SignupLimit per minute per client address (burst
//     SignupLimit), apart from the request budget: each one costs an
//     argon2 hash, a thousand times a cached read;
//   - failed token requests: LoginLimit per minute per (login as typed,
//     client address) and, apart from that, per client address (burst
//     LoginLimit each). No budget is keyed by the account: failures from
//     other addresses never refuse the owner (no lockout), and an email and
//     a username spend budgets of their own, so the limiter cannot tell an
//     attacker which email belongs to which username (no oracle);
//   - a per-login ceiling across all addresses (LoginCeiling per minute,
//     burst 5×LoginLimit by default) never refuses: past half of it every
//     attempt on that login waits, up to LoginMaxDelay, so a distributed
//     guesser is slowed while the owner still gets in.
//
// Client addresses are IPv4 addresses or IPv6 /64 networks: one IPv6
// host usually controls a whole /64, and limiting single addresses there
// would limit nothing.
//
// Request budgets are spent in Redis in batches: each instance admits a
// share of what Redis last said remained without asking, and records those
// requests with the next call (see lease.go), so a client far from its
// limit costs about one Redis call per 50ms per instance, not one per
// request; near the limit every request asks Redis.
//
// While Redis is unavailable each instance limits on its own, so the
// cluster-wide budget is briefly Rate × instances. That is the price of
// never failing a request for a dead cache; the fallback is counted in
// scalelab_ratelimit_fallback_total.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"scalelab/internal/breaker"
)

// Kind names a budget. It is the label of the rejection metric and part of
// the Redis key.
type Kind string

// The budgets.
const (
	KindToken        Kind = "token"         // per token subject
	KindAddress      Kind = "address"       // per client address, anonymous writes
	KindAnonymous    Kind = "anonymous"     // per client address, anonymous reads
	KindSignup       Kind = "signup"        // sign-ups per client address
	KindLogin        Kind = "login"         // failed token requests per (login, address)
	KindLoginAddress Kind = "login_address" // failed token requests per address
	KindLoginCeiling Kind = "login_ceiling" // failed token requests per login, all addresses: delays only
)

// gcraLimit is a GCRA budget: Rate events per Period, with bursts of up to
// Burst events.
type gcraLimit = redis_rate.Limit

// Decision is the outcome of one check, with what the HTTP layer needs for
// the RateLimit-* and Retry-After headers (SetHeaders writes them).
type Decision struct {
	Allowed bool
	Kind    Kind // the budget that decided
	// Limit is the budget's burst: how many requests a fresh client may send
	// at once. 0 means no limit applies (and SetHeaders writes nothing).
	Limit int
	// Remaining is how many more requests would pass right now.
	Remaining int
	// ResetAfter is how long until the budget is full again.
	ResetAfter time.Duration
	// RetryAfter is how long until the next request would pass; 0 when
	// Allowed.
	RetryAfter time.Duration
	// Local reports that the in-process limiter decided (no Redis, or Redis
	// unavailable).
	Local bool
	// Delay is how long an allowed login attempt should wait before its
	// password is verified: the per-login ceiling's progressive slowdown.
	Delay time.Duration
}

// SetHeaders writes RateLimit-Limit, RateLimit-Remaining and
// RateLimit-Reset (whole seconds, rounded up, at least 0) for d, and on a
// rejection Retry-After (whole seconds, rounded up, at least 1). It writes
// nothing when no limit applied.
func SetHeaders(h http.Header, d Decision) {
	if d.Limit <= 0 {
		return
	}
	h.Set("RateLimit-Limit", strconv.Itoa(d.Limit))
	h.Set("RateLimit-Remaining", strconv.Itoa(max(0, d.Remaining)))
	h.Set("RateLimit-Reset", strconv.FormatInt(ceilSeconds(d.ResetAfter, 0), 10))
	if !d.Allowed {
		h.Set("Retry-After", strconv.FormatInt(ceilSeconds(d.RetryAfter, 1), 10))
	}
}

func ceilSeconds(d time.Duration, atLeast int64) int64 {
	return max(atLeast, int64(math.Ceil(d.Seconds())))
}

// Config configures a Limiter. Zero values take the documented defaults.
type Config struct {
	// Rate is requests per second per client (--rate-limit); the burst is
	// 2×Rate. 0 turns request limiting off.
	Rate int
	// AnonymousRate is requests per second per address for anonymous reads;
	// default max(1, Rate/2). Burst 2×AnonymousRate.
	AnonymousRate int
	// LoginLimit is failed token requests per minute per (login, client
	// address) and per client address (--login-limit). 0 turns login
	// limiting off.
	LoginLimit int
	// LoginCeiling is the per-login budget across all addresses, failed
	// attempts per minute; default 2×LoginLimit, burst 5×LoginLimit. It
	// only ever delays: LoginMaxDelay (default 2s) once spent.
	LoginCeiling  int
	LoginMaxDelay time.Duration
	// SignupLimit is sign-ups per minute per client address
	// (--signup-limit), burst SignupLimit. 0 turns it off.
	SignupLimit int

	// Timeout bounds each Redis call; default 50ms. The go-redis client
	// must have ContextTimeoutEnabled (cache.NewRedisClient sets it) for a
	// hung Redis to be cut off at this bound.
	Timeout time.Duration
	// BreakerThreshold is how many consecutive Redis failures open the
	// breaker; default 3. BreakerCooldown is how long it stays open at
	// least before a few requests probe Redis again; default 1s (see
	// package breaker).
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// LocalMaxKeys bounds the local limiter's memory; default 100000 keys.
	LocalMaxKeys int
	// KeyPrefix prefixes every Redis key (after redis_rate's own "rate:");
	// default "scalelab:".
	KeyPrefix string

	// Registerer receives the metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// Logger gets breaker state changes; nil discards them.
	Logger *slog.Logger
	// Now is the local limiter's clock; time.Now when nil.
	Now func() time.Time
}

// Limiter decides whether requests and login attempts may proceed. It is
// safe for concurrent use and owns no goroutines.
type Limiter struct {
	redis   *redis_rate.Limiter // nil without Redis
	local   *local
	leases  *leases
	now     func() time.Time
	breaker *breaker.Breaker
	timeout time.Duration
	prefix  string
	log     *slog.Logger
	m       *metrics

	request, anonymous, login, ceiling, signup gcraLimit
	requestOn, loginOn, signupOn               bool
	maxDelay                                   time.Duration
}

// New returns a Limiter that shares its budgets through rdb, or limits
// in-process only when rdb is nil.
func New(rdb redis.UniversalClient, cfg Config) (*Limiter, error) {
	if cfg.Rate < 0 || cfg.AnonymousRate < 0 || cfg.LoginLimit < 0 || cfg.LoginCeiling < 0 || cfg.SignupLimit < 0 {
		return nil, errors.New("rate limiter: negative limit")
	}
	if cfg.LoginCeiling == 0 {
		cfg.LoginCeiling = 2 * cfg.LoginLimit
	}
	if cfg.LoginMaxDelay <= 0 {
		cfg.LoginMaxDelay = 2 * time.Second
	}
	if cfg.AnonymousRate == 0 {
		cfg.AnonymousRate = max(1, cfg.Rate/2)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 50 * time.Millisecond
	}
	if cfg.BreakerThreshold <= 0 {
		cfg.BreakerThreshold = 3
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = time.Second
	}
	if cfg.LocalMaxKeys <= 0 {
		cfg.LocalMaxKeys = 100_000
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "scalelab:"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	l := &Limiter{
		local:     newLocal(cfg.LocalMaxKeys, cfg.Now),
		leases:    newLeases(cfg.LocalMaxKeys),
		now:       cfg.Now,
		timeout:   cfg.Timeout,
		prefix:    cfg.KeyPrefix,
		log:       cfg.Logger,
		m:         m,
		request:   gcraLimit{Rate: cfg.Rate, Burst: 2 * cfg.Rate, Period: time.Second},
		anonymous: gcraLimit{Rate: cfg.AnonymousRate, Burst: 2 * cfg.AnonymousRate, Period: time.Second},
		login:     gcraLimit{Rate: cfg.LoginLimit, Burst: cfg.LoginLimit, Period: time.Minute},
		ceiling:   gcraLimit{Rate: cfg.LoginCeiling, Burst: max(cfg.LoginCeiling, 5*cfg.LoginLimit), Period: time.Minute},
		signup:    gcraLimit{Rate: cfg.SignupLimit, Burst: cfg.SignupLimit, Period: time.Minute},
		requestOn: cfg.Rate > 0,
		loginOn:   cfg.LoginLimit > 0,
		signupOn:  cfg.SignupLimit > 0,
		maxDelay:  cfg.LoginMaxDelay,
	}
	l.breaker = breaker.New(cfg.BreakerThreshold, cfg.BreakerCooldown, func(from, to breaker.State) {
		m.breaker.Set(float64(to))
		m.transitions.WithLabelValues(from.String(), to.String()).Inc()
		l.log.Warn("rate limiter: redis circuit breaker", "from", from.String(), "to", to.String())
	})
	if rdb != nil {
		l.redis = redis_rate.NewLimiter(rdb)
	}
	return l, nil
}

// Request describes a request for AllowRequest.
type Request struct {
	// Subject is the verified token's subject (the user id), empty for an
	// anonymous request. Keying by user rather than by token string means
	// minting more tokens buys no more budget.
	Subject string
	// Addr is the client address (ClientIP).
	Addr netip.Addr
	// Read marks a safe method (GET, HEAD): anonymous reads have their own
	// stricter budget.
	Read bool
}

// AllowRequest spends one request from r's budget: the token's when it has
// one, else the address's (the anonymous-read budget for reads).
func (l *Limiter) AllowRequest(ctx context.Context, r Request) Decision {
	switch {
	case !l.requestOn:
		return Decision{Allowed: true}
	case r.Subject != "":
		return l.Allow(ctx, KindToken, r.Subject)
	case r.Read:
		return l.Allow(ctx, KindAnonymous, addrKey(r.Addr))
	default:
		return l.Allow(ctx, KindAddress, addrKey(r.Addr))
	}
}

// Allow spends one request from the kind's budget for key.
func (l *Limiter) Allow(ctx context.Context, kind Kind, key string) Decision {
	lim, on := l.budget(kind)
	if !on {
		return Decision{Allowed: true, Kind: kind}
	}
	d := l.decide(ctx, kind, key, lim, 1)
	if !d.Allowed {
		l.m.rejections.WithLabelValues(string(kind)).Inc()
	}
	return d
}

// AllowSignup spends one sign-up from addr's budget.
func (l *Limiter) AllowSignup(ctx context.Context, addr netip.Addr) Decision {
	return l.Allow(ctx, KindSignup, addrKey(addr))
}

// CheckLogin reports, without spending anything, whether a token request
// for login (as the client typed it) from addr may be tried: it is refused
// while the (login, address) or the address's failure budget is spent.
// Failures from other addresses never refuse it; they only delay it
// (Decision.Delay) once the login's ceiling is half spent. Call it before
// verifying the password, so a refused attempt costs no argon2 work, and
// call LoginFailed after each failure.
//
// Concurrent attempts may all pass the check before any failure is counted,
// so a burst of parallel guesses can overshoot the budget by the number in
// flight; sequential guessing cannot.
func (l *Limiter) CheckLogin(ctx context.Context, login string, addr netip.Addr) Decision {
	if !l.loginOn {
		return Decision{Allowed: true}
	}
	byPair := l.decide(ctx, KindLogin, pairKey(login, addr), l.login, 0)
	byAddr := l.decide(ctx, KindLoginAddress, addrKey(addr), l.login, 0)
	d := stricter(byPair, byAddr)
	if !d.Allowed {
		l.m.rejections.WithLabelValues(string(d.Kind)).Inc()
		return d
	}
	d.Delay = l.ceilingDelay(l.decide(ctx, KindLoginCeiling, loginKey(login), l.ceiling, 0))
	if d.Delay > 0 {
		l.m.delayed.Inc()
	}
	return d
}

// ceilingDelay turns what is left of a login's ceiling into a wait: none
// while more than half is left, then growing linearly to maxDelay as it
// runs out.
func (l *Limiter) ceilingDelay(c Decision) time.Duration {
	half := float64(l.ceiling.Burst) / 2
	left := float64(c.Remaining)
	if !c.Allowed {
		left = 0
	}
	if left >= half {
		return 0
	}
	return time.Duration(float64(l.maxDelay) * (1 - left/half))
}

// LoginFailed counts one failed token request against (login, addr), addr
// and the login's ceiling.
func (l *Limiter) LoginFailed(ctx context.Context, login string, addr netip.Addr) {
	if !l.loginOn {
		return
	}
	l.decide(ctx, KindLogin, pairKey(login, addr), l.login, 1)
	l.decide(ctx, KindLoginAddress, addrKey(addr), l.login, 1)
	l.decide(ctx, KindLoginCeiling, loginKey(login), l.ceiling, 1)
}

// stricter returns the decision to report of two that both apply.
func stricter(a, b Decision) Decision {
	switch {
	case a.Allowed != b.Allowed:
		if !a.Allowed {
			return a
		}
		return b
	case !a.Allowed:
		if a.RetryAfter >= b.RetryAfter {
			return a
		}
		return b
	case a.Remaining <= b.Remaining:
		return a
	default:
		return b
	}
}

func (l *Limiter) budget(kind Kind) (gcraLimit, bool) {
	switch kind {
	case KindToken, KindAddress:
		return l.request, l.requestOn
	case KindAnonymous:
		return l.anonymous, l.requestOn
	case KindLogin, KindLoginAddress:
		return l.login, l.loginOn
	case KindLoginCeiling:
		return l.ceiling, l.loginOn
	case KindSignup:
		return l.signup, l.signupOn
	default:
		return gcraLimit{}, false
	}
}

// decide takes n from key's budget (n = 0 only looks) in Redis, or locally
// when there is no Redis, the breaker is open, or the call fails.
func (l *Limiter) decide(ctx context.Context, kind Kind, key string, lim gcraLimit, n int) Decision {
	fullKey := l.prefix + string(kind) + ":" + key
	if l.redis != nil {
		if l.breaker.Allow() {
			var d Decision
			var err error
			if n == 1 && (kind == KindToken || kind == KindAddress || kind == KindAnonymous) {
				d, err = l.decideLeased(ctx, fullKey, lim)
			} else {
				d, err = l.decideRedis(ctx, fullKey, lim, n)
			}
			if err == nil {
				l.breaker.Success()
				d.Kind = kind
				return d
			}
			// A caller that went away is not Redis' fault.
			if ctx.Err() == nil {
				l.breaker.Failure()
				l.m.redisErrors.Inc()
				l.log.Debug("rate limiter: redis call failed; deciding locally", "kind", kind, "err", err)
			}
		}
		l.m.fallback.Inc()
	}
	d := l.local.allow(fullKey, lim, n)
	d.Kind = kind
	return d
}

func (l *Limiter) decideRedis(ctx context.Context, key string, lim gcraLimit, n int) (Decision, error) {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	res, err := l.redis.AllowN(ctx, key, lim, n)
	if err != nil {
		return Decision{}, fmt.Errorf("redis_rate allow %s: %w", key, err)
	}
	d := Decision{
		Allowed:    res.Allowed > 0 || (n == 0 && res.Remaining >= 1),
		Limit:      lim.Burst,
		Remaining:  res.Remaining,
		ResetAfter: max(0, res.ResetAfter),
		RetryAfter: max(0, res.RetryAfter),
	}
	if n == 0 && !d.Allowed {
		// A look spends nothing, so redis_rate reports no RetryAfter. GCRA
		// leaves Burst - ResetAfter/interval requests; one more passes once
		// ResetAfter has shrunk to (Burst-1) intervals.
		interval := lim.Period / time.Duration(lim.Rate)
		d.RetryAfter = max(0, d.ResetAfter-time.Duration(lim.Burst-1)*interval)
	}
	if !d.Allowed {
		d.Remaining = 0
	}
	return d, nil
}

// addrKey keys IPv4 clients by address and IPv6 clients by /64.
func addrKey(a netip.Addr) string {
	if !a.IsValid() {
		return "unknown"
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// loginKey keys a login case-insensitively (logins are) and hashed, so that
// Redis holds no e-mail addresses and keys stay short.
func loginKey(login string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(login))))
	return hex.EncodeToString(sum[:16])
}

// pairKey keys a (login, address) pair: the login case-insensitively and
// hashed together with the address.
func pairKey(login string, addr netip.Addr) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(login)) + "\x00" + addrKey(addr)))
	return hex.EncodeToString(sum[:16])
}

type metrics struct {
	delayed    prometheus.Counter
	rejections *prometheus.CounterVec
	fallback   prometheus.Counter
	leased     prometheus.Counter
	// leaseOvershoot counts requests admitted from a lease that Redis'
	// budget could no longer hold when the debt was recorded.
	leaseOvershoot prometheus.Counter
	redisErrors    prometheus.Counter
	breaker        prometheus.Gauge
	transitions    *prometheus.CounterVec // by from, to
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		delayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_ratelimit_login_delayed_total",
			Help: "Token requests slowed down because their login's ceiling across all addresses was half spent.",
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_ratelimit_rejections_total",
			Help: "Requests and login attempts refused by the rate limiter, by budget.",
		}, []string{"kind"}),
		fallback: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_ratelimit_fallback_total",
			Help: "Rate-limit decisions made by the local limiter because Redis was unavailable.",
		}),
		leased: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_ratelimit_leased_total",
			Help: "Requests admitted locally from the instance's share of a budget, recorded in Redis later in a batch.",
		}),
		leaseOvershoot: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_ratelimit_lease_overshoot_total",
			Help: "Requests admitted from a share that the shared budget could no longer hold when recorded.",
		}),
		redisErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_ratelimit_redis_errors_total",
			Help: "Rate-limiter calls to Redis that failed or timed out.",
		}),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scalelab_ratelimit_breaker_state",
			Help: "The rate limiter's Redis circuit breaker: 0 closed, 1 open, 2 half-open.",
		}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_ratelimit_breaker_transitions_total",
			Help: "The rate limiter's Redis circuit breaker changes of state, by transition.",
		}, []string{"from", "to"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.delayed, m.rejections, m.fallback, m.leased, m.leaseOvershoot, m.redisErrors, m.breaker, m.transitions} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register rate-limit metrics: %w", err)
			}
		}
	}
	return m, nil
}
