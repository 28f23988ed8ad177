package ratelimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// local is the in-process limiter used without Redis and while Redis is
// unavailable. x/time/rate is a token bucket, which admits exactly what
// GCRA admits for the same rate and burst (GCRA is the bucket expressed as
// one "theoretical arrival time"), so a client sees the same budget either
// way; only the sharing across instances is lost.
//
// The map of buckets is bounded without a goroutine: when it grows past
// maxKeys, or once a minute, buckets that have refilled completely are
// dropped (a full bucket is the same as a new one, so nothing is lost).
type local struct {
	maxKeys int
	now     func() time.Time

	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
	lastSweep time.Time
}

const sweepEvery = time.Minute

func newLocal(maxKeys int, now func() time.Time) *local {
	return &local{maxKeys: maxKeys, now: now, buckets: make(map[string]*rate.Limiter), lastSweep: now()}
}

func (l *local) bucket(key string, lim gcraLimit, now time.Time) *rate.Limiter {
	b, ok := l.buckets[key]
	if ok {
		return b
	}
	if len(l.buckets) >= l.maxKeys || now.Sub(l.lastSweep) > sweepEvery {
		l.sweep(now)
	}
	b = rate.NewLimiter(rate.Limit(float64(lim.Rate)/lim.Period.Seconds()), lim.Burst)
	l.buckets[key] = b
	return b
}

// sweep drops full buckets; if that is not enough, it drops arbitrary ones,
// which can only let a few extra requests through.
func (l *local) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys*9/10 {
			break
		}
		delete(l.buckets, k)
	}
}

// allow takes n tokens (n = 0 only looks) and reports the decision.
func (l *local) allow(key string, lim gcraLimit, n int) Decision {
	now := l.now()
	l.mu.Lock()
	b := l.bucket(key, lim, now)
	var ok bool
	if n > 0 {
		ok = b.AllowN(now, n)
	}
	tokens := b.TokensAt(now)
	l.mu.Unlock()
	if n == 0 { // a look: would one more pass?
		ok = tokens >= 1
	}

	perToken := lim.Period.Seconds() / float64(lim.Rate)
	d := Decision{
		Allowed:    ok,
		Limit:      lim.Burst,
		Remaining:  max(0, int(math.Floor(tokens))),
		ResetAfter: seconds((float64(lim.Burst) - tokens) * perToken),
		Local:      true,
	}
	if !d.Allowed {
		d.Remaining = 0
		d.RetryAfter = seconds((1 - tokens) * perToken)
	}
	return d
}

func seconds(s float64) time.Duration {
	if s <= 0 {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}
