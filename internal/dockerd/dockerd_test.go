//go:build containers

package dockerd_test

import (
	"context"
	"testing"

	"scalelab/internal/dockerd"
)

func TestEnsureAnswers(t *testing.T) {
	d := dockerd.ForTest(t)
	if err := dockerd.Ping(context.Background(), d.Host()); err != nil {
		t.Fatalf("Ping(%q) = %v, want nil", d.Host(), err)
	}
	// A second Ensure finds the same daemon instead of starting another.
	again, err := dockerd.Ensure(context.Background(), dockerd.Options{})
	if err != nil {
		t.Fatalf("Ensure again: %v", err)
	}
	if again.Started() {
		t.Errorf("Ensure again started a daemon (pid %d), want the running one at %s", again.PID(), d.Host())
	}
}

func TestPingNoDaemon(t *testing.T) {
	if err := dockerd.Ping(context.Background(), "unix://"+t.TempDir()+"/none.sock"); err == nil {
		t.Error("Ping(a socket nobody listens on) = nil, want an error")
	}
}
