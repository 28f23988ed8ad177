package regress

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"
)

// plantedCost is the CPU time to add to each request so that a closed
// model's throughput drops by the fraction f. With the CPUs saturated, the
// throughput is T = P/c, where P is the CPU the process gets and c the
// CPU time it spends per request (load generator, loopback TCP, net/http
// and handler together). Adding d per request gives P/(c+d); asking for
// (1−f)·T gives d = c·f/(1−f). c is measured (CPU time of the process over
// requests, from getrusage) rather than derived from the throughput, so
// that it does not depend on how much of the machine other work took.
// The bare handler is not slowed down, so the ratio drops by f as well.
func plantedCost(cpuPerRequest time.Duration, f float64) time.Duration {
	if f <= 0 || f >= 1 {
		return 0
	}
	return time.Duration(float64(cpuPerRequest) * f / (1 - f))
}

// calibrationPairs is how many clean and planted turns plant compares, a
// second a pair. One pair is noisy: in ten pairs, a burn of 6.7 µs added
// from 11% to 64% to the CPU time per request (median 35%).
const calibrationPairs = 6

// plant plants a slowdown that cuts the server's throughput by the
// fraction c.Plant, and says what it did.
//
// plantedCost predicts the CPU time to add per request, but a slower
// handler costs more than its own CPU: a burn predicted to add 25% to the
// CPU time per request added from 26% to 58% in trials (35% typically),
// probably because the generator's and the server's connection goroutines
// then find their reads not ready more often, and park and wake more. So
// the prediction is only the first guess: a few short turns of the server,
// alternately clean and with the guess planted, measure what the guess
// really adds to the CPU time per request, and the burn is scaled to what
// c.Plant needs, assuming the added cost grows in proportion to the burn
// (nearly so: in trials it grew as 4% + 7.5% per 1000 iterations, with
// the loop at 1.67 ns).
//
// The cut is still approximate: what a burn costs depends on how busy the
// machine is, and it can change between calibration and rounds. Against
// the committed baseline, runs planted to lose 20% lost from 16% to 28%.
func (l *lab) plant(ctx context.Context, c Config, cleanCPU time.Duration, w io.Writer) error {
	b := newBurner()
	guess := b.iterationsFor(plantedCost(cleanCPU, c.Plant))
	p := &planted{burner: b, iterations: guess}
	var ratios []float64
	for k := range calibrationPairs {
		var clean, planted segment
		for j := range 2 {
			on := (j == 0) == (k%2 == 1)
			if on {
				l.planted.Store(p)
			} else {
				l.planted.Store(nil)
			}
			seg, err := l.drive(ctx, l.server.url, c.VUs, c.Round, uint64(100+2*k+j))
			if err != nil {
				return err
			}
			if on {
				planted = seg
			} else {
				clean = seg
			}
		}
		ratios = append(ratios, safeDiv(float64(planted.cpuPerRequest()), float64(clean.cpuPerRequest())))
	}
	grew := summarize(ratios).median - 1
	p = &planted{burner: b, iterations: scaleBurn(guess, grew, c.Plant)}
	l.planted.Store(p)
	fmt.Fprintf(w, "  PLANTED SLOWDOWN: burning %d iterations (%.1f µs at %.2f ns each) per request raised the server's CPU per request by %.1f%%\n",
		guess, float64(guess)*b.perIteration/1000, b.perIteration, 100*grew)
	fmt.Fprintf(w, "    (median of %d turns against clean ones); %.1f%% is needed to cut throughput by %.0f%%, so the server now burns %d iterations per request\n",
		calibrationPairs, 100*c.Plant/(1-c.Plant), 100*c.Plant, p.iterations)
	return nil
}

// scaleBurn returns the iterations that make the server's CPU time per
// request grow by f/(1−f), which cuts its throughput by f, given that
// guess iterations made it grow by grew. It keeps the guess when the
// measurement is useless (no growth measured).
func scaleBurn(guess int, grew, f float64) int {
	if grew <= 0 || f <= 0 || f >= 1 {
		return guess
	}
	return int(math.Round(float64(guess) * f / (1 - f) / grew))
}

// burner spends CPU in a busy loop: a fixed amount of work, like a real
// regression, not a sleep (throughput here is bound by CPU, and a sleeping
// handler costs none) nor a deadline on the wall clock (which would burn
// less CPU whenever other work preempts the loop).
type burner struct {
	perIteration float64 // nanoseconds
	sink         atomic.Uint64
}

// newBurner times the loop: the fastest of several short bursts, the one
// least disturbed by other work. It only makes plant's first guess.
func newBurner() *burner {
	b := &burner{}
	const n = 1 << 14
	best := time.Duration(math.MaxInt64)
	for range 50 {
		t0 := time.Now()
		b.burn(n)
		best = min(best, time.Since(t0))
	}
	b.perIteration = float64(best) / n
	return b
}

func (b *burner) iterationsFor(d time.Duration) int {
	if b.perIteration <= 0 {
		return 0
	}
	return int(float64(d) / b.perIteration)
}

// burn runs n rounds of xorshift64. The state never becomes zero, but the
// compiler cannot know that, so the loop cannot be optimised away.
func (b *burner) burn(n int) {
	x := uint64(n) | 1
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	if x == 0 {
		b.sink.Add(1)
	}
}

// planted is a slowdown planted in the server: the lab's middleware burns
// iterations before the server handles each request.
type planted struct {
	burner     *burner
	iterations int
}
