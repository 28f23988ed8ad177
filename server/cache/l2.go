package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"scalelab/internal/breaker"
)

// RedisOptions configure the one go-redis client an app instance shares
// between the L2 tier and the rate limiter.
type RedisOptions struct {
	// Addrs are host:port addresses. One address is a standalone server;
	// several are seeds of a Redis Cluster.
	Addrs []string
	// Cluster forces cluster mode with a single seed address.
	Cluster bool
	// Timeout bounds dialing, each read and each write; default 100ms.
	// Callers bound whole operations tighter with a context deadline.
	Timeout time.Duration
	// PoolSize is connections per node; go-redis' default (10 per CPU)
	// when zero.
	PoolSize int
}

// NewRedisClient returns a client for o, standalone or cluster, set up to
// fail fast: context deadlines are honoured on the socket (so a hung Redis
// costs at most the caller's deadline), commands are never retried (a retry
// would spend the deadline twice), and a dead server is dialled once per
// attempt. It does not connect; the first command does.
func NewRedisClient(o RedisOptions) (redis.UniversalClient, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("redis client: no address")
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 o.Addrs,
		IsClusterMode:         o.Cluster,
		ClientName:            "scalelab",
		DialTimeout:           o.Timeout,
		DialerRetries:         1,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		PoolTimeout:           o.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		PoolSize:              o.PoolSize,
	}), nil
}

// L2 is the Redis tier: one shared copy of each entry for all app
// instances, behind each instance's L1. It stores opaque bytes with the
// version of the row they were made from; the HTTP layer decides what the
// bytes are. It is safe for concurrent use.
//
// # No stale set
//
// The race (Nishtala et al., "Scaling Memcache at Facebook", §3.2.1): a
// reader misses, reads version 1 from the database, and is slow; a writer
// commits version 2 and deletes the key; the reader then puts version 1
// back, where it would stay until the TTL. Facebook hands the reader a
// lease on a miss that the delete invalidates. Leases do not cover a
// reader that starts after the delete but reads a lagging replica, which
// phase 3 has, so this tier uses the rows' versions instead:
//
//   - Invalidate(key, v) atomically (one Lua script) deletes the entry and
//     leaves an invalidation marker "m = v" in its place (kept at the
//     larger of the old and new marker, for MarkerTTL, default the TTL);
//   - Fill(key, data, v) is a Lua script that stores only if v is at least
//     the marker and newer than any cached version, and otherwise answers
//     FillStale.
//
// So a value read before a write, from the primary or any replica, can
// never land in L2 after that write's invalidation, whatever the
// interleaving; the marker and the entry live in one Redis hash, so a
// Redis Cluster sees one key. FillStale also tells the caller not to put
// the value in its L1 (and, for read-your-writes, to read the primary).
// A write whose version is unknown (a delete, or an error after which the
// commit is uncertain) passes version 0, which forbids every fill until
// the marker expires.
//
// # Stampede
//
// Load coalesces concurrent misses of one key in this process
// (singleflight): 100 readers of a cold key cost one L2 read and one
// database load per instance. Across instances each may load once; a
// Redis lease to coalesce those too is not worth its round trip here.
//
// A coalesced load may have read L2, or the database, before a write that
// a later reader already knows of: joining it would hand that reader the
// value the write replaced, and an L1 loading through it would keep that
// value after the invalidation it has already heard. So an invalidation,
// this instance's own or one received from another, makes later readers
// of the key start a new load; every load in flight is left behind the
// same way when the subscription is re-established (messages may have
// been missed); and a reader that must see a write it knows of may bypass
// coalescing altogether (LoadFresh).
//
// # Invalidating every L1
//
// Invalidate also publishes the key on Channel from the same script, and
// Subscribe drops published keys from this instance's L1. Messages sent
// while a subscriber was disconnected are lost, so on every (re)subscribe
// the subscriber flushes its whole L1.
//
// # Redis down
//
// Every call has a short deadline (Timeout) and goes through a circuit
// breaker: after BreakerThreshold consecutive failures the tier is skipped
// entirely (reads go to the database, fills are dropped) until a probe
// after BreakerCooldown succeeds. Invalidations that could not be sent are
// kept (bounded) and retried by Subscribe's goroutine once Redis answers,
// so a Redis that was only unreachable does not keep old entries.
type L2 struct {
	rdb       redis.UniversalClient
	ttl       time.Duration
	jitter    float64
	markerTTL time.Duration
	timeout   time.Duration
	loadTTL   time.Duration
	prefix    string
	channel   string
	log       *slog.Logger
	m         *l2Metrics
	breaker   *breaker.Breaker

	fill, invalidate *redis.Script
	flights          singleflight.Group
	// flightEpoch is part of every flight's key (flightKey): raising it
	// leaves every load in flight to the readers that joined it.
	flightEpoch atomic.Uint64

	pendingMu  sync.Mutex
	pending    map[string]int64 // key → version of invalidations to retry
	maxPending int

	// troubleAt is when a Redis call last failed or was skipped (unix
	// nanoseconds, 0 never); subDown is set while the invalidation
	// subscription is down. See LastTrouble.
	troubleAt atomic.Int64
	subDown   atomic.Bool

	mu      sync.Mutex // guards closed, cancels
	closed  bool
	cancels []context.CancelFunc
	wg      sync.WaitGroup
}

