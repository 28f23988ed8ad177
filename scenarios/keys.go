package scenarios

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"
)

// Distribution names a key distribution, as YCSB names its request
// distributions.
type Distribution string

// The key distributions.
const (
	// Uniform picks every key with the same probability.
	Uniform Distribution = "uniform"
	// Zipfian picks key ranks with probability proportional to 1/rank^theta,
	// scrambled so the popular keys are spread over the key space.
	Zipfian Distribution = "zipfian"
	// Latest is zipfian over recency: the newest keys are the most popular.
	Latest Distribution = "latest"
	// Hotspot sends a fixed fraction of draws to a small hot set of keys.
	Hotspot Distribution = "hotspot"
)

// Distributions lists the key distributions.
func Distributions() []Distribution {
	return []Distribution{Uniform, Zipfian, Latest, Hotspot}
}

// Defaults of the key distributions' parameters, as in YCSB.
const (
	DefaultTheta         = 0.99
	DefaultHotFraction   = 0.2
	DefaultHotOpFraction = 0.8
)

// Keys says how operations pick existing users. Keys are indexes from 0 to
// the number of users minus one, in the order the users were created; the
// driver maps an index to a user id.
type Keys struct {
	Distribution Distribution
	// Theta is the zipfian constant of zipfian and latest, in (0, 1).
	Theta float64
	// Scrambled spreads zipfian's popular keys over the key space instead of
	// making key 0 the most popular (zipfian only; default true).
	Scrambled bool
	// HotKeys is the size of the hotspot's hot set; when 0, the hot set is
	// HotFraction of the keys (at least one key).
	HotKeys int
	// HotFraction is the fraction of keys that are hot (hotspot).
	HotFraction float64
	// HotOpFraction is the fraction of draws that go to the hot set
	// (hotspot).
	HotOpFraction float64
}

// String describes the distribution in one line, e.g. "zipfian (theta 0.99,
// scrambled)".
func (k Keys) String() string {
	switch k.Distribution {
	case Zipfian:
		if k.Scrambled {
			return fmt.Sprintf("zipfian (theta %g, scrambled)", k.Theta)
		}
		return fmt.Sprintf("zipfian (theta %g)", k.Theta)
	case Latest:
		return fmt.Sprintf("latest (theta %g)", k.Theta)
	case Hotspot:
		switch {
		case k.HotKeys == 1:
			return fmt.Sprintf("hotspot (1 hot key gets %g%% of draws)", 100*k.HotOpFraction)
		case k.HotKeys > 1:
			return fmt.Sprintf("hotspot (%d hot keys get %g%% of draws)", k.HotKeys, 100*k.HotOpFraction)
		}
		return fmt.Sprintf("hotspot (%g%% of keys get %g%% of draws)", 100*k.HotFraction, 100*k.HotOpFraction)
	}
	return string(k.Distribution)
}

func validateKeys(k Keys, users int) []issue {
	var is []issue
	add := func(field, format string, args ...any) {
		is = append(is, issue{"keys." + field, fmt.Sprintf(format, args...)})
	}
	if !slices.Contains(Distributions(), k.Distribution) {
		add("distribution", "unknown distribution %q (want uniform, zipfian, latest or hotspot)", k.Distribution)
		return is
	}
	if k.Distribution == Zipfian || k.Distribution == Latest {
		if !(k.Theta > 0 && k.Theta < 1) {
			add("theta", "%g is out of range: want 0 < theta < 1", k.Theta)
		}
	} else if k.Theta != 0 {
		add("theta", "not used by %s", k.Distribution)
	}
	if k.Distribution != Zipfian && k.Scrambled {
		add("scrambled", "not used by %s", k.Distribution)
	}
	if k.Distribution == Hotspot {
		if k.HotKeys < 0 {
			add("hot_keys", "must be >= 1")
		} else if k.HotKeys > 0 && users > 0 && k.HotKeys > users {
			add("hot_keys", "%d is more than users (%d)", k.HotKeys, users)
		}
		if k.HotKeys > 0 && k.HotFraction != 0 {
			add("hot_fraction", "give hot_keys or hot_fraction, not both")
		} else if k.HotKeys == 0 && !(k.HotFraction > 0 && k.HotFraction <= 1) {
			add("hot_fraction", "%g is out of range: want 0 < hot_fraction <= 1", k.HotFraction)
		}
		if !(k.HotOpFraction >= 0 && k.HotOpFraction <= 1) {
			add("hot_op_fraction", "%g is out of range: want 0 <= hot_op_fraction <= 1", k.HotOpFraction)
		}
	} else {
		if k.HotKeys != 0 {
			add("hot_keys", "not used by %s", k.Distribution)
		}
		if k.HotFraction != 0 {
			add("hot_fraction", "not used by %s", k.Distribution)
		}
		if k.HotOpFraction != 0 {
			add("hot_op_fraction", "not used by %s", k.Distribution)
		}
	}
	return is
}

