package admit

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// clock is a settable clock for a gate's notion of a standing queue.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

func mustGate(t *testing.T, o Options) (*Gate, *clock) {
	t.Helper()
	g, err := New(o)
	if err != nil {
		t.Fatalf("New(%+v): %v", o, err)
	}
	c := &clock{}
	c.t.Store(time.Now().UnixNano())
	g.now = c.now
	return g, c
}

func TestGateAdmitsUpToTheLimitThenShedsAStandingQueue(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	g, c := mustGate(t, Options{MaxInFlight: 2, Registerer: reg})
	ctx := context.Background()
	for i := range 2 {
		if !g.Enter(ctx) {
			t.Fatalf("Enter #%d = false with a free slot", i+1)
		}
	}
	c.advance(2 * DefaultInterval) // no slot was free since: overload
	if !g.Standing() {
		t.Fatal("Standing() = false after an interval with every slot taken")
	}
	start := time.Now()
	if g.Enter(ctx) {
		t.Fatal("Enter with every slot taken, the queue standing and no queue time = true, want false")
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("shedding took %v, want no wait", took)
	}
	g.Leave()
	if !g.Enter(ctx) {
		t.Fatal("Enter after a Leave = false, want true")
	}
	if g.Standing() {
		t.Error("Standing() = true right after a request found a free slot")
	}
	if got := value(t, g.shedFull); got != 1 {
		t.Errorf("shed (queue_full) = %v, want 1", got)
	}
	if got := value(t, g.admitted); got != 3 {
		t.Errorf("admitted = %v, want 3", got)
	}
}

// A burst (slots were free a moment ago) may wait far longer than the
// queue timeout: a hundred readers of one cold key are not an overload.
func TestGateLetsABurstWait(t *testing.T) {
	g, _ := mustGate(t, Options{MaxInFlight: 1, QueueTimeout: time.Millisecond, BurstTimeout: 10 * time.Second})
	ctx := context.Background()
	g.Enter(ctx)
	admitted := make(chan bool)
	go func() { admitted <- g.Enter(ctx) }()
	time.Sleep(50 * time.Millisecond) // 50 queue timeouts
	g.Leave()
	if !<-admitted {
		t.Fatal("a request of a burst was shed after the queue timeout; want it to wait for the slot")
	}
}

func TestGateShedsAfterTheQueueTimeoutWhenStanding(t *testing.T) {
	g, c := mustGate(t, Options{MaxInFlight: 1, QueueTimeout: 20 * time.Millisecond})
	ctx := context.Background()
	g.Enter(ctx)
	c.advance(2 * DefaultInterval)
	start := time.Now()
	if g.Enter(ctx) {
		t.Fatal("Enter = true while the only slot stayed taken")
	}
	if took := time.Since(start); took < 20*time.Millisecond || took > DefaultBurstTimeout/2 {
		t.Errorf("shed after %v, want about the 20ms queue timeout", took)
	}
	if got := value(t, g.shedLate); got != 1 {
		t.Errorf("shed (queue_timeout) = %v, want 1", got)
	}
}

func TestGateBoundsTheQueue(t *testing.T) {
	g, _ := mustGate(t, Options{MaxInFlight: 1, QueueTimeout: time.Minute, MaxQueue: 1})
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
	for _, o := range []Options{{}, {MaxInFlight: 1, QueueTimeout: -1}, {MaxInFlight: 1, MaxQueue: -1}, {MaxInFlight: 1, BurstTimeout: -1}} {
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

// Writes hung on a stalled primary may hold every slot but the read
// reserve: the next write is shed, a read still gets in, and a write that
// leaves makes room for another.
func TestWritesLeaveTheReadReserve(t *testing.T) {
	g, _ := mustGate(t, Options{MaxInFlight: 8, QueueTimeout: time.Millisecond, BurstTimeout: time.Millisecond})
	ctx := context.Background()
	for i := range 6 { // 8 − 8/4
		if !g.EnterWrite(ctx) {
			t.Fatalf("EnterWrite #%d = false with %d write slots free", i+1, 6-i)
		}
	}
	if g.EnterWrite(ctx) {
		t.Fatal("EnterWrite past the writes' share = true, want it shed")
	}
	for i := range 2 {
		if !g.Enter(ctx) {
			t.Fatalf("read #%d = false while the reserve is free", i+1)
		}
	}
	if g.Enter(ctx) {
		t.Fatal("a read with every slot taken = true, want it shed")
	}
	g.Leave()
	g.LeaveWrite()
	if !g.EnterWrite(ctx) {
		t.Fatal("EnterWrite after a write left = false, want true")
	}
	if got, writes := len(g.slots), len(g.writes); got != 7 || writes != 6 {
		t.Errorf("slots taken = %d, by writes %d; want 7 and 6", got, writes)
	}
}

// The reserve's bounds: the default is a quarter of the slots (none for
// one slot, so one slow write still sheds everything as before), a
// negative reserve lets writes take every slot, and a reserve of every
// slot is refused.
func TestReadReserveOptions(t *testing.T) {
	for _, tc := range []struct {
		o          Options
		writeSlots int
	}{
		{Options{MaxInFlight: 1}, 1},
		{Options{MaxInFlight: 16}, 12},
		{Options{MaxInFlight: 16, ReadReserve: 2}, 14},
		{Options{MaxInFlight: 16, ReadReserve: -1}, 16},
	} {
		g, _ := mustGate(t, tc.o)
		if got := cap(g.writes); got != tc.writeSlots {
			t.Errorf("%+v: writes may take %d slots, want %d", tc.o, got, tc.writeSlots)
		}
	}
	if _, err := New(Options{MaxInFlight: 4, ReadReserve: 4}); err == nil {
		t.Error("New with a read reserve of every slot: no error")
	}
}
