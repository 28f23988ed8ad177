package scenarios

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x5ca1ab1e)) }

// draw returns how often each key was drawn.
func draw(g Generator, draws int) []int {
	counts := make([]int, g.N())
	for range draws {
		k := g.Next()
		if k < 0 || k >= int64(len(counts)) {
			panic("key out of range")
		}
		counts[k]++
	}
	return counts
}

// topShare is the share of draws that went to the most drawn fraction of keys.
func topShare(counts []int, fraction float64) float64 {
	sorted := slices.Clone(counts)
	slices.Sort(sorted)
	slices.Reverse(sorted)
	top, total := 0, 0
	for i, c := range sorted {
		if i < int(float64(len(sorted))*fraction) {
			top += c
		}
		total += c
	}
	return float64(top) / float64(total)
}

// chiSquare of counts against a uniform expectation.
func chiSquare(counts []int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	want := float64(total) / float64(len(counts))
	var x2 float64
	for _, c := range counts {
		d := float64(c) - want
		x2 += d * d / want
	}
	return x2
}

func TestUniform(t *testing.T) {
	g := NewUniform(newRand(1), 100)
	counts := draw(g, 100000)
	// 99 degrees of freedom: mean 99, standard deviation 14.
	if x2 := chiSquare(counts); x2 < 40 || x2 > 170 {
		t.Errorf("uniform chi-square over 100 keys = %.1f, want within [40, 170]", x2)
	}
	g.Grow(200)
	counts = draw(g, 100000)
	if x2 := chiSquare(counts); x2 > 300 {
		t.Errorf("after Grow(200), chi-square = %.1f, want the new keys drawn as often", x2)
	}
}

func TestZipfian(t *testing.T) {
	t.Run("shape", func(t *testing.T) {
		g := NewZipfian(newRand(2), 1000, 0.99)
		counts := draw(g, 200000)
		// ranks 0..99 hold zeta(100)/zeta(1000) ≈ 0.69 of the mass.
		if share := topShare(counts, 0.1); share < 0.6 {
			t.Errorf("top 10%% of keys got %.2f of draws, want well over half", share)
		}
		if slices.Max(counts) != counts[0] {
			t.Errorf("rank 0 drawn %d times, not the most (%d)", counts[0], slices.Max(counts))
		}
		// p(0)/p(9) = 10^0.99 ≈ 9.8 for a true zipfian; Gray's approximation
		// is close to it.
		if ratio := float64(counts[0]) / float64(counts[9]); ratio < 6 || ratio > 15 {
			t.Errorf("count(rank 0)/count(rank 9) = %.1f, want about 10", ratio)
		}
	})
	t.Run("flatter with smaller theta", func(t *testing.T) {
		skewed := topShare(draw(NewZipfian(newRand(3), 1000, 0.99), 100000), 0.1)
		flat := topShare(draw(NewZipfian(newRand(3), 1000, 0.5), 100000), 0.1)
		if !(flat < skewed) {
			t.Errorf("top 10%% share: theta 0.5 %.2f, theta 0.99 %.2f; want theta 0.5 flatter", flat, skewed)
		}
	})
	t.Run("grow equals a fresh generator", func(t *testing.T) {
		for _, n := range []int64{10, 1000, 5000, 3_000_000} {
			g := NewZipfian(newRand(4), 3, 0.99)
			g.Grow(n)
			fresh := NewZipfian(newRand(4), n, 0.99)
			if math.Abs(g.zetaN-fresh.zetaN) > 1e-12*fresh.zetaN || math.Abs(g.eta-fresh.eta) > 1e-12 {
				t.Errorf("Grow(%d): zeta %v eta %v, fresh %v %v", n, g.zetaN, g.eta, fresh.zetaN, fresh.eta)
			}
		}
	})
	t.Run("small key counts", func(t *testing.T) {
		for _, n := range []int64{1, 2, 3} {
			counts := draw(NewZipfian(newRand(5), n, 0.99), 1000)
			if counts[0] == 0 || (n > 1 && counts[n-1] == 0) {
				t.Errorf("zipfian over %d keys: counts %v, want every key drawn", n, counts)
			}
		}
	})
}

func TestZeta(t *testing.T) {
	for _, theta := range []float64{0.2, 0.5, 0.99} {
		head := zetaSum(0, zetaExact, theta)
		for _, n := range []int64{1, 1024, 1025, 5000, 200000} {
			exact := zetaSum(0, n, theta)
			if got := zeta(n, theta, head); math.Abs(got-exact) > 1e-10*exact {
				t.Errorf("zeta(%d, %v) = %.15g, want %.15g", n, theta, got, exact)
			}
		}
	}
}

func TestScrambledZipfian(t *testing.T) {
	const n = 1000
	counts := draw(NewScrambledZipfian(newRand(6), n, 0.99), 200000)
	if share := topShare(counts, 0.1); share < 0.6 {
		t.Errorf("top 10%% of keys got %.2f of draws, want well over half", share)
	}
	// The popular keys are spread out, not packed at the start: of the 100
	// most drawn keys about 10 lie in the first tenth of the key space.
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return counts[b] - counts[a] })
	inFirstTenth := 0
	for _, k := range order[:100] {
		if k < n/10 {
			inFirstTenth++
		}
	}
	if inFirstTenth > 30 {
		t.Errorf("%d of the 100 most drawn keys are in the first tenth of the key space, want them spread", inFirstTenth)
	}

	// Every worker's generator agrees on the popular keys.
	a, b := NewScrambledZipfian(newRand(7), n, 0.99), NewScrambledZipfian(newRand(8), n, 0.99)
	if a.perm != b.perm {
		t.Errorf("two generators over %d keys scramble differently: %+v, %+v", n, a.perm, b.perm)
	}
}

