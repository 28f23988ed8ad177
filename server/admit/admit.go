// Package admit is the server's admission control: a bound on the requests
// an instance works on at once, and a short, bounded wait for the rest.
//
// Without it, an instance offered more than it can serve accepts every
// request, and they all share the CPU: each one takes longer, the queue of
// unanswered ones grows, and within seconds every request is slow, the ones
// it could have served included. With it, excess requests are refused at
// once with 503 and Retry-After, which costs next to nothing, so the
// requests that are admitted are served at the speed of an instance at
// capacity (the shape of Netflix's concurrency-limits and of the CoDel
// queues Facebook puts in front of its services, in the simplest form that
// works: a fixed limit and a fixed queue-time budget).
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
	// QueueTimeout is how long a request may wait for a slot; past it the
	// request is shed. Zero sheds at once whenever every slot is taken.
	QueueTimeout time.Duration
	// MaxQueue bounds the requests waiting for a slot; past it a request
	// is shed without waiting. Zero: 4 × MaxInFlight.
	MaxQueue int
	// Registerer receives the gate's metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
}

// Gate admits requests up to its limit. It is safe for concurrent use.
type Gate struct {
	slots    chan struct{}
	waiting  atomic.Int64
	maxQueue int64
	timeout  time.Duration
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
	if o.MaxQueue < 0 {
		return nil, fmt.Errorf("admission: negative queue bound %d", o.MaxQueue)
	}
	if o.MaxQueue == 0 {
		o.MaxQueue = 4 * o.MaxInFlight
	}
	g := &Gate{
		slots:    make(chan struct{}, o.MaxInFlight),
		maxQueue: int64(o.MaxQueue),
		timeout:  o.QueueTimeout,
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
		for _, c := range []prometheus.Collector{g.shed, g.admitted, inflight, queued} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register admission metrics: %w", err)
			}
		}
	}
	return g, nil
}

// Enter asks for a slot. It returns at once when one is free, waits up to
// the queue timeout otherwise, and reports whether the request was
// admitted. An admitted request must call Leave when it is done.
func (g *Gate) Enter(ctx context.Context) bool {
	select {
	case g.slots <- struct{}{}:
		g.admitted.Inc()
		return true
	default:
	}
	if g.timeout <= 0 {
		g.shedFull.Inc()
		return false
	}
	if g.waiting.Add(1) > g.maxQueue {
		g.waiting.Add(-1)
		g.shedFull.Inc()
		return false
	}
	defer g.waiting.Add(-1)
	t := time.NewTimer(g.timeout)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		g.admitted.Inc()
		return true
	case <-t.C:
		g.shedLate.Inc()
		return false
	case <-ctx.Done():
		return false
	}
}

// Leave gives back the slot of an admitted request.
func (g *Gate) Leave() { <-g.slots }

// RetryAfter is what a shed request is told to wait, in whole seconds (the
// smallest Retry-After can say).
func (g *Gate) RetryAfter() time.Duration { return time.Second }
