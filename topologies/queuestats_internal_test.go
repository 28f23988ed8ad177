package topologies

import (
	"math"
	"testing"
)

// The queue's latency percentiles come from the difference of histogram
// buckets between the start and the end of a run, interpolated within a
// bucket as Prometheus' histogram_quantile does.
func TestBucketQuantiles(t *testing.T) {
	base := map[string]float64{"export/0.01": 5, "export/0.1": 5, "export/1": 5, "export/+Inf": 5}
	final := map[string]float64{"export/0.01": 5, "export/0.1": 15, "export/1": 25, "export/+Inf": 25,
		"cdn_purge/1": 0, "cdn_purge/+Inf": 0}
	deltas := bucketDeltas(base, final)
	if _, ok := deltas["cdn_purge"]; ok {
		t.Errorf("a kind without observations in the run is kept: %v", deltas)
	}
	b := deltas["export"]
	if got := b.total(); got != 20 {
		t.Fatalf("total = %v, want the 20 observations of the run", got)
	}
	tests := []struct{ q, want float64 }{
		{0.25, 0.055}, // half-way through (0.01, 0.1]
		{0.5, 0.1},
		{0.75, 0.55},
		{0.99, 0.982},
	}
	for _, tt := range tests {
		if got := b.quantile(tt.q); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	inf := bucketDeltas(nil, map[string]float64{"k/0.5": 0, "k/+Inf": 4})["k"]
	if got := inf.quantile(0.5); got != 0.5 {
		t.Errorf("quantile in the +Inf bucket = %v, want the largest finite bound 0.5", got)
	}
}
