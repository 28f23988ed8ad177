package auth

import (
	"context"
	"fmt"
	"runtime"
)

// Hasher hashes and verifies passwords with a bound on how many run at
// once. Each argon2id hash holds Params.Memory of RAM and a core for tens of
// milliseconds; a burst of sign-ups must queue here rather than take every
// core and gigabytes of memory from the rest of the server.
type Hasher struct {
	params Params
	slots  chan struct{}
}

// NewHasher returns a Hasher using p, running at most concurrency hashes at
// once (GOMAXPROCS when concurrency < 1).
func NewHasher(p Params, concurrency int) (*Hasher, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if concurrency < 1 {
		concurrency = runtime.GOMAXPROCS(0)
	}
	return &Hasher{params: p, slots: make(chan struct{}, concurrency)}, nil
}

// Params returns the parameters new hashes use.
func (h *Hasher) Params() Params { return h.params }

func (h *Hasher) acquire(ctx context.Context) error {
	select {
	case h.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for a password hashing slot: %w", ctx.Err())
	}
}

func (h *Hasher) release() { <-h.slots }

// Hash returns the PHC string of password.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	return Hash(password, h.params)
}

// Verify reports whether password matches hash.
func (h *Hasher) Verify(ctx context.Context, password, hash string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	return Verify(password, hash)
}
