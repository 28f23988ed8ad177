package lab

import (
	"testing"

	"scalelab/reports"
)

// The model's zero-load latency is the median p50 and the median p99 of
// the three lowest-rate steps that passed below the capacity: retried
// attempts and the capacity's own step are left out, and each median is
// taken on its own (the step with the middle p50 need not have the
// middle p99).
func TestLowLoad(t *testing.T) {
	steps := []reports.CapacityStep{
		{Offered: 1000, P50MS: 0.30, P99MS: 33},
		{Offered: 250, P50MS: 0.50, P99MS: 20},
		{Offered: 500, P50MS: 0.20, P99MS: 90, Retried: true}, // left out
		{Offered: 500, P50MS: 0.40, P99MS: 16},
		{Offered: 2000, P50MS: 0.90, P99MS: 40}, // not among the three lowest
		{Offered: 2880, P50MS: 0.10, P99MS: 5},  // the capacity itself
	}
	p50, p99, ok := lowLoad(steps, 2880)
	if !ok || p50 != 0.40 || p99 != 20 {
		t.Errorf("lowLoad = %v, %v, %v; want 0.40, 20, true", p50, p99, ok)
	}
	if _, _, ok := lowLoad(steps[5:], 2880); ok {
		t.Error("lowLoad with no step below the capacity reported a latency")
	}
}