// L2Options configure an L2. Zero values take the documented defaults.
type L2Options struct {
	// TTL is an entry's lifetime, ±Jitter so that entries filled together
	// do not expire together; default 15m and 0.1.
	TTL    time.Duration
	Jitter float64
	// MarkerTTL is how long an invalidation marker refuses older fills. It
	// must outlast the slowest load that can straddle a write (database
	// read plus replica lag); default TTL.
	MarkerTTL time.Duration
	// Timeout bounds each Redis call; default 100ms.
	Timeout time.Duration
	// BreakerThreshold consecutive failures open the breaker (default 3);
	// after BreakerCooldown (default 1s; longer if it keeps failing) a few
	// calls probe Redis again, and several must succeed before it closes
	// (see package breaker).
	BreakerThreshold int
	BreakerCooldown  time.Duration
	// LoadTimeout bounds a coalesced load, which outlives the caller that
	// started it so that the others still get its result; default 5s.
	LoadTimeout time.Duration
	// KeyPrefix prefixes Redis keys; default "scalelab:cache:".
	KeyPrefix string
	// Channel is the pub/sub channel for L1 invalidations; default
	// "scalelab:invalidate".
	Channel string
	// MaxPending bounds the invalidations kept for retry; default 10000.
	MaxPending int

	// Metrics counts hits and misses under tier "l2"; nil = not counted.
	Metrics *Metrics
	// Registerer receives the L2's own metrics (errors, breaker state,
	// bypasses, fills, loads, invalidations); nil = not registered.
	Registerer prometheus.Registerer
	// Logger gets breaker changes and subscription trouble; nil discards.
	Logger *slog.Logger
}

// DefaultL2TTL is the L2 entry lifetime from the design.
const DefaultL2TTL = 15 * time.Minute

