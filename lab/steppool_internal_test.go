package lab

import (
	"testing"
	"time"

	"scalelab/loadgen"
	"scalelab/scenarios"
)

// A capacity step lets the generator hold what the SLO's latency bound
// allows in flight at its rate, never fewer workers than the scenario's.
func TestStepPool(t *testing.T) {
	slo := SLO{P99: 50 * time.Millisecond}
	tests := []struct {
		name       string
		maxWorkers int
		rate       float64
		slo        SLO
		want       int
	}{
		{"rate times the bound", 256, 14000, slo, 700},
		{"a fraction rounds up", 256, 14001, slo, 701},
		{"the scenario's when more", 256, 1000, slo, 256},
		{"the default when the scenario sets none", 0, 1000, slo, loadgen.DefaultMaxWorkers},
		{"no latency bound: the scenario's", 256, 14000, SLO{}, 256},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := stepPool(&scenarios.Scenario{MaxWorkers: tt.maxWorkers}, tt.rate, tt.slo)
			if got.MaxWorkers != tt.want {
				t.Errorf("stepPool(max_workers %d, %g/s, %v).MaxWorkers = %d, want %d", tt.maxWorkers, tt.rate, tt.slo, got.MaxWorkers, tt.want)
			}
		})
	}
}
