//go:build linux

package pauses

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rtPriority is the probe threads' SCHED_FIFO priority: the lowest, which
// is above every ordinary (SCHED_OTHER) thread.
const rtPriority = 1

// Probe watches every CPU until ctx ends, writing the Header and then one
// Event per late wake-up to out as JSON lines.
func Probe(ctx context.Context, out io.Writer) error {
	n := runtime.NumCPU()
	// One P per probe thread and one for the writer: a probe thread coming
	// back from its sleep must never wait for a P.
	runtime.GOMAXPROCS(n + 1)
	enc := json.NewEncoder(out)
	events := make(chan Event, 1024)
	ready := make(chan error, n)
	var wg sync.WaitGroup
	for cpu := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watch(ctx, cpu, ready, events)
		}()
	}
	h := Header{CPUs: n, Realtime: true}
	for range n {
		if err := <-ready; err != nil && h.Realtime {
			h.Realtime, h.Why = false, err.Error()
		}
	}
	err := enc.Encode(h)
	go func() {
		wg.Wait()
		close(events)
	}()
	for e := range events {
		if err == nil {
			err = enc.Encode(e)
		}
	}
	if err != nil {
		return fmt.Errorf("pause probe: write: %w", err)
	}
	return nil
}

// watch is one CPU's thread: pinned to cpu, at real-time priority when the
// system lets it (ready says whether it did), sleeping Period at a time and
// sending every wake-up later than MinLate.
func watch(ctx context.Context, cpu int, ready chan<- error, events chan<- Event) {
	runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
	var set unix.CPUSet
	set.Set(cpu)
	err := unix.SchedSetaffinity(0, &set)
	if err != nil {
		err = fmt.Errorf("pin to CPU %d: %w", cpu, err)
	} else if err = unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: rtPriority}, 0); err != nil {
		err = fmt.Errorf("real-time priority (SCHED_FIFO; needs root or CAP_SYS_NICE): %w", err)
	}
	ready <- err
	ts := syscall.NsecToTimespec(int64(Period))
	for ctx.Err() == nil {
		start := time.Now()
		for rem := ts; syscall.Nanosleep(&rem, &rem) == syscall.EINTR; {
		}
		if late := time.Since(start) - Period; late > MinLate {
			select {
			case events <- Event{CPU: cpu, At: start.Add(Period).UnixNano(), Late: int64(late)}:
			default: // the writer is behind: drop rather than stall the probe
			}
		}
	}
}
