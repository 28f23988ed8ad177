package ratelimit

import (
	"sync"
	"sync/atomic"
	"time"
)

// breaker is a consecutive-failure circuit breaker in front of Redis. While
// it is open, callers skip Redis entirely, so a dead Redis costs a request
// nothing: not even the short timeout.
//
//	closed ──threshold consecutive failures──▶ open
//	open ──cooldown passed, next caller is the probe──▶ half-open
//	half-open ──probe succeeds──▶ closed;  ──probe fails──▶ open
//
// The closed path is one atomic load, so the breaker adds nothing to the
// hot path while Redis is healthy. (server/cache keeps its own copy of this
// type; neither package should import the other for 100 lines.)
type breaker struct {
	threshold int32
	cooldown  time.Duration
	now       func() time.Time
	onChange  func(from, to breakerState) // called with mu held

	state    atomic.Int32 // breakerState
	failures atomic.Int32 // consecutive, while closed

	mu         sync.Mutex
	openedAt   time.Time // when it last opened
	probeStart time.Time // when the half-open probe was let through
}

type breakerState int32

const (
	breakerClosed breakerState = iota
	breakerOpen
	breakerHalfOpen
)

func (s breakerState) String() string {
	switch s {
	case breakerClosed:
		return "closed"
	case breakerOpen:
		return "open"
	default:
		return "half-open"
	}
}

func newBreaker(threshold int, cooldown time.Duration, onChange func(from, to breakerState)) *breaker {
	if onChange == nil {
		onChange = func(from, to breakerState) {}
	}
	return &breaker{threshold: int32(threshold), cooldown: cooldown, now: time.Now, onChange: onChange}
}

// allow reports whether the caller may use Redis now. In half-open it lets
// exactly one probe through per cooldown; the probe must report success or
// failure.
func (b *breaker) allow() bool {
	if breakerState(b.state.Load()) == breakerClosed {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	switch breakerState(b.state.Load()) {
	case breakerClosed:
		return true
	case breakerOpen:
		if now.Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.set(breakerHalfOpen)
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

func (b *breaker) success() {
	if b.failures.Load() != 0 {
		b.failures.Store(0)
	}
	if breakerState(b.state.Load()) == breakerClosed {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures.Store(0)
	b.set(breakerClosed)
}

func (b *breaker) failure() {
	n := b.failures.Add(1)
	st := breakerState(b.state.Load())
	if st == breakerOpen || (st == breakerClosed && n < b.threshold) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if breakerState(b.state.Load()) != breakerOpen {
		b.openedAt = b.now()
		b.set(breakerOpen)
	}
}

func (b *breaker) current() breakerState { return breakerState(b.state.Load()) }

func (b *breaker) set(to breakerState) {
	from := breakerState(b.state.Load())
	if from == to {
		return
	}
	b.state.Store(int32(to))
	b.onChange(from, to)
}
