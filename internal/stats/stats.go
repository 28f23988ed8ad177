// Package stats holds the lab's one quantile function, for the small
// samples that are not HDR histograms (replica lag samples, run-to-run
// medians).
package stats

import (
	"math"
	"slices"
)

// Quantile returns the q-quantile (0 ≤ q ≤ 1) of xs, interpolating
// linearly between the two nearest ranks, so that the median of an even
// count is the mean of the middle two, q = 0 is the minimum and q = 1 the
// maximum. xs need not be sorted and is not changed. It is NaN for no
// values.
func Quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := xs
	if !slices.IsSorted(xs) {
		s = slices.Clone(xs)
		slices.Sort(s)
	}
	q = min(max(q, 0), 1)
	pos := q * float64(len(s)-1)
	i := int(pos)
	if i >= len(s)-1 {
		return s[len(s)-1]
	}
	// a(1-f) + bf rather than a + f(b-a): at f = 0.5 it is exactly
	// (a+b)/2, the textbook median.
	f := pos - float64(i)
	return s[i]*(1-f) + s[i+1]*f
}
