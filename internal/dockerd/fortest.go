package dockerd

import (
	"context"
	"errors"
	"testing"
	"time"
)

// ForTest returns a daemon for a container test: one that answers, or one
// it starts and stops when the test ends. The test is skipped, with the
// reason, only when no daemon answers and none can be started (not root,
// no dockerd); any other failure fails it.
func ForTest(tb testing.TB) *Daemon {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	d, err := Ensure(ctx, Options{})
	if errors.Is(err, ErrUnavailable) {
		tb.Skipf("container test skipped: %v", err)
	}
	if err != nil {
		tb.Fatalf("docker daemon: %v", err)
	}
	tb.Cleanup(func() {
		if err := d.Stop(context.Background()); err != nil {
			tb.Errorf("stop dockerd: %v", err)
		}
	})
	return d
}
