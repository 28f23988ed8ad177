// Package cache holds scalelab's cache tiers. L1 is in-process; L2 (Redis)
// comes with phase 3.
package cache

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrNotFound is what a loader returns when the key has no value in the
// source. Misses of this kind are not cached.
var ErrNotFound = otter.ErrNotFound

// L1 is an in-process, bounded, cache-aside cache with a TTL.
//
// Concurrent misses on one key cause one load: otter's Get makes the other
// callers wait for the first caller's loader. A write or invalidation of the
// key while that load runs discards the loaded value, so a reader that read
// the database before a writer's invalidation cannot put its older value
// back afterwards (the "stale set" of Facebook's memcache paper).
type L1[V any] struct {
	cache        *otter.Cache[string, V]
	hits, misses prometheus.Counter // nil when not counted
}

// L1Options configure an L1.
type L1Options[V any] struct {
	TTL      time.Duration // entries expire this long after they were written
	MaxBytes uint64        // memory bound; the weigher estimates each entry
	Weigh    func(key string, v V) uint32
	Metrics  *Metrics // nil = not counted
	Tier     string   // label in metrics; "l1" by default
}

// NewL1 returns an L1. A TTL of zero means the tier is off: callers should
// not construct one.
func NewL1[V any](o L1Options[V]) (*L1[V], error) {
	if o.TTL <= 0 {
		return nil, errors.New("l1 cache: ttl must be positive")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = 64 << 20
	}
	if o.Weigh == nil {
		o.Weigh = func(string, V) uint32 { return 1024 }
	}
	if o.Tier == "" {
		o.Tier = "l1"
	}
	c := &L1[V]{}
	opts := &otter.Options[string, V]{
		MaximumWeight:    o.MaxBytes,
		Weigher:          o.Weigh,
		ExpiryCalculator: otter.ExpiryWriting[string, V](o.TTL),
	}
	if m := o.Metrics; m != nil {
		tier := o.Tier
		c.hits = m.Hits.WithLabelValues(tier)
		c.misses = m.Misses.WithLabelValues(tier)
		opts.OnDeletion = func(e otter.DeletionEvent[string, V]) {
			if e.Cause == otter.CauseOverflow {
				m.Evictions.WithLabelValues(tier).Inc()
			}
		}
	}
	cache, err := otter.New(opts)
	if err != nil {
		return nil, fmt.Errorf("new l1 cache: %w", err)
	}
	c.cache = cache
	return c, nil
}

// Get returns the cached value of key, or loads it with load. The boolean
// reports a hit.
func (c *L1[V]) Get(ctx context.Context, key string, load func(ctx context.Context, key string) (V, error)) (V, bool, error) {
	if v, ok := c.cache.GetIfPresent(key); ok {
		c.count(true)
		return v, true, nil
	}
	c.count(false)
	v, err := c.cache.Get(ctx, key, otter.LoaderFunc[string, V](load))
	return v, false, err
}

// Invalidate drops key, also discarding any load of it in flight.
func (c *L1[V]) Invalidate(key string) { c.cache.Invalidate(key) }

// InvalidateAll drops every entry.
func (c *L1[V]) InvalidateAll() { c.cache.InvalidateAll() }

// Len returns the approximate number of entries.
func (c *L1[V]) Len() int { return c.cache.EstimatedSize() }

// Close stops the cache's background work.
func (c *L1[V]) Close() { c.cache.StopAllGoroutines() }

func (c *L1[V]) count(hit bool) {
	switch {
	case c.hits == nil:
	case hit:
		c.hits.Inc()
	default:
		c.misses.Inc()
	}
}

// Metrics are the cache counters, labelled by tier ("l1", "l2").
type Metrics struct {
	Hits      *prometheus.CounterVec
	Misses    *prometheus.CounterVec
	Evictions *prometheus.CounterVec
}

// NewMetrics registers the cache counters on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Hits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_cache_hits_total", Help: "Cache hits by tier.",
		}, []string{"tier"}),
		Misses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_cache_misses_total", Help: "Cache misses by tier.",
		}, []string{"tier"}),
		Evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_cache_evictions_total", Help: "Entries evicted to stay within the memory bound, by tier.",
		}, []string{"tier"}),
	}
	reg.MustRegister(m.Hits, m.Misses, m.Evictions)
	return m
}
