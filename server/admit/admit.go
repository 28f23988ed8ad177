// Package admit is the server's admission control: a bound on the requests
// an instance works on at once, and a short, bounded wait for the rest.
//
// Without it, an instance offered more than it can serve accepts every
// request, and they all share the CPU: each one takes longer, the queue of
// unanswered ones grows, and within seconds every request is slow, the ones
// it could have served included. With it, excess requests are refused at
// once with 503 and Retry-After, which costs next to nothing, so the
// requests that are admitted are served at the speed of an instance at
// capacity.
//
// A burst is not an overload: a hundred clients missing the same cold key
// at once, or a load balancer's reconnect, fill every slot for a moment,
// and shedding them would turn a blip into errors. So the wait allowed
// depends on whether the queue is standing, as in CoDel and in the
// adaptive queues Facebook puts in front of its services: while requests
// have found a free slot within the last Interval, a waiting request may
// wait up to BurstTimeout; once every arrival for a whole Interval has had
// to queue, the instance is overloaded and the budget drops to
// QueueTimeout, so that the admitted requests wait little and the rest get
// their 503 fast.
//
// Writes may not take every slot. A write waits on the primary, and when
// the primary stalls (paused, failing over, a slow disk) the writes in
// flight hang until their deadline while holding their slots; if they
// could fill the gate, every read behind them would be shed although
// replicas and caches could answer it. So a share of the slots is kept for
// reads (ReadReserve): writes past the rest wait and are shed like any
// request past the limit, and reads still find a slot.
package admit

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a Gate.
type Options struct {
	// MaxInFlight is how many requests may be worked on at once. Required.
	MaxInFlight int
	// QueueTimeout is how long a request may wait for a slot while the
	// queue is standing (overload); past it the request is shed. Zero sheds
	// at once whenever every slot is taken while the queue stands.
	QueueTimeout time.Duration
	// BurstTimeout is how long a request may wait for a slot while the
	// queue is not standing (a burst); DefaultBurstTimeout when zero, and
	// never less than QueueTimeout.
	BurstTimeout time.Duration
	// Interval is how long every arrival must have queued before the queue
	// counts as standing; DefaultInterval when zero.
	Interval time.Duration
	// MaxQueue bounds the requests waiting for a slot; past it a request
	// is shed without waiting. Zero: max(1024, 4 × MaxInFlight).
	MaxQueue int
	// ReadReserve is how many of the MaxInFlight slots writes (EnterWrite)
	// may never take, so that writes hung on a stalled primary cannot shed
	// the reads behind them. Zero: MaxInFlight/4; negative: none (writes
	// may take every slot). At most MaxInFlight − 1.
	ReadReserve int
	// Registerer receives the gate's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
}

// Defaults of Options.
const (
	DefaultBurstTimeout = 100 * time.Millisecond
	DefaultInterval     = 100 * time.Millisecond
)

// Gate admits requests up to its limit. It is safe for concurrent use.
type Gate struct {
	slots chan struct{}
	// writes holds one token per write in flight: a write takes a token,
	// then a slot, so writes never hold more than cap(writes) slots.
	writes   chan struct{}
	waiting  atomic.Int64
	maxQueue int64
	timeout  time.Duration // while the queue stands
	burst    time.Duration // otherwise
	interval time.Duration
	// lastFree is when a request last found a free slot (Unix ns). Slots
	// freed while requests wait go to the waiters, so it stays old for as
	// long as the queue stands.
	lastFree atomic.Int64
	now      func() time.Time
	shed     *prometheus.CounterVec
	// shedFull and shedLate are shed's two series, looked up once.
	shedFull, shedLate prometheus.Counter
	admitted           prometheus.Counter
}

