package reports

import (
	"math"
	"math/rand/v2"
	"testing"
)

// noisy returns n samples around center, spread by ±spread (uniform).
func noisy(seed uint64, n int, center, spread float64) []float64 {
	r := rand.New(rand.NewPCG(seed, 7))
	xs := make([]float64, n)
	for i := range xs {
		xs[i] = center + spread*(2*r.Float64()-1)
	}
	return xs
}

func TestMannWhitney(t *testing.T) {
	tests := []struct {
		name       string
		a, b       []float64
		wantU      float64
		pMin, pMax float64
	}{
		{"identical", noisy(1, 30, 100, 5), noisy(1, 30, 100, 5), 450, 0.99, 1},
		{"all values equal", []float64{3, 3, 3, 3, 3}, []float64{3, 3, 3, 3, 3}, 12.5, 1, 1},
		{"same distribution", noisy(1, 30, 100, 5), noisy(2, 30, 100, 5), math.NaN(), 0.05, 1},
		{"shifted up", noisy(3, 30, 110, 5), noisy(4, 30, 100, 5), math.NaN(), 0, 1e-6},
		{"shifted down", noisy(5, 30, 90, 5), noisy(6, 30, 100, 5), math.NaN(), 0, 1e-6},
		// Exact: 2 of the C(8,4) = 70 orderings are this extreme.
		{"exact 4 and 4 separated", []float64{5, 6, 7, 8}, []float64{1, 2, 3, 4}, 16, 2.0 / 70 * 0.999, 2.0 / 70 * 1.001},
		// With 3 and 3 no ordering is rarer than 2 in 20.
		{"exact 3 and 3 separated", []float64{1, 2, 3}, []float64{4, 5, 6}, 0, 0.0999, 0.1001},
		{"ties use the normal approximation", []float64{1, 1, 2, 2, 3, 3, 4, 4}, []float64{5, 5, 6, 6, 7, 7, 8, 8}, 0, 0, 0.002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, p := mannWhitney(tt.a, tt.b)
			if !math.IsNaN(tt.wantU) && u != tt.wantU {
				t.Errorf("U = %v, want %v", u, tt.wantU)
			}
			if p < tt.pMin || p > tt.pMax {
				t.Errorf("p = %.5f, want within [%g, %g]", p, tt.pMin, tt.pMax)
			}
			// Swapping the samples changes U to n1·n2 − U, not p.
			u2, p2 := mannWhitney(tt.b, tt.a)
			if math.Abs(p2-p) > 1e-12 || u2 != float64(len(tt.a)*len(tt.b))-u {
				t.Errorf("swapped: U = %v, p = %v; want %v, %v", u2, p2, float64(len(tt.a)*len(tt.b))-u, p)
			}
		})
	}

	t.Run("exact and normal agree for medium samples", func(t *testing.T) {
		a, b := noisy(8, 20, 100, 10), noisy(9, 20, 104, 10)
		_, exact := mannWhitney(a, b)
		// Force the normal approximation by adding a shared tie far away.
		_, approx := mannWhitney(append(a, 1e9), append(b, 1e9))
		if math.Abs(exact-approx) > 0.03 {
			t.Errorf("exact p = %.4f, normal approximation %.4f: want them close", exact, approx)
		}
	})

	t.Run("empty", func(t *testing.T) {
		if _, p := mannWhitney(nil, []float64{1}); !math.IsNaN(p) {
			t.Errorf("p of an empty sample = %v, want NaN", p)
		}
	})
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		xs   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
}
