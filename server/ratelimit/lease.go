package ratelimit

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Request budgets (token, address, anonymous) are checked on every API
// request. Asking Redis each time cost one round trip per request, the
// largest share of Redis' CPU in phases 3 and 4. Instead each instance
// decides most requests locally from what Redis last told it, and records
// them in Redis in batches:
//
//   - Redis answers how much of the key's budget Remains. Until syncEvery
//     has passed, the instance may admit up to a share of that (Remaining
//     divided by shareDivisor, at most maxShareSeconds of the rate) without
//     asking, counting them as debt;
//   - the first request after syncEvery, or one past the share, asks Redis
//     for its debt plus itself in one call (AllowAtMost: as many as the
//     budget holds) and learns the new Remaining;
//   - a share is only ever a fraction of what Remained, so instances that
//     admit their shares at once together spend less than the budget held:
//     near the limit the share drops to zero and every request asks Redis,
//     exactly as before. What a share can overshoot is bounded by the
//     debt left unrecorded when a key goes idle (at most one share per
//     instance), which refills anyway within maxShareSeconds.
//
// A client far from its limit, the usual case, costs one Redis call per
// syncEvery (or per share) per instance instead of one per request.
// syncEvery was 50 ms, which only a client sending more than 20 requests
// a second to one instance ever beat: phase 3's read-heavy clients, 20
// addresses at 300/s over three instances, send one every 200 ms, and
// every request asked Redis (1.42 Redis round trips per request under
// the datacenter profile). Half a second lets a client at 5/s per
// instance ask once in every 2.5 requests; a busier one still asks once
// per share, as before.
const (
	syncEvery       = 500 * time.Millisecond
	shareFresh      = 2 * time.Second // a Remaining older than this is not trusted
	shareDivisor    = 8
	maxShareSeconds = 0.05 // a share is at most 50ms worth of the rate
)

// lease is one key's state at this instance.
type lease struct {
	synced    time.Time // when Redis last answered for this key
	remaining int       // what Redis said remained then
	share     int       // how many may be admitted locally since synced
	debt      int       // admitted locally, not yet recorded in Redis
}

// leases maps request-budget keys to their lease, bounded like local.
type leases struct {
	maxKeys int
	mu      sync.Mutex
	m       map[string]*lease
}

func newLeases(maxKeys int) *leases {
	return &leases{maxKeys: maxKeys, m: make(map[string]*lease)}
}

// take admits one request locally if key's lease allows it. It returns
// the debt to record with the request otherwise (the lease's debt is then
// handed to the caller and reset).
func (ls *leases) take(key string, now time.Time) (ok bool, remaining, debt int) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[key]
	if l == nil {
		return false, 0, 0
	}
	age := now.Sub(l.synced)
	if age < syncEvery && l.debt < l.share {
		l.debt++
		return true, l.remaining - l.debt, 0
	}
	if age >= shareFresh {
		// Too old to trust; its debt is still owed.
		debt = l.debt
		delete(ls.m, key)
		return false, 0, debt
	}
	debt, l.debt = l.debt, 0
	return false, 0, debt
}

// synced records Redis' answer for key.
func (ls *leases) synced(key string, now time.Time, lim gcraLimit, remaining int) {
	share := min(remaining/shareDivisor, int(float64(lim.Rate)/lim.Period.Seconds()*maxShareSeconds))
	ls.mu.Lock()
	defer ls.mu.Unlock()
	l := ls.m[key]
	if l == nil {
		if share <= 0 {
			return // nothing to decide locally: no entry
		}
		if len(ls.m) >= ls.maxKeys {
			ls.sweep(now)
		}
		l = &lease{}
		ls.m[key] = l
	}
	l.synced, l.remaining, l.share = now, remaining, share
}

// drop forgets key's lease (Redis failed: the local limiter decides).
func (ls *leases) drop(key string) {
	ls.mu.Lock()
	delete(ls.m, key)
	ls.mu.Unlock()
}

// sweep drops leases too old to use. Their debt is lost: at most one
// share each, worth maxShareSeconds of the key's rate.
func (ls *leases) sweep(now time.Time) {
	for k, l := range ls.m {
		if now.Sub(l.synced) >= shareFresh {
			delete(ls.m, k)
		}
	}
	for k := range ls.m {
		if len(ls.m) < ls.maxKeys*9/10 {
			break
		}
		delete(ls.m, k)
	}
}

// decideLeased spends one request from a request budget: locally while the
// key's lease allows, else in Redis with the lease's debt (see leases).
// ok is false when Redis could not be asked: the caller decides locally.
func (l *Limiter) decideLeased(ctx context.Context, key string, lim gcraLimit) (Decision, error) {
	now := l.now()
	ok, remaining, debt := l.leases.take(key, now)
	if ok {
		l.m.leased.Inc()
		return Decision{Allowed: true, Limit: lim.Burst, Remaining: max(0, remaining)}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	res, err := l.redis.AllowAtMost(ctx, key, lim, debt+1)
	if err != nil {
		l.leases.drop(key)
		return Decision{}, fmt.Errorf("redis_rate allow at most %d %s: %w", debt+1, key, err)
	}
	// The debt was admitted already; it is recorded first. This request
	// passes only if the budget held it too.
	allowed := res.Allowed > debt
	if !allowed && res.Allowed < debt {
		l.m.leaseOvershoot.Add(float64(debt - res.Allowed))
	}
	l.leases.synced(key, now, lim, res.Remaining)
	d := Decision{
		Allowed:    allowed,
		Limit:      lim.Burst,
		Remaining:  res.Remaining,
		ResetAfter: max(0, res.ResetAfter),
		RetryAfter: max(0, res.RetryAfter),
	}
	if !allowed {
		d.Remaining = 0
		if d.RetryAfter == 0 {
			d.RetryAfter = lim.Period / time.Duration(lim.Rate)
		}
	}
	return d, nil
}
