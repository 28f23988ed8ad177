package reports

import (
	"math"
	"slices"

	"scalelab/internal/stats"
)

// mannWhitney is the two-sided Mann–Whitney U test (Wilcoxon rank-sum) of
// whether a and b come from the same distribution. It returns U of a (the
// number of pairs in which a's value is larger, ties counting half) and the
// p-value: exact for small samples without ties, otherwise from the normal
// approximation with tie and continuity corrections.
//
// The test compares ranks, not values, so a few outliers (a GC pause, a
// second with a stall) cannot swing it the way they swing a mean.
func mannWhitney(a, b []float64) (u, p float64) {
	n1, n2 := len(a), len(b)
	if n1 == 0 || n2 == 0 {
		return 0, math.NaN()
	}
	type obs struct {
		v     float64
		fromA bool
	}
	all := make([]obs, 0, n1+n2)
	for _, v := range a {
		all = append(all, obs{v, true})
	}
	for _, v := range b {
		all = append(all, obs{v, false})
	}
	slices.SortFunc(all, func(x, y obs) int {
		switch {
		case x.v < y.v:
			return -1
		case x.v > y.v:
			return 1
		}
		return 0
	})
	var rankA, tieTerm float64
	ties := false
	for i := 0; i < len(all); {
		j := i
		for j < len(all) && all[j].v == all[i].v {
			j++
		}
		rank := float64(i+j+1) / 2 // ranks i+1..j share their mean
		for k := i; k < j; k++ {
			if all[k].fromA {
				rankA += rank
			}
		}
		if t := float64(j - i); t > 1 {
			ties = true
			tieTerm += t*t*t - t
		}
		i = j
	}
	u = rankA - float64(n1*(n1+1))/2

	if !ties && n1 <= 25 && n2 <= 25 {
		return u, exactMannWhitney(n1, n2, u)
	}
	n := float64(n1 + n2)
	mu := float64(n1*n2) / 2
	sigma2 := float64(n1*n2) / 12 * ((n + 1) - tieTerm/(n*(n-1)))
	if sigma2 <= 0 {
		return u, 1 // every value is the same
	}
	z := math.Max(math.Abs(u-mu)-0.5, 0) / math.Sqrt(sigma2)
	return u, math.Min(1, math.Erfc(z/math.Sqrt2))
}

// exactMannWhitney is the exact two-sided p-value of U = u for samples of n1
// and n2 without ties: the share of the C(n1+n2, n1) equally likely
// orderings whose U is at least as far from its mean.
func exactMannWhitney(n1, n2 int, u float64) float64 {
	// counts[i][j][k]: orderings of i values of a and j of b with U = k. The
	// largest value is either from a (beating all j values of b) or from b.
	counts := make([][][]float64, n1+1)
	for i := range counts {
		counts[i] = make([][]float64, n2+1)
		for j := range counts[i] {
			c := make([]float64, i*j+1)
			switch {
			case i == 0 || j == 0:
				c[0] = 1
			default:
				for k := range c {
					if k >= j && k-j < len(counts[i-1][j]) {
						c[k] += counts[i-1][j][k-j]
					}
					if k < len(counts[i][j-1]) {
						c[k] += counts[i][j-1][k]
					}
				}
			}
			counts[i][j] = c
		}
	}
	dist := counts[n1][n2]
	var total, below, above float64
	for k, c := range dist {
		total += c
		if float64(k) <= u {
			below += c
		}
		if float64(k) >= u {
			above += c
		}
	}
	return math.Min(1, 2*math.Min(below, above)/total)
}

func median(xs []float64) float64 { return stats.Quantile(xs, 0.5) }