// NewL2 returns an L2 on rdb. It starts no goroutines; call Subscribe.
func NewL2(rdb redis.UniversalClient, o L2Options) (*L2, error) {
	if rdb == nil {
		return nil, errors.New("l2 cache: nil redis client")
	}
	if o.TTL == 0 {
		o.TTL = DefaultL2TTL
	}
	if o.TTL < time.Second {
		return nil, fmt.Errorf("l2 cache: ttl %v too short", o.TTL)
	}
	if o.Jitter == 0 {
		o.Jitter = 0.1
	}
	if o.Jitter < 0 || o.Jitter >= 1 {
		return nil, fmt.Errorf("l2 cache: jitter %v outside [0, 1)", o.Jitter)
	}
	if o.MarkerTTL <= 0 {
		o.MarkerTTL = o.TTL
	}
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.BreakerThreshold <= 0 {
		o.BreakerThreshold = 3
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = time.Second
	}
	if o.LoadTimeout <= 0 {
		o.LoadTimeout = 5 * time.Second
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = "scalelab:cache:"
	}
	if o.Channel == "" {
		o.Channel = "scalelab:invalidate"
	}
	if o.MaxPending <= 0 {
		o.MaxPending = 10000
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newL2Metrics(o.Registerer, o.Metrics)
	if err != nil {
		return nil, err
	}
	c := &L2{
		rdb:        rdb,
		ttl:        o.TTL,
		jitter:     o.Jitter,
		markerTTL:  o.MarkerTTL,
		timeout:    o.Timeout,
		loadTTL:    o.LoadTimeout,
		prefix:     o.KeyPrefix,
		channel:    o.Channel,
		log:        o.Logger,
		m:          m,
		fill:       redis.NewScript(fillScript),
		invalidate: redis.NewScript(invalidateScript),
		pending:    make(map[string]int64),
		maxPending: o.MaxPending,
	}
	c.breaker = breaker.New(o.BreakerThreshold, o.BreakerCooldown, func(from, to breaker.State) {
		m.breaker.Set(float64(to))
		m.transitions.WithLabelValues(from.String(), to.String()).Inc()
		c.log.Warn("l2 cache: redis circuit breaker", "from", from.String(), "to", to.String())
	})
	return c, nil
}

// An entry is a hash {v: version, d: data, m: marker}; after an
// invalidation only m is left. The hash tag keeps a future companion key
// (a lease, say) in the same cluster slot.
func (c *L2) redisKey(key string) string { return c.prefix + "{" + key + "}" }

// fillScript stores ARGV[2] at version ARGV[1] for ARGV[3] ms unless an
// invalidation marker or the cached entry is newer. It returns 1 stored,
// 0 stale, 2 the same version is there already.
const fillScript = `
local v = tonumber(ARGV[1])
local cur = redis.call('HMGET', KEYS[1], 'v', 'm')
if cur[2] and tonumber(cur[2]) > v then return 0 end
if cur[1] then
  local cv = tonumber(cur[1])
  if cv > v then return 0 end
  if cv == v then return 2 end
end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`

// invalidateScript replaces the entry with a marker of at least ARGV[1]
// that lives ARGV[2] ms, and publishes ARGV[4] on channel ARGV[3]. The
// marker never goes down, so invalidations that arrive out of order (a
// retried one, say) cannot reopen the door to an older fill.
const invalidateScript = `
local v = tonumber(ARGV[1])
local m = tonumber(redis.call('HGET', KEYS[1], 'm') or '0')
if m > v then v = m end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'm', string.format('%d', v))
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`

// versionUnknown is the marker of an invalidation whose version is not
// known: larger than any real version (and exact in Lua's doubles).
const versionUnknown = int64(1) << 52

// FillResult says what Fill did.
type FillResult int

// Fill results.
const (
	// FillStored: the value is cached.
	FillStored FillResult = iota + 1
	// FillStale: refused because a write invalidated the key at a newer
	// version, or a newer value is cached. The value is older than what a
	// write already made visible: do not cache it in L1 either.
	FillStale
	// FillPresent: this version is cached already.
	FillPresent
	// FillSkipped: Redis was unavailable (breaker open, error or timeout).
	FillSkipped
)

func (r FillResult) String() string {
	switch r {
	case FillStored:
		return "stored"
	case FillStale:
		return "stale"
	case FillPresent:
		return "present"
	case FillSkipped:
		return "skipped"
	default:
		return "none"
	}
}

// Get returns key's cached bytes and version. ok is false on a miss and
// whenever Redis is unavailable: the caller then reads the database.
func (c *L2) Get(ctx context.Context, key string) (data []byte, version int64, ok bool) {
	data, version, ok = c.get(ctx, key)
	c.m.count(ok)
	return data, version, ok
}

func (c *L2) get(ctx context.Context, key string) ([]byte, int64, bool) {
	var vals []any
	err := c.do(ctx, func(ctx context.Context) error {
		var err error
		vals, err = c.rdb.HMGet(ctx, c.redisKey(key), "v", "d").Result()
		return err
	})
	if err != nil || len(vals) != 2 || vals[0] == nil || vals[1] == nil {
		return nil, 0, false
	}
	vs, ok1 := vals[0].(string)
	ds, ok2 := vals[1].(string)
	v, err := strconv.ParseInt(vs, 10, 64)
	if !ok1 || !ok2 || err != nil {
		c.log.Error("l2 cache: malformed entry", "key", key)
		return nil, 0, false
	}
	return []byte(ds), v, true
}

// Fill caches data for key at version, loaded from the database, unless a
// newer invalidation or value forbids it (see "No stale set" on L2). It
// never fails the caller: trouble is counted and reported as FillSkipped.
func (c *L2) Fill(ctx context.Context, key string, data []byte, version int64) FillResult {
	var n int64
	err := c.do(ctx, func(ctx context.Context) error {
		var err error
		n, err = c.fill.Run(ctx, c.rdb, []string{c.redisKey(key)}, version, data, c.entryTTL().Milliseconds()).Int64()
		return err
	})
	r := FillSkipped
	switch {
	case err != nil:
	case n == 1:
		r = FillStored
	case n == 2:
		r = FillPresent
	default:
		r = FillStale
	}
	c.m.fills.WithLabelValues(r.String()).Inc()
	return r
}

// entryTTL is the TTL ± jitter.
func (c *L2) entryTTL() time.Duration {
	f := 1 + c.jitter*(2*rand.Float64()-1)
	return time.Duration(float64(c.ttl) * f)
}

// Invalidate is called after a write of key committed, with the version
// the write produced (0 when unknown, e.g. a delete): it deletes the entry,
// forbids fills of older versions (see "No stale set") and tells every
// instance to drop key from its L1. This instance's own coalesced load of
// key, if one runs, is forgotten so that readers after the write start a
// fresh one. When Redis is unavailable the invalidation is kept and retried
// by Subscribe's goroutine; the write is never failed.
//
// Invalidate L2 before this instance's L1: the other order lets a local
// reader copy the old L2 entry into L1 in between.
func (c *L2) Invalidate(ctx context.Context, key string, version int64) {
	c.forgetFlight(key)
	if version <= 0 {
		version = versionUnknown
	}
	if err := c.sendInvalidation(ctx, key, version); err != nil {
		c.keepPending(key, version)
	}
}

func (c *L2) sendInvalidation(ctx context.Context, key string, version int64) error {
	err := c.do(ctx, func(ctx context.Context) error {
		return c.invalidate.Run(ctx, c.rdb, []string{c.redisKey(key)},
			version, c.markerTTL.Milliseconds(), c.channel, key).Err()
	})
	if err == nil {
		c.m.sent.Inc()
	}
	return err
}

func (c *L2) keepPending(key string, version int64) {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	if _, ok := c.pending[key]; !ok && len(c.pending) >= c.maxPending {
		c.m.dropped.Inc()
		c.log.Error("l2 cache: too many invalidations waiting for redis; dropping one", "key", key)
		return
	}
	c.pending[key] = max(c.pending[key], version)
	c.m.pending.Set(float64(len(c.pending)))
}

// retryPending sends the kept invalidations while Redis answers.
func (c *L2) retryPending(ctx context.Context) {
	c.pendingMu.Lock()
	batch := make(map[string]int64, len(c.pending))
	for k, v := range c.pending {
		batch[k] = v
	}
	c.pendingMu.Unlock()
	for k, v := range batch {
		if ctx.Err() != nil {
			return
		}
		// Stops at the first failure, or at once while the breaker is open.
		if err := c.sendInvalidation(ctx, k, v); err != nil {
			return
		}
		c.pendingMu.Lock()
		if c.pending[k] == v {
			delete(c.pending, k)
		}
		c.m.pending.Set(float64(len(c.pending)))
		c.pendingMu.Unlock()
	}
}

// LastTrouble returns when this instance last saw Redis let it down: a
// call that failed or that the open breaker skipped, or the end of an
// outage of the invalidation subscription (now, while it is down); the
// zero time if never. Whatever Redis should have carried meanwhile may be
// lost (markers, invalidations of other instances' writes that this L1 did
// not hear of): callers that must not read stale data avoid the caches for
// a while after it.
func (c *L2) LastTrouble() time.Time {
	if c.subDown.Load() {
		return time.Now()
	}
	if n := c.troubleAt.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// InvalidationsDown reports whether invalidations of other instances'
// writes may not reach this instance now: the subscription is down, or
// Redis calls fail (the breaker is not closed; a hung Redis keeps the
// subscription's socket open but answers nothing). While it is true, an
// L1 must not serve entries for long (see httpapi's userEntry).
func (c *L2) InvalidationsDown() bool {
	return c.subDown.Load() || c.breaker.State() != breaker.Closed
}

// Pending returns how many invalidations wait for Redis.
func (c *L2) Pending() int {
	c.pendingMu.Lock()
	defer c.pendingMu.Unlock()
	return len(c.pending)
}

// LoadFunc reads key from the source of truth and returns its encoded
// bytes and row version. It returns ErrNotFound (or any error) for keys it
// cannot load; errors are not cached.
type LoadFunc func(ctx context.Context, key string) (data []byte, version int64, err error)

// Entry is what Load returns. Data is shared by every caller the load was
// coalesced for: treat it as read-only.
type Entry struct {
	Data    []byte
	Version int64
	// Hit reports that L2 had the entry.
	Hit bool
	// Fill is what filling L2 did after a load (0 on a hit). FillStale means
	// a write invalidated key after the value was read: it is correct for
	// this request but must not be cached in L1.
	Fill FillResult
}

// Load returns key from L2, or loads it with load and fills L2. Concurrent
// Loads of one key in this process share one L2 read and one load; the
// shared work runs under LoadTimeout, not under any one caller's context,
// and a caller whose ctx ends stops waiting for it. A caller whose ctx is
// still alive when the shared load ran out of LoadTimeout loads once more
// itself: one hung source must not fail every request that joined it.
func (c *L2) Load(ctx context.Context, key string, load LoadFunc) (Entry, error) {
	ch := c.flights.DoChan(c.flightKey(key), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.loadTTL)
		defer cancel()
		return c.getOrLoad(lctx, key, load)
	})
	select {
	case r := <-ch:
		if r.Err != nil && ctx.Err() == nil && errors.Is(r.Err, context.DeadlineExceeded) {
			// The shared load ran out of its LoadTimeout (a source that
			// hung), not this caller's time: try once more under this
			// caller's own context rather than fail a request that another
			// source can answer.
			c.m.count(false)
			data, v, err := load(ctx, key)
			if err != nil {
				return Entry{}, err
			}
			return Entry{Data: data, Version: v, Fill: c.Fill(ctx, key, data, v)}, nil
		}
		if r.Err != nil {
			c.m.count(false)
			return Entry{}, r.Err
		}
		e := r.Val.(Entry)
		c.m.count(e.Hit)
		return e, nil
	case <-ctx.Done():
		return Entry{}, fmt.Errorf("l2 cache load %s: %w", key, ctx.Err())
	}
}

