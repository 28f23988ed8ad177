package topologies

import (
	"context"
	"maps"
	"slices"
	"time"

	"scalelab/internal/stats"
)

// The Sampler's series over time: what result.json draws per second. They
// carry wall-clock times, so that the caller can line them up with its own
// clock (the load generator's start is not the sampler's).

// LagPoint is one lag sample of a replica.
type LagPoint struct {
	At time.Time
	// LagS is how far behind the replica was, in seconds (see
	// ReplicaLag.LagSP50).
	LagS      float64
	Streaming bool
}

// VisibleSecond is the write-to-visible delay of the probe writes
// acknowledged during one second.
type VisibleSecond struct {
	Start  time.Time
	P99MS  float64
	Probes int
}

// CacheInterval counts each tier's lookups between two readings of the
// counters, one sampling interval apart. A tier is nil when the topology
// has none or its counters could not be read at both ends.
type CacheInterval struct {
	Start, End time.Time
	L1, L2, L3 *CacheTier
}

// sampleCounters reads the cache counters once more for CacheSeries, unless
// the last reading is less than half an interval old (the loop's first
// round runs right after StartSampler's baseline). Failures only log: a
// missing interval is not worth a problem in the report, and Stop's own
// reading reports a lasting one.
func (s *Sampler) sampleCounters(ctx context.Context) {
	s.mu.Lock()
	last := s.base.at
	if n := len(s.snapshots); n > 0 {
		last = s.snapshots[n-1].at
	}
	s.mu.Unlock()
	if time.Since(last) < s.interval/2 {
		return
	}
	c := s.readCounters(ctx, func(format string, args ...any) {
		s.log.Debug("sample cache counters", "problem", format, "args", args)
	})
	if ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	s.snapshots = append(s.snapshots, c)
	s.mu.Unlock()
}

// cacheSeries turns successive counter readings into lookups per interval.
func cacheSeries(snaps []counters) []CacheInterval {
	var out []CacheInterval
	for i := 1; i < len(snaps); i++ {
		prev, cur := snaps[i-1], snaps[i]
		iv := CacheInterval{Start: prev.at, End: cur.at}
		if prev.cacheOK && cur.cacheOK {
			cs := cacheStats(prev, cur)
			iv.L1, iv.L2 = cs.L1, cs.L2
		}
		if prev.varnish != nil && cur.varnish != nil {
			d := func(k string) uint64 { return uint64(counterDelta(float64(prev.varnish[k]), float64(cur.varnish[k]))) }
			iv.L3 = &CacheTier{Hits: d("cache_hit"), Misses: d("cache_miss")}
		}
		out = append(out, iv)
	}
	return out
}

// series is the write-to-visible delay per second of the probe. Call it
// after the probe's goroutines ended.
func (w *visibilityWatcher) series() []VisibleSecond {
	var out []VisibleSecond
	for _, sec := range slices.Sorted(maps.Keys(w.perSecond)) {
		ms := w.perSecond[sec]
		out = append(out, VisibleSecond{
			Start:  w.start.Add(time.Duration(sec) * time.Second),
			P99MS:  stats.Quantile(ms, 0.99),
			Probes: len(ms),
		})
	}
	return out
}
