// Package breaker is a circuit breaker for calls to a dependency such as
// Redis. While it is open, callers skip the dependency entirely, so a dead
// one costs a request nothing: not even a timeout.
//
//	closed ──Threshold failures in a row, and recent failures──▶ open
//	         at least as many as recent successes
//	open ──open time passed──▶ half-open
//	half-open ──Successes probes succeeded──▶ closed
//	half-open ──a probe failed──▶ open (for twice as long)
//
// What keeps it from flapping under load:
//
//   - Reports of calls let through before the breaker opened, that come
//     back while it is open, change nothing: a slow success that was in
//     flight when the dependency died does not close the breaker again.
//   - Half-open lets at most Probes calls through at a time and closes only
//     after Successes of them succeeded; the others keep taking the
//     fallback meanwhile.
//   - It stays open at least MinOpen, and each time it opens again within
//     4×MinOpen of closing, or a probe fails, twice as long as the last
//     time (at most MaxOpen): a dependency that works for a moment and
//     fails again is given up on for longer, not probed at a fixed rhythm.
//   - In closed, a few failures in a row among many successes (a dependency
//     that fails one call in four under load, where three failures in a
//     row come every 64 calls) do not open it: the failures of the last
//     Window (200–300 ms) must also be at least as many as its successes.
//     A dead dependency gets there within about a Window at any rate of
//     calls, and at once at a low rate, where Threshold failures in a row
//     are all it takes, as before.
//
// The closed path of Allow is one atomic load, and a report in closed a few
// atomic operations, so the breaker adds next to nothing to the hot path
// while the dependency is healthy. The L2 cache tier and the rate limiter
// each keep one in front of their Redis calls.
package breaker

import (
	"sync"
	"sync/atomic"
	"time"
)

// Breaker is one circuit breaker. It is safe for concurrent use.
type Breaker struct {
	o        Options
	now      func() time.Time     // the clock; tests replace it
	onChange func(from, to State) // called with mu held

	state atomic.Int32 // State

	// Closed's counts, kept without the lock: failures in a row, and the
	// reports of the last Window in slots of Window/3 (a ring of
	// slotCount; the current slot and the two before it are summed). A
	// race at a slot's turn loses a count or two, which does not matter.
	consecutive atomic.Int32
	slots       [slotCount]slot

	mu        sync.Mutex
	openedAt  time.Time
	openFor   time.Duration // how long this open spell lasts
	closedAt  time.Time
	inflight  int       // half-open probes not yet reported
	lastProbe time.Time // when the last probe was let through
	successes int       // half-open probes that succeeded
}

// Options configure a Breaker. Zero values take the documented defaults.
type Options struct {
	// Threshold is how many failures in a row (that are also at least as
	// many as the successes of the last Window) open the breaker;
	// default 3.
	Threshold int
	// MinOpen is how long the breaker stays open before it probes;
	// default 1s. MaxOpen bounds the doubling of the open time when it
	// reopens soon after closing; default 8×MinOpen.
	MinOpen time.Duration
	MaxOpen time.Duration
	// Probes is how many calls half-open lets through at a time; default 2.
	// A probe that does not report back within MinOpen frees its place.
	Probes int
	// Successes is how many probes must succeed before the breaker closes;
	// default 3.
	Successes int
	// Window is the span over which closed weighs failures against
	// successes; default 300ms.
	Window time.Duration
	// OnChange, if not nil, is called on every change of state, with the
	// breaker's lock held: it must not call the breaker.
	OnChange func(from, to State)
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

// New returns a closed breaker with the defaults of Options, except that it
// opens after threshold consecutive failures and stays open at least
// minOpen. onChange may be nil.
func New(threshold int, minOpen time.Duration, onChange func(from, to State)) *Breaker {
	return NewWithOptions(Options{Threshold: threshold, MinOpen: minOpen, OnChange: onChange})
}

// NewWithOptions returns a closed breaker.
func NewWithOptions(o Options) *Breaker {
	if o.Threshold <= 0 {
		o.Threshold = 3
	}
	if o.MinOpen <= 0 {
		o.MinOpen = time.Second
	}
	if o.MaxOpen < o.MinOpen {
		o.MaxOpen = 8 * o.MinOpen
	}
	if o.Probes <= 0 {
		o.Probes = 2
	}
	if o.Successes <= 0 {
		o.Successes = 3
	}
	if o.Window <= 0 {
		o.Window = 300 * time.Millisecond
	}
	if o.OnChange == nil {
		o.OnChange = func(from, to State) {}
	}
	return &Breaker{o: o, now: time.Now, onChange: o.OnChange, openFor: o.MinOpen}
}

// Allow reports whether the caller may use the dependency now. A caller
// that was allowed must report Success or Failure.
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
		if now.Sub(b.openedAt) < b.openFor {
			return false
		}
		b.set(HalfOpen)
		b.inflight, b.successes = 0, 0
	}
	// Half-open: a few probes at a time. Probes that never reported back
	// (a caller that forgot, or that is stuck) free their places after
	// MinOpen.
	if b.inflight >= b.o.Probes {
		if now.Sub(b.lastProbe) < b.o.MinOpen {
			return false
		}
		b.inflight = 0
	}
	b.inflight++
	b.lastProbe = now
	return true
}