// LoadFresh is Load for a reader that must see a write it knows of (its
// own, read-your-writes), which an invalidation from another instance may
// not have announced here yet: it joins no coalesced load, which may have
// read L2 or a replica before that write, and reads L2 and loads under
// ctx itself. load must read no older than the write (a replica that has
// replayed it, or the primary). An L2 hit is as new as the write: the
// write deleted the entry before it was acknowledged, and fills of older
// versions are refused since.
func (c *L2) LoadFresh(ctx context.Context, key string, load LoadFunc) (Entry, error) {
	e, err := c.getOrLoad(ctx, key, load)
	c.m.count(err == nil && e.Hit)
	return e, err
}

// getOrLoad is key from L2, or loaded with load and filled in: the work
// of one Load or LoadFresh, uncounted.
func (c *L2) getOrLoad(ctx context.Context, key string, load LoadFunc) (Entry, error) {
	if data, v, ok := c.get(ctx, key); ok {
		return Entry{Data: data, Version: v, Hit: true}, nil
	}
	c.m.loads.Inc()
	data, v, err := load(ctx, key)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Data: data, Version: v, Fill: c.Fill(ctx, key, data, v)}, nil
}

// flightKey is the key of key's coalesced load in the current epoch.
func (c *L2) flightKey(key string) string {
	return strconv.FormatUint(c.flightEpoch.Load(), 10) + "/" + key
}

