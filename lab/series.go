package lab

import (
	"maps"
	"slices"
	"time"

	"scalelab/reports"
	"scalelab/topologies"
)

// The topology's series carry wall-clock times; result.json counts seconds
// from the load's start. second maps a time onto that count, and reports
// whether it falls within the n seconds of the series.
func second(at, start time.Time, n int) (int, bool) {
	d := at.Sub(start)
	if d < 0 {
		return 0, false
	}
	t := int(d / time.Second)
	return t, t < n
}

// cacheSeries is each tier's hit rate per second of the run: every
// sampling interval counts in the second its middle falls in (intervals
// are about a second long, but not aligned with the load's seconds), and a
// tier without lookups in a second is null there.
func cacheSeries(ivs []topologies.CacheInterval, start time.Time, n int) []reports.CacheSecond {
	type tiers struct{ l1, l2, l3 *topologies.CacheTier }
	add := func(sum **topologies.CacheTier, c *topologies.CacheTier) {
		if c == nil {
			return
		}
		if *sum == nil {
			*sum = &topologies.CacheTier{}
		}
		(*sum).Hits += c.Hits
		(*sum).Misses += c.Misses
	}
	bySecond := map[int]*tiers{}
	for _, iv := range ivs {
		t, ok := second(iv.Start.Add(iv.End.Sub(iv.Start)/2), start, n)
		if !ok {
			continue
		}
		s := bySecond[t]
		if s == nil {
			s = &tiers{}
			bySecond[t] = s
		}
		add(&s.l1, iv.L1)
		add(&s.l2, iv.L2)
		add(&s.l3, iv.L3)
	}
	var out []reports.CacheSecond
	for _, t := range slices.Sorted(maps.Keys(bySecond)) {
		s := bySecond[t]
		c := reports.CacheSecond{T: t, L1: hitRate(s.l1), L2: hitRate(s.l2), L3: hitRate(s.l3)}
		if c.L1 != nil || c.L2 != nil || c.L3 != nil {
			out = append(out, c)
		}
	}
	return out
}

// replicaSeries is one replica's lag (the largest sample in each second,
// in ms) and the p99 of the write-to-visible delay of the probe writes
// acknowledged in that second (the probe's seconds count from the
// sampler's start, a moment before the load's: each goes where its middle
// falls).
func replicaSeries(r topologies.ReplicaLag, start time.Time, n int) []reports.ReplicaSecond {
	bySecond := map[int]*reports.ReplicaSecond{}
	at := func(t int) *reports.ReplicaSecond {
		s := bySecond[t]
		if s == nil {
			s = &reports.ReplicaSecond{T: t}
			bySecond[t] = s
		}
		return s
	}
	for _, p := range r.Lag {
		if t, ok := second(p.At, start, n); ok {
			s := at(t)
			s.LagMS = max(s.LagMS, p.LagS*1000)
		}
	}
	for _, v := range r.Visible {
		if t, ok := second(v.Start.Add(time.Second/2), start, n); ok && v.Probes > 0 {
			at(t).VisibleMSP99 = reports.Float(v.P99MS)
		}
	}
	var out []reports.ReplicaSecond
	for _, t := range slices.Sorted(maps.Keys(bySecond)) {
		out = append(out, *bySecond[t])
	}
	return out
}
