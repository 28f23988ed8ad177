package auth

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

var cheap = Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// TestHasherQueueBounded: with every slot held and the queue full, the
// next call fails at once with ErrBusy instead of waiting (issue 9,
// finding 3: the queue was unbounded).
func TestHasherQueueBounded(t *testing.T) {
	h, err := NewHasher(cheap, 1, WithQueue(2))
	if err != nil {
		t.Fatal(err)
	}
	h.slots <- struct{}{} // hold the only slot
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 { // fill the queue
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.Verify(ctx, "password", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5")
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.waiting.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	_, err = h.Verify(context.Background(), "password", "x")
	if !errors.Is(err, ErrBusy) {
		t.Errorf("Verify with a full queue = %v, want ErrBusy", err)
	}
	if _, err := h.Hash(context.Background(), "password"); !errors.Is(err, ErrBusy) {
		t.Errorf("Hash with a full queue = %v, want ErrBusy", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusal took %v, want at once", d)
	}
	cancel()
	wg.Wait()
	<-h.slots
	if _, err := h.Hash(context.Background(), "password"); err != nil {
		t.Errorf("Hash once free = %v", err)
	}
}

// TestHasherReservesVerifySlots: new hashes hold at most half the slots,
// so a login can always be verified while sign-ups hash.
func TestHasherReservesVerifySlots(t *testing.T) {
	h, err := NewHasher(cheap, 2, WithQueue(0))
	if err != nil {
		t.Fatal(err)
	}
	h.hashing <- struct{}{} // a sign-up holds the one hashing token
	h.slots <- struct{}{}   // and its slot
	if _, err := h.Hash(context.Background(), "password"); !errors.Is(err, ErrBusy) {
		t.Errorf("second concurrent Hash = %v, want ErrBusy (no queue)", err)
	}
	hash, err := Hash("password", cheap)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := h.Verify(context.Background(), "password", hash); err != nil || !ok {
		t.Errorf("Verify beside a running Hash = %v, %v, want true", ok, err)
	}
}