// forgetFlight makes the readers of key that come after an invalidation
// start a new load instead of joining one that may predate it.
func (c *L2) forgetFlight(key string) { c.flights.Forget(c.flightKey(key)) }

// do runs one Redis call under the timeout and the breaker. While the
// breaker is open it returns errBypass at once.
func (c *L2) do(ctx context.Context, call func(ctx context.Context) error) error {
	if !c.breaker.Allow() {
		c.m.bypass.Inc()
		c.troubleAt.Store(time.Now().UnixNano())
		return errBypass
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	err := call(cctx)
	cancel()
	switch {
	case err == nil || errors.Is(err, redis.Nil):
		c.breaker.Success()
		return err
	case ctx.Err() != nil:
		// The caller gave up; that says nothing about Redis. Still, a probe
		// must report back, and "failed" is the safe answer.
		if c.breaker.State() == breaker.HalfOpen {
			c.breaker.Failure()
		}
		return err
	default:
		c.breaker.Failure()
		c.m.errors.Inc()
		c.troubleAt.Store(time.Now().UnixNano())
		c.log.Debug("l2 cache: redis call failed", "err", err)
		return err
	}
}

var errBypass = errors.New("l2 cache: redis unavailable (circuit breaker open)")

// Subscribe starts this instance's background work and returns at once:
// a goroutine that receives invalidations from other instances, calling
// onInvalidate(key) for each published key and onReset() on every
// (re)subscription (messages may have been missed: flush the L1), and one
// that retries invalidations Redis did not take. Pass nil callbacks when
// there is no L1; the retries run anyway. Both goroutines stop when ctx
// ends or on Close. Call it once.
func (c *L2) Subscribe(ctx context.Context, onInvalidate func(key string), onReset func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancels = append(c.cancels, cancel)
	if onInvalidate != nil || onReset != nil {
		if onInvalidate == nil {
			onInvalidate = func(string) {}
		}
		if onReset == nil {
			onReset = func() {}
		}
		c.wg.Go(func() { c.receive(ctx, onInvalidate, onReset) })
	}
	c.wg.Go(func() { c.retryLoop(ctx) })
}

func (c *L2) receive(ctx context.Context, onInvalidate func(string), onReset func()) {
	ps := c.rdb.Subscribe(ctx, c.channel)
	// Receive does not watch ctx; closing the PubSub unblocks it.
	stop := context.AfterFunc(ctx, func() { _ = ps.Close() })
	defer func() {
		if stop() {
			_ = ps.Close()
		}
	}()
	const minBackoff, maxBackoff = 50 * time.Millisecond, time.Second
	backoff := minBackoff
	connected := false
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if connected {
				c.log.Warn("l2 cache: invalidation subscription lost; will flush L1 on reconnect", "err", err)
				connected = false
			}
			c.subDown.Store(true)
			c.m.subErrors.Inc()
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				if !connected {
					c.log.Info("l2 cache: invalidation subscription up; flushing L1", "channel", c.channel)
				}
				connected = true
				c.m.resets.Inc()
				c.flightEpoch.Add(1) // loads in flight may predate a missed message
				onReset()
				if c.subDown.Swap(false) {
					c.troubleAt.Store(time.Now().UnixNano())
				}
			}
		case *redis.Message:
			c.m.received.Inc()
			// The flight first: an L1 load that starts after onInvalidate
			// must not join a load that predates the write.
			c.forgetFlight(m.Payload)
			onInvalidate(m.Payload)
		}
	}
}