// Success reports a call that worked.
func (b *Breaker) Success() {
	switch State(b.state.Load()) {
	case Closed:
		if b.consecutive.Load() != 0 {
			b.consecutive.Store(0)
		}
		b.count(false)
		return
	case Open:
		return // let through before it opened: says nothing now
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if State(b.state.Load()) != HalfOpen {
		return
	}
	b.inflight = max(b.inflight-1, 0)
	b.successes++
	if b.successes >= b.o.Successes {
		b.consecutive.Store(0)
		b.closedAt = b.now()
		b.set(Closed)
	}
}

// Failure reports a call that failed.
func (b *Breaker) Failure() {
	switch State(b.state.Load()) {
	case Closed:
		ok, failed := b.count(true)
		if n := b.consecutive.Add(1); n < int32(b.o.Threshold) || failed < ok {
			return
		}
	case Open:
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	switch State(b.state.Load()) {
	case Open:
		return
	case Closed:
		// Opening again soon after closing: the dependency is not back
		// for good; wait longer before the next probes.
		if !b.closedAt.IsZero() && now.Sub(b.closedAt) < 4*b.o.MinOpen {
			b.openFor = min(2*b.openFor, b.o.MaxOpen)
		} else {
			b.openFor = b.o.MinOpen
		}
	case HalfOpen:
		b.openFor = min(2*b.openFor, b.o.MaxOpen)
	}
	b.openedAt = now
	b.set(Open)
}

const slotCount = 4

type slot struct {
	id         atomic.Int64 // the slot's number since the epoch; 0 unused
	ok, failed atomic.Int32
}

// count adds a report to the current slot and returns the successes and
// failures of the last Window.
func (b *Breaker) count(failure bool) (ok, failed int32) {
	length := int64(b.o.Window / 3)
	cur := b.now().UnixNano()/length + 1
	s := &b.slots[cur%slotCount]
	if old := s.id.Load(); old != cur && s.id.CompareAndSwap(old, cur) {
		s.ok.Store(0)
		s.failed.Store(0)
	}
	if failure {
		s.failed.Add(1)
	} else {
		s.ok.Add(1)
	}
	for i := range int64(3) {
		s := &b.slots[(cur-i)%slotCount]
		if s.id.Load() == cur-i {
			ok += s.ok.Load()
			failed += s.failed.Load()
		}
	}
	return ok, failed
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

// Cooldown returns how long the breaker stays open at least before it
// probes (MinOpen).
func (b *Breaker) Cooldown() time.Duration { return b.o.MinOpen }

// SetClock replaces the breaker's clock; tests use it.
func (b *Breaker) SetClock(now func() time.Time) { b.now = now }