func TestPermutation(t *testing.T) {
	for _, n := range []int64{1, 2, 3, 10, 1000, 65537, golden - 1} {
		p := newPermutation(n)
		limit := min(n, 100000)
		if n > limit {
			// Too many to check all: check that the multiplier is coprime.
			if gcd(p.mul, uint64(n)) != 1 {
				t.Errorf("newPermutation(%d).mul = %d shares a factor with n", n, p.mul)
			}
			continue
		}
		seen := make([]bool, n)
		for i := range n {
			k := p.apply(i)
			if k < 0 || k >= n || seen[k] {
				t.Fatalf("permutation of %d maps %d to %d: not a bijection", n, i, k)
			}
			seen[k] = true
		}
		if got := p.apply(n + 5); got != n+5 {
			t.Errorf("permutation of %d maps %d to %d, want keys past n unchanged", n, n+5, got)
		}
	}
}

func TestLatest(t *testing.T) {
	g := NewLatest(newRand(9), 1000, 0.99)
	g.Grow(2000)
	counts := draw(g, 200000)
	if slices.Max(counts) != counts[1999] {
		t.Errorf("newest key drawn %d times, not the most (%d)", counts[1999], slices.Max(counts))
	}
	newest := 0
	for _, c := range counts[1800:] {
		newest += c
	}
	if share := float64(newest) / 200000; share < 0.6 {
		t.Errorf("newest 10%% of keys got %.2f of draws, want well over half", share)
	}
}

func TestHotspot(t *testing.T) {
	t.Run("one hot key", func(t *testing.T) {
		g := NewHotspot(newRand(10), 1000, 1, 0, 0.9)
		counts := draw(g, 100000)
		if share := float64(counts[0]) / 100000; share < 0.88 || share > 0.92 {
			t.Errorf("hot key got %.3f of draws, want about 0.9", share)
		}
		if x2 := chiSquare(counts[1:]); x2 > 1300 { // 998 degrees of freedom
			t.Errorf("cold keys chi-square = %.0f, want them uniform", x2)
		}
	})
	t.Run("hot fraction", func(t *testing.T) {
		g := NewHotspot(newRand(11), 1000, 0, 0.2, 0.8)
		if g.HotSet() != 200 {
			t.Fatalf("HotSet() = %d, want 200", g.HotSet())
		}
		counts := draw(g, 100000)
		hot := 0
		for _, c := range counts[:200] {
			hot += c
		}
		if share := float64(hot) / 100000; share < 0.78 || share > 0.82 {
			t.Errorf("hot set got %.3f of draws, want about 0.8", share)
		}
		g.Grow(2000)
		if g.HotSet() != 400 {
			t.Errorf("after Grow(2000), HotSet() = %d, want 400", g.HotSet())
		}
	})
	t.Run("all hot", func(t *testing.T) {
		g := NewHotspot(newRand(12), 5, 0, 1, 0.5)
		draw(g, 1000) // must not panic on an empty cold set
	})
}

func TestGenerators(t *testing.T) {
	r := newRand(13)
	tests := map[string]Keys{
		"uniform":           {Distribution: Uniform},
		"zipfian":           {Distribution: Zipfian, Theta: 0.99},
		"scrambled zipfian": {Distribution: Zipfian, Theta: 0.99, Scrambled: true},
		"latest":            {Distribution: Latest, Theta: 0.99},
		"hotspot":           {Distribution: Hotspot, HotFraction: 0.2, HotOpFraction: 0.8},
	}
	for name, k := range tests {
		t.Run(name, func(t *testing.T) {
			g := k.NewGenerator(r, 100000)
			if allocs := testing.AllocsPerRun(1000, func() { g.Next() }); allocs != 0 {
				t.Errorf("Next allocates %v times per draw, want 0", allocs)
			}
			g.Grow(100001)
			if g.N() != 100001 {
				t.Errorf("after Grow(100001), N() = %d", g.N())
			}
			g.Grow(5)
			if g.N() != 100001 {
				t.Errorf("Grow(5) shrank the key count to %d", g.N())
			}
		})
	}
}

func BenchmarkGenerators(b *testing.B) {
	for _, k := range []Keys{
		{Distribution: Uniform},
		{Distribution: Zipfian, Theta: 0.99, Scrambled: true},
		{Distribution: Latest, Theta: 0.99},
		{Distribution: Hotspot, HotKeys: 1, HotOpFraction: 0.9},
	} {
		b.Run(string(k.Distribution), func(b *testing.B) {
			g := k.NewGenerator(newRand(1), 1_000_000)
			for b.Loop() {
				g.Next()
			}
		})
	}
	b.Run("new-zipfian-1M", func(b *testing.B) {
		r := newRand(1)
		for b.Loop() {
			NewScrambledZipfian(r, 1_000_000, 0.99)
		}
	})
}