// Generator draws key indexes in [0, n). Each worker owns one: generators
// are not safe for concurrent use, and Next does not allocate.
type Generator interface {
	// Next draws a key index in [0, N()).
	Next() int64
	// Grow tells the generator that the key count is now n (new keys have
	// the highest indexes). A smaller n than the current one is ignored.
	Grow(n int64)
	// N is the current key count.
	N() int64
}

// NewGenerator returns a generator of k's distribution over n keys drawing
// from r. It panics if n < 1 or k is not valid.
//
// Generators of the same Keys and n agree on which keys are popular, so every
// worker can have its own and the load still concentrates on the same keys.
func (k Keys) NewGenerator(r *rand.Rand, n int64) Generator {
	switch k.Distribution {
	case Uniform:
		return NewUniform(r, n)
	case Zipfian:
		if k.Scrambled {
			return NewScrambledZipfian(r, n, k.Theta)
		}
		return NewZipfian(r, n, k.Theta)
	case Latest:
		return NewLatest(r, n, k.Theta)
	case Hotspot:
		return NewHotspot(r, n, int64(k.HotKeys), k.HotFraction, k.HotOpFraction)
	}
	panic(fmt.Sprintf("scenarios: unknown distribution %q", k.Distribution))
}

func mustKeys(n int64) {
	if n < 1 {
		panic(fmt.Sprintf("scenarios: key generator over %d keys", n))
	}
}

// UniformGen picks every key with the same probability.
type UniformGen struct {
	r *rand.Rand
	n int64
}

// NewUniform returns a uniform generator over n keys.
func NewUniform(r *rand.Rand, n int64) *UniformGen {
	mustKeys(n)
	return &UniformGen{r: r, n: n}
}

func (g *UniformGen) Next() int64 { return g.r.Int64N(g.n) }
func (g *UniformGen) N() int64    { return g.n }
func (g *UniformGen) Grow(n int64) {
	g.n = max(g.n, n)
}

// ZipfianGen draws ranks 0..n-1 where rank i has probability proportional to
// 1/(i+1)^theta: rank 0 is the most popular. It is YCSB's ZipfianGenerator,
// the algorithm of Gray et al., "Quickly Generating Billion-Record Synthetic
// Databases" (SIGMOD 1994): one uniform draw and one math.Pow per key.
type ZipfianGen struct {
	r     *rand.Rand
	n     int64
	theta float64
	alpha float64 // 1 / (1 - theta)
	zeta2 float64 // zeta(2, theta)
	zetaN float64 // zeta(n, theta)
	eta   float64
	half  float64 // 1 + 0.5^theta: the draw below which rank 1 is returned
	head  float64 // zeta(zetaExact, theta), kept so Grow costs O(1)
}

