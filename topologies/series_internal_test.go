package topologies

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Successive counter readings become lookups per interval and tier: an
// instance's counter that went back (a restart) counts from zero, a
// reading that failed leaves its intervals without L1/L2, and Varnish's
// counters give L3.
func TestCacheSeries(t *testing.T) {
	base := time.Unix(1_700_000_000, 0)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	snap := func(s int, ok bool, cache map[string]float64, varnish map[string]uint64) counters {
		return counters{at: at(s), cacheOK: ok, cache: cache, varnish: varnish}
	}
	snaps := []counters{
		snap(0, true, map[string]float64{"app-1/l1/hits": 10, "app-1/l1/misses": 10, "app-2/l1/hits": 5, "app-2/l1/misses": 5, "app-1/l2/hits": 1, "app-1/l2/misses": 4},
			map[string]uint64{"cache_hit": 100, "cache_miss": 50}),
		// app-2 restarted: its counters start again from 0.
		snap(1, true, map[string]float64{"app-1/l1/hits": 18, "app-1/l1/misses": 12, "app-2/l1/hits": 2, "app-2/l1/misses": 0, "app-1/l2/hits": 2, "app-1/l2/misses": 5},
			map[string]uint64{"cache_hit": 130, "cache_miss": 60}),
		snap(2, false, map[string]float64{}, nil),
		snap(3, true, map[string]float64{"app-1/l1/hits": 30, "app-1/l1/misses": 12, "app-2/l1/hits": 2, "app-2/l1/misses": 0, "app-1/l2/hits": 2, "app-1/l2/misses": 5},
			map[string]uint64{"cache_hit": 131, "cache_miss": 60}),
	}
	got := cacheSeries(snaps)
	want := []CacheInterval{
		{Start: at(0), End: at(1), L1: &CacheTier{Hits: 10, Misses: 2}, L2: &CacheTier{Hits: 1, Misses: 1}, L3: &CacheTier{Hits: 30, Misses: 10}},
		{Start: at(1), End: at(2)},
		{Start: at(2), End: at(3)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cacheSeries mismatch (-want +got):\n%s", diff)
	}
}
