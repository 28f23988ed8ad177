package breaker

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// clock is a settable clock for the breaker.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestBreaker(o Options) (*Breaker, *clock, *[]string) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	var changes []string
	o.OnChange = func(from, to State) { changes = append(changes, to.String()) }
	b := NewWithOptions(o)
	b.SetClock(c.now)
	return b, c, &changes
}

func TestBreaker(t *testing.T) {
	b, c, changes := newTestBreaker(Options{Threshold: 3, MinOpen: time.Second, Probes: 2, Successes: 3})

	b.Failure()
	b.Failure()
	b.Success() // resets the consecutive count
	b.Failure()
	b.Failure()
	if !b.Allow() {
		t.Fatal("breaker open after 2 consecutive failures")
	}
	b.Failure()
	if b.Allow() {
		t.Fatal("breaker closed after 3 consecutive failures")
	}

	// A call let through before it opened reports success late: the
	// breaker stays open.
	b.Success()
	if b.State() != Open || b.Allow() {
		t.Fatalf("breaker %v after a late success while open, want open and refusing", b.State())
	}

	c.advance(999 * time.Millisecond)
	if b.Allow() {
		t.Fatal("a probe before the minimum open time")
	}
	c.advance(time.Millisecond)
	for i := range 2 {
		if !b.Allow() {
			t.Fatalf("probe %d refused after the open time", i+1)
		}
	}
	if b.Allow() {
		t.Fatal("a third caller got through while 2 probes run")
	}
	b.Success()
	if b.State() != HalfOpen {
		t.Fatalf("breaker %v after 1 good probe, want half-open until 3", b.State())
	}
	if !b.Allow() {
		t.Fatal("no probe in the place the good probe freed")
	}
	b.Failure()
	if b.Allow() || b.State() != Open {
		t.Fatal("a failed probe did not reopen the breaker")
	}

	// It failed again while probing: open twice as long.
	c.advance(time.Second)
	if b.Allow() {
		t.Fatal("a probe 1s after a failed probe, want 2s")
	}
	c.advance(time.Second)
	for i := range 3 {
		if !b.Allow() {
			t.Fatalf("probe %d refused", i+1)
		}
		b.Success()
	}
	if b.State() != Closed || !b.Allow() {
		t.Fatalf("breaker %v after 3 good probes, want closed", b.State())
	}
	want := "open half-open open half-open closed"
	if got := strings.Join(*changes, " "); got != want {
		t.Errorf("transitions = %q, want %q", got, want)
	}
}

// Failures in a row among more successes do not open the breaker: over
// the last Window the failures must be at least as many as the successes.
func TestBreakerWeighsRecentSuccesses(t *testing.T) {
	b, c, _ := newTestBreaker(Options{Threshold: 3, Window: 300 * time.Millisecond})
	for range 10 {
		b.Success()
		c.advance(time.Millisecond)
	}
	for i := range 9 {
		b.Failure()
		if b.State() != Closed {
			t.Fatalf("open after %d failures in a row after 10 successes, want 10", i+1)
		}
	}
	b.Failure()
	if b.State() != Open {
		t.Fatalf("state %v after 10 failures in a row after 10 successes, want open", b.State())
	}

	// Successes older than the window do not count.
	b, c, _ = newTestBreaker(Options{Threshold: 3, Window: 300 * time.Millisecond})
	for range 10 {
		b.Success()
	}
	c.advance(400 * time.Millisecond)
	for range 3 {
		b.Failure()
	}
	if b.State() != Open {
		t.Fatalf("state %v after 3 failures in a row 400ms after the last success, want open", b.State())
	}
}

// A probe that never reports back frees its place after the minimum open
// time, so the breaker cannot stay half-open for ever.
func TestBreakerLostProbe(t *testing.T) {
	b, c, _ := newTestBreaker(Options{Threshold: 1, MinOpen: time.Second, Probes: 1, Successes: 1})
	b.Failure()
	c.advance(time.Second)
	if !b.Allow() {
		t.Fatal("no probe")
	}
	if b.Allow() {
		t.Fatal("a second probe while the first runs")
	}
	c.advance(time.Second)
	if !b.Allow() {
		t.Fatal("no new probe 1s after a probe that never reported")
	}
	b.Success()
	if b.State() != Closed {
		t.Fatalf("state %v, want closed", b.State())
	}
}

