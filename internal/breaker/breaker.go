// Package breaker is a consecutive-failure circuit breaker for calls to a
// dependency such as Redis. While it is open, callers skip the dependency
// entirely, so a dead one costs a request nothing: not even a timeout.
//
//	closed ──threshold consecutive failures──▶ open
//	open ──cooldown passed, next caller is the probe──▶ half-open
//	half-open ──probe succeeds──▶ closed;  ──probe fails──▶ open
//
// The closed path is one atomic load, so the breaker adds nothing to the hot
// path while the dependency is healthy. The L2 cache tier and the rate
// limiter each keep one in front of their Redis calls.
package breaker

import (
	"sync"
	"sync/atomic"
	"time"
)

// Breaker is one circuit breaker. It is safe for concurrent use.
type Breaker struct {
	threshold int32
	cooldown  time.Duration
	now       func() time.Time     // the clock; tests replace it
	onChange  func(from, to State) // called with mu held

	state    atomic.Int32 // State
	failures atomic.Int32 // consecutive, while closed

	mu         sync.Mutex
	openedAt   time.Time // when it last opened
	probeStart time.Time // when the half-open probe was let through
}

// State is a breaker's state; its value is what the metrics export.
type State int32

const (
	Closed State = iota
	Open
	HalfOpen
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	default:
		return "half-open"
	}
}

// New returns a closed breaker that opens after threshold consecutive
// failures and probes again after cooldown. onChange, if not nil, is called
// on every change of state, with the breaker's lock held.
func New(threshold int, cooldown time.Duration, onChange func(from, to State)) *Breaker {
	if onChange == nil {
		onChange = func(from, to State) {}
	}
	return &Breaker{threshold: int32(threshold), cooldown: cooldown, now: time.Now, onChange: onChange}
}

// Allow reports whether the caller may use Redis now. In half-open it lets
// exactly one probe through per cooldown; the probe must report success or
// failure.
func (b *Breaker) Allow() bool {
	if State(b.state.Load()) == Closed {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	switch State(b.state.Load()) {
	case Closed:
		return true
	case Open:
		if now.Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.set(HalfOpen)
		b.probeStart = now
		return true
	default: // half-open: one probe at a time, unless it never reported back
		if now.Sub(b.probeStart) < b.cooldown {
			return false
		}
		b.probeStart = now
		return true
	}
}

// Success reports a call that worked.
func (b *Breaker) Success() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	if State(b.state.Load()) == Closed {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures.Store(0)
	b.set(Closed)
}

// Failure reports a call that failed.
func (b *Breaker) Failure() {
	n := b.failures.Add(1)
	st := State(b.state.Load())
	if st == Open || (st == Closed && n < b.threshold) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if State(b.state.Load()) != Open {
		b.openedAt = b.now()
		b.set(Open)
	}
}

// State returns the current state.
func (b *Breaker) State() State { return State(b.state.Load()) }

func (b *Breaker) set(to State) {
	from := State(b.state.Load())
	if from == to {
		return
	}
	b.state.Store(int32(to))
	b.onChange(from, to)
}

// Cooldown returns how long the breaker stays open before it probes.
func (b *Breaker) Cooldown() time.Duration { return b.cooldown }

// SetClock replaces the breaker's clock; tests use it.
func (b *Breaker) SetClock(now func() time.Time) { b.now = now }