// New returns a Gate for o.
func New(o Options) (*Gate, error) {
	if o.MaxInFlight < 1 {
		return nil, fmt.Errorf("admission: max in-flight %d: want at least 1", o.MaxInFlight)
	}
	if o.QueueTimeout < 0 {
		return nil, fmt.Errorf("admission: negative queue timeout %v", o.QueueTimeout)
	}
	if o.BurstTimeout < 0 {
		return nil, fmt.Errorf("admission: negative burst timeout %v", o.BurstTimeout)
	}
	if o.MaxQueue < 0 {
		return nil, fmt.Errorf("admission: negative queue bound %d", o.MaxQueue)
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = max(1024, 4*o.MaxInFlight)
	}
	switch {
	case o.ReadReserve == 0:
		o.ReadReserve = o.MaxInFlight / 4
	case o.ReadReserve < 0:
		o.ReadReserve = 0
	case o.ReadReserve >= o.MaxInFlight:
		return nil, fmt.Errorf("admission: read reserve %d: want fewer than the %d in-flight slots", o.ReadReserve, o.MaxInFlight)
	}
	if o.BurstTimeout == 0 {
		o.BurstTimeout = DefaultBurstTimeout
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	g := &Gate{
		slots:    make(chan struct{}, o.MaxInFlight),
		writes:   make(chan struct{}, o.MaxInFlight-o.ReadReserve),
		maxQueue: int64(o.MaxQueue),
		timeout:  o.QueueTimeout,
		burst:    max(o.BurstTimeout, o.QueueTimeout),
		interval: o.Interval,
		now:      time.Now,
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_admission_shed_total",
			Help: "Requests refused with 503 because the instance was at its in-flight limit, by reason (queue_full, queue_timeout).",
		}, []string{"reason"}),
		admitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scalelab_admission_admitted_total",
			Help: "Requests admitted by the admission gate.",
		}),
	}
	g.shedFull, g.shedLate = g.shed.WithLabelValues("queue_full"), g.shed.WithLabelValues("queue_timeout")
	if o.Registerer != nil {
		inflight := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scalelab_admission_in_flight",
			Help: "Requests being worked on now.",
		}, func() float64 { return float64(len(g.slots)) })
		queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scalelab_admission_queued",
			Help: "Requests waiting for a slot now.",
		}, func() float64 { return float64(g.waiting.Load()) })
		writes := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "scalelab_admission_writes_in_flight",
			Help: "Writes being worked on now (they may hold all but the slots kept for reads).",
		}, func() float64 { return float64(len(g.writes)) })
		for _, c := range []prometheus.Collector{g.shed, g.admitted, inflight, queued, writes} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register admission metrics: %w", err)
			}
		}
	}
	return g, nil
}

// Enter asks for a slot for a read. It returns at once when one is free,
// waits up to the queue timeout otherwise, and reports whether the request
// was admitted. An admitted request must call Leave when it is done.
func (g *Gate) Enter(ctx context.Context) bool {
	if !g.acquire(ctx, g.slots, true) {
		return false
	}
	g.admitted.Inc()
	return true
}

// EnterWrite is Enter for a write: it may take only the slots not kept for
// reads, waiting for one as Enter waits. An admitted write must call
// LeaveWrite when it is done.
func (g *Gate) EnterWrite(ctx context.Context) bool {
	if !g.acquire(ctx, g.writes, false) {
		return false
	}
	if !g.Enter(ctx) {
		<-g.writes
		return false
	}
	return true
}

// LeaveWrite gives back the slot of an admitted write.
func (g *Gate) LeaveWrite() {
	g.Leave()
	<-g.writes
}

// acquire puts a token into ch: at once when there is room, else after a
// wait bounded by the queue's state (standing or a burst) and MaxQueue.
// markFree records a free slot found at once (the slots' channel only).
func (g *Gate) acquire(ctx context.Context, ch chan struct{}, markFree bool) bool {
	select {
	case ch <- struct{}{}:
		if markFree {
			g.lastFree.Store(g.now().UnixNano())
		}
		return true
	default:
	}
	timeout := g.burst
	if g.Standing() {
		timeout = g.timeout
	}
	if timeout <= 0 {
		g.shedFull.Inc()
		return false
	}
	if g.waiting.Add(1) > g.maxQueue {
		g.waiting.Add(-1)
		g.shedFull.Inc()
		return false
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case ch <- struct{}{}:
		return true
	case <-t.C:
		g.shedLate.Inc()
		return false
	case <-ctx.Done():
		return false
	}
}

// Standing reports whether every arrival for the last interval has had to
// queue: the instance is overloaded, not in a burst.
func (g *Gate) Standing() bool {
	return g.now().UnixNano()-g.lastFree.Load() > int64(g.interval)
}

// Leave gives back the slot of an admitted request.
func (g *Gate) Leave() { <-g.slots }

// RetryAfter is what a shed request is told to wait, in whole seconds (the
// smallest Retry-After can say).
func (g *Gate) RetryAfter() time.Duration { return time.Second }