// NewZipfian returns a zipfian generator over n ranks with the given theta
// (0 < theta < 1; YCSB's default is 0.99).
func NewZipfian(r *rand.Rand, n int64, theta float64) *ZipfianGen {
	mustKeys(n)
	if !(theta > 0 && theta < 1) {
		panic(fmt.Sprintf("scenarios: zipfian theta %g out of (0, 1)", theta))
	}
	g := &ZipfianGen{
		r:     r,
		theta: theta,
		alpha: 1 / (1 - theta),
		zeta2: 1 + math.Pow(2, -theta),
		half:  1 + math.Pow(0.5, theta),
		head:  zetaSum(0, zetaExact, theta),
	}
	g.setN(n)
	return g
}

func (g *ZipfianGen) setN(n int64) {
	g.n = n
	g.zetaN = zeta(n, g.theta, g.head)
	if n > 2 {
		g.eta = (1 - math.Pow(2/float64(n), 1-g.theta)) / (1 - g.zeta2/g.zetaN)
	}
}

func (g *ZipfianGen) Next() int64 {
	u := g.r.Float64()
	uz := u * g.zetaN
	if uz < 1 {
		return 0
	}
	if uz < g.half || g.n <= 2 {
		return min(1, g.n-1)
	}
	k := int64(float64(g.n) * math.Pow(g.eta*u-g.eta+1, g.alpha))
	return min(k, g.n-1)
}

func (g *ZipfianGen) N() int64 { return g.n }

// Grow extends the ranks to n. Unlike YCSB, which adds the new terms of the
// zeta sum one by one, this recomputes zeta(n) in constant time (see zeta).
func (g *ZipfianGen) Grow(n int64) {
	if n > g.n {
		g.setN(n)
	}
}

// zetaExact is how many terms of the zeta sum are added one by one; the rest
// is the Euler–Maclaurin formula, whose next term at this point is below
// 1e-19 of the sum.
const zetaExact = 1024

// zeta is sum_{i=1..n} 1/i^theta. head must be zetaSum(0, zetaExact, theta).
// YCSB adds all n terms, which costs tens of milliseconds per million keys
// per generator; with one generator per worker that would add seconds to a
// run's start, and Grow would cost as much.
func zeta(n int64, theta, head float64) float64 {
	if n <= zetaExact {
		return zetaSum(0, n, theta)
	}
	// sum_{i=m+1..n} f(i) = ∫_m^n f + (f(n)-f(m))/2 + (f'(n)-f'(m))/12
	//                        - (f'''(n)-f'''(m))/720 + …,   f(x) = x^-theta.
	m, x := float64(zetaExact), float64(n)
	f := func(x float64) float64 { return math.Pow(x, -theta) }
	f1 := func(x float64) float64 { return -theta * math.Pow(x, -theta-1) }
	f3 := func(x float64) float64 {
		return -theta * (theta + 1) * (theta + 2) * math.Pow(x, -theta-3)
	}
	integral := (math.Pow(x, 1-theta) - math.Pow(m, 1-theta)) / (1 - theta)
	return head + integral + (f(x)-f(m))/2 + (f1(x)-f1(m))/12 - (f3(x)-f3(m))/720
}

// zetaSum adds 1/i^theta for i in (from, to].
func zetaSum(from, to int64, theta float64) float64 {
	var s float64
	for i := from + 1; i <= to; i++ {
		s += math.Pow(float64(i), -theta)
	}
	return s
}

// ScrambledZipfianGen is zipfian over keys whose ranks are shuffled: the
// popular keys are spread over the key space rather than packed at its
// start, as YCSB's ScrambledZipfianGenerator does. YCSB hashes the rank and
// takes it modulo n, which makes some keys collide and others unreachable;
// this one maps the first n ranks through a fixed permutation of [0, n), so
// every key keeps exactly its rank's probability. Keys added by Grow keep
// their own index as their rank: the popular keys stay where they were.
type ScrambledZipfianGen struct {
	z    *ZipfianGen
	perm permutation
}

