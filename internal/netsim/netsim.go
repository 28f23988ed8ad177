// Package netsim is the lab's network simulation: a Toxiproxy server
// (github.com/Shopify/toxiproxy/v2) run as its own process by `scalelab
// proxy`, so that the CPU its proxies burn can be read from /proc apart
// from the load generator's and the system's.
//
// Toxiproxy's own latency toxic counts in whole milliseconds, and an in-DC
// hop costs a quarter of one; LatencyToxic counts in microseconds.
package netsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// LatencyToxicType is the name LatencyToxic is registered under.
const LatencyToxicType = "latency_us"

// LatencyToxic delays each chunk of data by Latency ± Jitter microseconds,
// measured from when the chunk arrived at the toxic (as Toxiproxy's
// latency toxic does in milliseconds). Chunks keep their order: one that
// drew a shorter delay than the chunk before it leaves right after it.
type LatencyToxic struct {
	Latency int64 `json:"latency_us"`
	Jitter  int64 `json:"jitter_us"`

	// chunks counts the chunks that have crossed: every connection on the
	// link runs the same toxic, so it is the link's count in its
	// direction. Toxiproxy's API shows it among the toxic's attributes
	// ("chunks"), and the runner reads it to count how often a request
	// crossed each link.
	chunks atomic.Int64
	// late sums, in nanoseconds, how much later than due each chunk left
	// the toxic (negative when early): what the machine's scheduling added
	// to the link's latency. Shown as "late_us".
	late atomic.Int64
	// early is how long before a chunk is due the toxic sets its clock,
	// in nanoseconds: its estimate of the median of how late the clock
	// wakes (see wait), shared by the link's connections.
	early atomic.Int64
}

// MarshalJSON is the toxic's attributes as Toxiproxy's API shows them,
// with the chunks counted so far and their lateness summed, in µs.
func (t *LatencyToxic) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Latency int64 `json:"latency_us"`
		Jitter  int64 `json:"jitter_us"`
		Chunks  int64 `json:"chunks"`
		Late    int64 `json:"late_us"`
	}{t.Latency, t.Jitter, t.chunks.Load(), t.late.Load() / 1e3})
}

func (t *LatencyToxic) delay() time.Duration {
	d := t.Latency
	if t.Jitter > 0 {
		d += rand.Int64N(2*t.Jitter+1) - t.Jitter
	}
	return time.Duration(max(d, 0)) * time.Microsecond
}

// coarseMargin is how long before a chunk is due the toxic stops waiting
// on a Go timer (which an interrupt can cut short, and which may fire up
// to a millisecond late) and waits on its clock (precise, and not
// interruptible) for the rest.
const coarseMargin = 2 * time.Millisecond

// Pipe is Toxiproxy's toxic contract: move chunks from Input to Output
// until the stream closes or the toxic is interrupted.
func (t *LatencyToxic) Pipe(stub *toxics.ToxicStub) {
	clk, _ := newClock() // without a timerfd, Go's timers: coarser, still correct
	defer clk.close()
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for {
		select {
		case <-stub.Interrupt:
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			t.chunks.Add(1)
			due := c.Timestamp.Add(t.delay())
			if wait := time.Until(due) - coarseMargin; wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-stub.Interrupt:
					stub.Output <- c // never drop data
					return
				}
			}
			t.wait(clk, due)
			t.late.Add(int64(time.Since(due)))
			// The next toxic on the link (a slow fault's) counts its delay
			// from when this one meant the chunk to leave, so that delays
			// add up rather than overlap.
			c.Timestamp = due
			stub.Output <- c
		}
	}
}

// The clock wakes late: a timerfd's expiry still has to wake the
// runtime's poller and then schedule the waiting goroutine, which on
// these machines takes a median 70 µs and a mean 110 µs
// (BenchmarkSleep250us), so a link of 0.25 ms each way cost a round trip
// of about 0.67 ms instead of 0.5. The toxic learns how late its clock
// wakes and sets it that much early. The estimate moves by earlyStep
// towards each wait's lateness (a running median, which a stall of the
// machine moves by one step only), and never exceeds maxEarly nor half of
// the chunk's own delay: a chunk may leave that much early when the clock
// happens to wake on time, and the median chunk leaves when due.
const (
	earlyStep = 2 * time.Microsecond
	maxEarly  = 250 * time.Microsecond
)

