package loadgen

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// arrivalsBy counts the arrivals of p due before each whole second up to
// secs.
func arrivalsBy(p Pacer, secs int) []int {
	out := make([]int, secs)
	for n := int64(0); ; n++ {
		at, ok := p.Due(n)
		if !ok || at >= time.Duration(secs)*time.Second {
			return out
		}
		out[int(at/time.Second)]++
	}
}

func TestConstantRate(t *testing.T) {
	tests := []struct {
		rate float64
		n    int64
		want time.Duration
	}{
		{100, 0, 0},
		{100, 1, 10 * time.Millisecond},
		{100, 250, 2500 * time.Millisecond},
		{0.5, 3, 6 * time.Second},
	}
	for _, tt := range tests {
		if got, ok := ConstantRate(tt.rate).Due(tt.n); !ok || got != tt.want {
			t.Errorf("ConstantRate(%v).Due(%d) = %v, %v, want %v", tt.rate, tt.n, got, ok, tt.want)
		}
	}
	if _, ok := ConstantRate(0).Due(0); ok {
		t.Errorf("ConstantRate(0).Due(0) has an arrival, want none")
	}
	if got := arrivalsBy(ConstantRate(1000), 3); got[0] != 1000 || got[1] != 1000 || got[2] != 1000 {
		t.Errorf("ConstantRate(1000) arrivals per second = %v, want 1000 each", got)
	}
}

func TestRampReachesStageTargets(t *testing.T) {
	ramp, err := NewRamp(100,
		Stage{Target: 300, Duration: 2 * time.Second},  // up: 150, 250 (the area under each second)
		Stage{Target: 300, Duration: 2 * time.Second},  // hold: 300, 300
		Stage{Target: 0, Duration: 2 * time.Second},    // down: 225, 75
		Stage{Target: 0, Duration: time.Second},        // pause: 0
		Stage{Target: 1000, Duration: 1 * time.Second}, // up from zero: 500
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []int{150, 250, 300, 300, 225, 75, 0, 500}
	got := arrivalsBy(ramp, 8)
	for i := range want {
		// Rounding may move an arrival across a second's edge.
		if d := got[i] - want[i]; d < -1 || d > 1 {
			t.Errorf("second %d: %d arrivals, want %d (all: %v)", i, got[i], want[i], got)
		}
	}
	if ramp.Duration() != 8*time.Second {
		t.Errorf("Duration() = %v, want 8s", ramp.Duration())
	}
	for _, tt := range []struct {
		at   time.Duration
		want float64
	}{{0, 100}, {time.Second, 200}, {2 * time.Second, 300}, {4 * time.Second, 300}, {5 * time.Second, 150}, {6500 * time.Millisecond, 0}, {7500 * time.Millisecond, 500}, {time.Hour, 0}} {
		if got := ramp.Rate(tt.at); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("Rate(%v) = %v, want %v", tt.at, got, tt.want)
		}
	}
	// Due times never go backwards, and the ramp ends after its area.
	prev := time.Duration(-1)
	var n int64
	for ; ; n++ {
		at, ok := ramp.Due(n)
		if !ok {
			break
		}
		if at < prev {
			t.Fatalf("Due(%d) = %v before Due(%d) = %v", n, at, n-1, prev)
		}
		prev = at
	}
	if n != 1800 {
		t.Errorf("ramp has %d arrivals, want 1800", n)
	}
}

func TestNewRampErrors(t *testing.T) {
	tests := []struct {
		name   string
		start  float64
		stages []Stage
	}{
		{"no stages", 1, nil},
		{"negative start", -1, []Stage{{Target: 1, Duration: time.Second}}},
		{"negative target", 1, []Stage{{Target: -1, Duration: time.Second}}},
		{"zero duration", 1, []Stage{{Target: 1}}},
		{"NaN", math.NaN(), []Stage{{Target: 1, Duration: time.Second}}},
	}
	for _, tt := range tests {
		if _, err := NewRamp(tt.start, tt.stages...); err == nil {
			t.Errorf("NewRamp(%s) succeeded, want an error", tt.name)
		}
	}
}

// The mix follows the weights, and a seed fixes the sequence.
func TestMixPicksByWeight(t *testing.T) {
	m, err := newMix([]Op{
		{Name: "read", Weight: 90, Do: getOp("", "").Do},
		{Name: "write", Weight: 9, Do: getOp("", "").Do},
		{Name: "delete", Weight: 1, Do: getOp("", "").Do},
	})
	if err != nil {
		t.Fatal(err)
	}
	count := func(seed uint64) ([3]int, []int) {
		var n [3]int
		var first []int
		r := newRand(seed, 0)
		for i := range 100_000 {
			k := m.pick(r)
			n[k]++
			if i < 20 {
				first = append(first, k)
			}
		}
		return n, first
	}
	n, first := count(7)
	for i, want := range []int{90_000, 9_000, 1_000} {
		if d := float64(n[i]-want) / float64(want); d < -0.1 || d > 0.1 {
			t.Errorf("op %d picked %d times of 100000, want about %d", i, n[i], want)
		}
	}
	_, again := count(7)
	_, other := count(8)
	if !equalInts(first, again) || equalInts(first, other) {
		t.Errorf("seed 7 gave %v then %v, seed 8 %v: want the same sequence per seed only", first, again, other)
	}
	_ = rand.New(rand.NewPCG(1, 1)) // the source the sessions use
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