func (c *L2) retryLoop(ctx context.Context) {
	t := time.NewTicker(c.breaker.Cooldown() / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.Pending() > 0 {
				c.retryPending(ctx)
			}
		}
	}
}

// Close stops Subscribe's goroutines and waits for them until ctx ends.
// It does not close the Redis client, which the caller owns.
func (c *L2) Close(ctx context.Context) error {
	c.mu.Lock()
	c.closed = true
	for _, cancel := range c.cancels {
		cancel()
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close l2 cache: %w", ctx.Err())
	}
}

type l2Metrics struct {
	hits, misses prometheus.Counter // nil when not counted
	errors       prometheus.Counter
	bypass       prometheus.Counter
	breaker      prometheus.Gauge
	transitions  *prometheus.CounterVec // by from, to
	fills        *prometheus.CounterVec
	loads        prometheus.Counter
	sent         prometheus.Counter
	received     prometheus.Counter
	resets       prometheus.Counter
	subErrors    prometheus.Counter
	pending      prometheus.Gauge
	dropped      prometheus.Counter
}

func (m *l2Metrics) count(hit bool) {
	switch {
	case m.hits == nil:
	case hit:
		m.hits.Inc()
	default:
		m.misses.Inc()
	}
}

func newL2Metrics(reg prometheus.Registerer, shared *Metrics) (*l2Metrics, error) {
	const tier = "l2"
	tiered := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"tier"})
	}
	errorsVec := tiered("scalelab_cache_errors_total", "Cache calls that failed or timed out, by tier.")
	bypassVec := tiered("scalelab_cache_bypass_total", "Cache calls skipped because the tier's circuit breaker was open, by tier.")
	loadsVec := tiered("scalelab_cache_loads_total", "Loads from the database after a coalesced miss, by tier.")
	breakerVec := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "scalelab_cache_breaker_state", Help: "A cache tier's circuit breaker: 0 closed, 1 open, 2 half-open.",
	}, []string{"tier"})
	transitions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scalelab_cache_breaker_transitions_total", Help: "A cache tier's circuit breaker changes of state, by tier and transition.",
	}, []string{"tier", "from", "to"})
	fills := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scalelab_cache_fills_total", Help: "L2 fills by result (stored, stale, present, skipped).",
	}, []string{"result"})
	m := &l2Metrics{
		errors:      errorsVec.WithLabelValues(tier),
		bypass:      bypassVec.WithLabelValues(tier),
		loads:       loadsVec.WithLabelValues(tier),
		breaker:     breakerVec.WithLabelValues(tier),
		transitions: transitions.MustCurryWith(prometheus.Labels{"tier": tier}),
		fills:       fills,
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_cache_invalidations_sent_total", Help: "Invalidations this instance sent (L2 delete plus pub/sub message).",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_cache_invalidations_received_total", Help: "Invalidation messages this instance received for its L1.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_cache_l1_flushes_total", Help: "Whole-L1 flushes on (re)subscription to the invalidation channel.",
		}),
		subErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_cache_subscription_errors_total", Help: "Errors on the invalidation subscription.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scalelab_cache_invalidations_pending", Help: "Invalidations waiting for Redis to come back.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_cache_invalidations_dropped_total", Help: "Invalidations dropped because too many waited for Redis.",
		}),
	}
	if shared != nil {
		m.hits = shared.Hits.WithLabelValues(tier)
		m.misses = shared.Misses.WithLabelValues(tier)
	}
	if reg != nil {
		for _, col := range []prometheus.Collector{errorsVec, bypassVec, loadsVec, breakerVec, transitions, fills,
			m.sent, m.received, m.resets, m.subErrors, m.pending, m.dropped} {
			if err := reg.Register(col); err != nil {
				return nil, fmt.Errorf("register l2 cache metrics: %w", err)
			}
		}
	}
	return m, nil
}