// The breaker under simulated load: callers arrive every millisecond,
// each call takes a few milliseconds and reports then (so reports of calls
// let through before a change of state arrive after it), and the
// dependency fails some calls at random after a healthy first second. At
// 1× and 2× load a dependency
// that fails one call in ten, or in four, must not open the breaker at all;
// one that is down for 3 s must open it within 300 ms, keep it open (no
// close while it is down) and close it once, after it is back.
func TestBreakerDoesNotFlap(t *testing.T) {
	tests := []struct {
		name        string
		perMs       int     // calls started per simulated millisecond
		failRate    float64 // outside the outage
		down        bool    // the dependency is down from 8s to 11s
		maxChanges  int
		wantCloses  int
		wantMinOpen int
	}{
		{"1x, 10% failures", 1, 0.10, false, 0, 0, 0},
		{"2x, 25% failures", 2, 0.25, false, 0, 0, 0},
		{"1x, 3s outage", 1, 0.10, true, 12, 1, 1},
		{"2x, 3s outage", 2, 0.25, true, 12, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, c, changes := newTestBreaker(Options{})
			rng := rand.New(rand.NewPCG(1, 2))
			start := c.t
			type call struct {
				due time.Time
				ok  bool
			}
			var inflight []call
			closedWhileDown := 0
			for ms := range 20_000 {
				now := c.t.Sub(start)
				isDown := tt.down && now >= 8*time.Second && now < 11*time.Second
				// Reports due now, in the order they come back.
				rest := inflight[:0]
				for _, cl := range inflight {
					if cl.due.After(c.t) {
						rest = append(rest, cl)
						continue
					}
					if cl.ok {
						b.Success()
					} else {
						b.Failure()
					}
				}
				inflight = rest
				if isDown && b.State() == Closed && ms > 8_300 {
					closedWhileDown++
				}
				for range tt.perMs {
					if !b.Allow() {
						continue
					}
					// The dependency answers when the call reaches it;
					// the answer arrives 2-20ms later (later while down:
					// a timeout).
					latency := time.Duration(2+rng.IntN(18)) * time.Millisecond
					ok := now < time.Second || rng.Float64() >= tt.failRate
					if isDown {
						ok = false
						latency = 50 * time.Millisecond
					}
					inflight = append(inflight, call{due: c.t.Add(latency), ok: ok})
				}
				c.advance(time.Millisecond)
			}
			closes, opens := 0, 0
			for _, ch := range *changes {
				switch ch {
				case "closed":
					closes++
				case "open":
					opens++
				}
			}
			t.Logf("%d state changes (%d opens, %d closes): %s", len(*changes), opens, closes, summary(*changes))
			if len(*changes) > tt.maxChanges {
				t.Errorf("%d state changes, want at most %d", len(*changes), tt.maxChanges)
			}
			if closes != tt.wantCloses {
				t.Errorf("%d closes, want %d", closes, tt.wantCloses)
			}
			if opens < tt.wantMinOpen {
				t.Errorf("%d opens, want at least %d", opens, tt.wantMinOpen)
			}
			if closedWhileDown > 0 {
				t.Errorf("closed during %d ms of the outage, want 0", closedWhileDown)
			}
			if b.State() != Closed {
				t.Errorf("state %v at the end, want closed", b.State())
			}
		})
	}
}

func summary(changes []string) string {
	if len(changes) <= 12 {
		return strings.Join(changes, " ")
	}
	return fmt.Sprintf("%s ... %s", strings.Join(changes[:6], " "), strings.Join(changes[len(changes)-6:], " "))
}

func BenchmarkClosed(b *testing.B) {
	br := New(3, time.Second, nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if br.Allow() {
				br.Success()
			}
		}
	})
}
