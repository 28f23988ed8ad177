package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
)

// ErrBusy is returned at once when the hasher's wait queue is full: the
// caller should answer 503 with Retry-After rather than wait behind work
// that would take seconds.
var ErrBusy = errors.New("password hashing is at capacity")

// DefaultHashQueue is how many hashes may wait for a slot by default. At
// ~15 hashes/s on two cores, 16 waiting is about a second of work.
const DefaultHashQueue = 16

// Hasher hashes and verifies passwords with a bound on how many run at
// once and how many may wait. Each argon2id hash holds Params.Memory of RAM
// and a core for tens of milliseconds; a burst of sign-ups must neither
// take every core and gigabytes of memory from the rest of the server nor
// build a queue that makes every login wait seconds. Past the queue the
// hasher refuses at once (ErrBusy).
//
// New hashes (sign-ups, password changes) may hold at most half the slots
// (at least one), so a flood of sign-ups always leaves room to verify
// logins.
type Hasher struct {
	params  Params
	slots   chan struct{}
	hashing chan struct{} // the part of slots new hashes may hold
	queue   int64
	waiting atomic.Int64
}

// HasherOption configures a Hasher.
type HasherOption func(*Hasher)

// WithQueue bounds how many calls may wait for a slot (DefaultHashQueue
// without it); 0 means none wait: a call that finds every slot busy gets
// ErrBusy.
func WithQueue(n int) HasherOption {
	return func(h *Hasher) { h.queue = int64(max(0, n)) }
}

// NewHasher returns a Hasher using p, running at most concurrency hashes at
// once (GOMAXPROCS when concurrency < 1).
func NewHasher(p Params, concurrency int, opts ...HasherOption) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if concurrency < 1 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	h := &Hasher{params: p, queue: DefaultHashQueue,
		slots: make(chan struct{}, concurrency), hashing: make(chan struct{}, max(1, concurrency/2))}
	for _, o := range opts {
		o(h)
	}
	return h, nil
}

// Params returns the parameters new hashes use.
func (h *Hasher) Params() Params { return h.params }

// acquire takes a token of sem, waiting in the bounded queue if none is
// free.
func (h *Hasher) acquire(ctx context.Context, sem chan struct{}) error {
	select {
	case sem <- struct{}{}:
		return nil
	default:
	}
	if h.waiting.Add(1) > h.queue {
		h.waiting.Add(-1)
		return ErrBusy
	}
	defer h.waiting.Add(-1)
	select {
	case sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a password hashing slot: %w", ctx.Err())
	}
}

// Hash returns the PHC string of password.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx, h.hashing); err != nil {
		return "", err
	}
	defer func() { <-h.hashing }()
	if err := h.acquire(ctx, h.slots); err != nil {
		return "", err
	}
	defer func() { <-h.slots }()
	return Hash(password, h.params)
}

// Verify reports whether password matches hash.
func (h *Hasher) Verify(ctx context.Context, password, hash string) (bool, error) {
	if err := h.acquire(ctx, h.slots); err != nil {
		return false, err
	}
	defer func() { <-h.slots }()
	return Verify(password, hash)
}
