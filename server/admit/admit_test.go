package admit

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func mustGate(t *testing.T, o Options) *Gate {
	t.Helper()
	g, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	return g
}

func TestGateAdmitsUpToTheLimitThenSheds(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	g := mustGate(t, Options{MaxInFlight: 2, Registerer: reg})
	ctx := context.Background()
	for i := range 2 {
		if !g.Enter(ctx) {
			t.Fatalf("Enter #%d = false with a free slot", i+1)
		}
	}
	if g.Enter(ctx) {
		t.Fatal("Enter with every slot taken and no queue time = true, want false")
	}
	g.Leave()
	if !g.Enter(ctx) {
		t.Fatal("Enter after a Leave = false, want true")
	}
	if got := value(t, g.shedFull); got != 1 {
		t.Errorf("shed (queue_full) = %v, want 1", got)
	}
	if got := value(t, g.admitted); got != 3 {
		t.Errorf("admitted = %v, want 3", got)
	}
}

func TestGateWaitsForASlotWithinTheQueueTimeout(t *testing.T) {
	g := mustGate(t, Options{MaxInFlight: 1, QueueTimeout: 5 * time.Second})
	ctx := context.Background()
	g.Enter(ctx)
	admitted := make(chan bool)
	go func() { admitted <- g.Enter(ctx) }()
	// The waiter is queued (or about to be) when the slot is freed: it
	// must get it rather than time out.
	g.Leave()
	if !<-admitted {
		t.Fatal("a waiter did not get the slot freed while it waited")
	}
}

func TestGateShedsAfterTheQueueTimeout(t *testing.T) {
	g := mustGate(t, Options{MaxInFlight: 1, QueueTimeout: 20 * time.Millisecond})
	ctx := context.Background()
	g.Enter(ctx)
	if g.Enter(ctx) {
		t.Fatal("Enter = true while the only slot stayed taken")
	}
	if got := value(t, g.shedLate); got != 1 {
		t.Errorf("shed (queue_timeout) = %v, want 1", got)
	}
}

func TestGateBoundsTheQueue(t *testing.T) {
	g := mustGate(t, Options{MaxInFlight: 1, QueueTimeout: time.Minute, MaxQueue: 1})
	ctx, cancel := context.WithCancel(context.Background())
	g.Enter(ctx)
	waiter := make(chan bool)
	go func() { waiter <- g.Enter(ctx) }()
	for g.waiting.Load() != 1 {
		time.Sleep(time.Millisecond)
	}
	if g.Enter(ctx) {
		t.Fatal("Enter with the queue full = true, want false at once")
	}
	cancel()
	if <-waiter {
		t.Error("a waiter whose context ended was admitted")
	}
}

func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{{}, {MaxInFlight: 1, QueueTimeout: -1}, {MaxInFlight: 1, MaxQueue: -1}} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
}

func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