// wait sleeps on clk until due, aiming early by what the clock has been
// waking late.
func (t *LatencyToxic) wait(clk *clock, due time.Time) {
	left := time.Until(due)
	if left <= 0 {
		return // due already (it queued behind earlier chunks)
	}
	early := min(time.Duration(t.early.Load()), maxEarly, time.Duration(t.Latency)*time.Microsecond/2)
	target := due.Add(-early)
	clk.sleepUntil(target)
	if left < early {
		return // no wait to learn from
	}
	if time.Since(target) > early {
		early += earlyStep
	} else {
		early -= earlyStep
	}
	// Connections on the link update it without coordination: a lost
	// step is harmless to an estimate.
	t.early.Store(int64(min(max(early, 0), maxEarly)))
}

// GetBufferSize is how many chunks may wait in the toxic, as Toxiproxy's
// latency toxic allows.
func (t *LatencyToxic) GetBufferSize() int { return 1024 }

// HoldToxicType is the name HoldToxic is registered under.
const HoldToxicType = "hold"

// HoldToxic is a partition: no data crosses while it is on, none is lost,
// and what was held flows once it is removed. The proxy stops reading, so
// the sender's socket buffers fill and it blocks, as TCP does when the
// network between two hosts fails. (Toxiproxy's timeout toxic drops the
// data instead, which no TCP stream survives intact.)
type HoldToxic struct{}

// Pipe leaves the input unread until the toxic is removed.
func (HoldToxic) Pipe(stub *toxics.ToxicStub) { <-stub.Interrupt }

// IdleTimeoutToxicType is the name IdleTimeoutToxic is registered under.
const IdleTimeoutToxicType = "idle_timeout"

// IdleTimeoutToxic closes a connection once no data has crossed it in the
// toxic's direction for Timeout milliseconds: the idle timeout of a NAT, a
// firewall or a load balancer on the path. (It sees one direction; a
// request/response connection falls idle in both at once.)
type IdleTimeoutToxic struct {
	Timeout int64 `json:"timeout_ms"`
}

// Pipe passes chunks through and closes the stream (and so the
// connection: Toxiproxy closes both ends) after Timeout without one.
func (t *IdleTimeoutToxic) Pipe(stub *toxics.ToxicStub) {
	idle := time.Duration(t.Timeout) * time.Millisecond
	if idle <= 0 {
		new(toxics.NoopToxic).Pipe(stub)
		return
	}
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		select {
		case <-stub.Interrupt:
			return
		case <-timer.C:
			stub.Close()
			return
		case c := <-stub.Input:
			if c == nil {
				stub.Close()
				return
			}
			stub.Output <- c
			timer.Reset(idle)
		}
	}
}

// Serve runs a Toxiproxy API server on addr (a loopback host:port) until
// ctx ends. The runner creates proxies and toxics through its HTTP API
// (package github.com/Shopify/toxiproxy/v2/client).
func Serve(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxy: listen %s: %w", addr, err)
	}
	return ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened (and Serve
// closes).
func ServeListener(ctx context.Context, ln net.Listener) error {
	// Toxiproxy keeps its toxic types in one registry of its own; adding
	// ours again on a second Serve in the same process is harmless.
	toxics.Register(LatencyToxicType, new(LatencyToxic))
	toxics.Register(HoldToxicType, new(HoldToxic))
	toxics.Register(IdleTimeoutToxicType, new(IdleTimeoutToxic))

	addr := ln.Addr().String()
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv := &http.Server{Handler: api.Routes(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("proxy: serve %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := errors.Join(srv.Shutdown(sctx), api.Collection.Clear())
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("proxy: shut down: %w", err)
	}
	return nil
}