// NewScrambledZipfian returns a scrambled zipfian generator over n keys.
func NewScrambledZipfian(r *rand.Rand, n int64, theta float64) *ScrambledZipfianGen {
	return &ScrambledZipfianGen{z: NewZipfian(r, n, theta), perm: newPermutation(n)}
}

func (g *ScrambledZipfianGen) Next() int64  { return g.perm.apply(g.z.Next()) }
func (g *ScrambledZipfianGen) N() int64     { return g.z.n }
func (g *ScrambledZipfianGen) Grow(n int64) { g.z.Grow(n) }

// permutation is i ↦ (i·mul + add) mod n on [0, n), a bijection because mul
// and n are coprime, and the identity from n on.
type permutation struct {
	n, mul, add uint64
}

// golden is a prime near 2^32/φ (Knuth's multiplicative hashing constant).
const golden = 2654435761

func newPermutation(n int64) permutation {
	un := uint64(n)
	p := permutation{n: un}
	if un <= 2 {
		p.mul = 1
		return p
	}
	p.mul = golden % un
	for p.mul < 2 || gcd(p.mul, un) != 1 {
		p.mul = (p.mul + 1) % un
	}
	p.add = 0x9e3779b97f4a7c15 % un
	return p
}

func (p permutation) apply(i int64) int64 {
	u := uint64(i)
	if u >= p.n {
		return i
	}
	hi, lo := bits.Mul64(u, p.mul)
	lo, carry := bits.Add64(lo, p.add, 0)
	hi += carry
	if hi == 0 {
		return int64(lo % p.n)
	}
	return int64(bits.Rem64(hi, lo, p.n))
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// LatestGen is YCSB's SkewedLatestGenerator: zipfian over recency, so the
// most recently added key is the most popular. Tell it about new keys with
// Grow.
type LatestGen struct {
	z *ZipfianGen
}

// NewLatest returns a latest generator over n keys.
func NewLatest(r *rand.Rand, n int64, theta float64) *LatestGen {
	return &LatestGen{z: NewZipfian(r, n, theta)}
}

func (g *LatestGen) Next() int64  { return g.z.n - 1 - g.z.Next() }
func (g *LatestGen) N() int64     { return g.z.n }
func (g *LatestGen) Grow(n int64) { g.z.Grow(n) }

// HotspotGen is YCSB's HotspotIntegerGenerator: the first keys form a hot
// set that gets a fixed fraction of the draws, uniformly; the other draws go
// uniformly to the rest.
type HotspotGen struct {
	r           *rand.Rand
	n, hot      int64
	hotKeys     int64
	hotFraction float64
	opFraction  float64
}

// NewHotspot returns a hotspot generator over n keys. The hot set is the
// first hotKeys keys or, when hotKeys is 0, the first hotFraction of them
// (at least one); opFraction of the draws go to it.
func NewHotspot(r *rand.Rand, n, hotKeys int64, hotFraction, opFraction float64) *HotspotGen {
	mustKeys(n)
	g := &HotspotGen{r: r, hotKeys: hotKeys, hotFraction: hotFraction, opFraction: opFraction}
	g.setN(n)
	return g
}

func (g *HotspotGen) setN(n int64) {
	g.n = n
	if g.hotKeys > 0 {
		g.hot = g.hotKeys
	} else {
		g.hot = int64(float64(n) * g.hotFraction)
	}
	g.hot = min(max(g.hot, 1), n)
}

func (g *HotspotGen) Next() int64 {
	if g.hot == g.n || g.r.Float64() < g.opFraction {
		return g.r.Int64N(g.hot)
	}
	return g.hot + g.r.Int64N(g.n-g.hot)
}

func (g *HotspotGen) N() int64 { return g.n }

// Grow adds keys to the cold set; a hot set given as a fraction grows with
// the key count.
func (g *HotspotGen) Grow(n int64) {
	if n > g.n {
		g.setN(n)
	}
}

// HotSet is the number of hot keys (the first HotSet indexes).
func (g *HotspotGen) HotSet() int64 { return g.hot }
