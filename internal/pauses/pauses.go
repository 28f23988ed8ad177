// Package pauses sees the moments when the whole machine stops: every CPU
// at once runs nothing of ours, as when a virtual machine's host takes its
// vCPUs away for a few milliseconds.
//
// Such a pause is not a property of the system under test, but it shapes
// its tail: the requests that arrive while the machine is stopped wait for
// it, and the backlog then drains only as fast as the spare capacity
// allows, so at utilization ρ a pause of s keeps the queue standing for
// s/(1−ρ). On the lab's 2-core test box (a Firecracker VM) the probe sees
// both vCPUs stop together for 3 to 25 ms every few seconds to half a
// minute, and stretches of 50 ms in which the VM runs 2 ms in every 6.
// One such pause in a 10 s capacity step at 85% of the cores is enough to
// fail the step.
//
// The probe is a process of its own (Probe, which scalelab's hidden
// pause-probe command runs) with one thread pinned to each CPU, each
// sleeping Period at a time at real-time priority (SCHED_FIFO) and noting
// how late it woke: at that priority nothing of the guest delays it, so a
// late wake-up is the CPU taken away. A stretch during which every CPU's
// thread was late at once is a pause of the machine. Without real-time
// priority (not root, no CAP_SYS_NICE) the threads queue behind the
// guest's own work and their lateness says nothing about the machine; the
// Watcher then reports that pauses were not measured.
package pauses

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"scalelab/internal/child"
)

// Period is how long each probe thread sleeps at a time: a pause shorter
// than about this can hide inside a sleep.
const Period = 2 * time.Millisecond

// MinLate is the lateness a probe thread reports; less is timer noise.
const MinLate = 2 * time.Millisecond

// Header is the probe's first line.
type Header struct {
	CPUs int `json:"cpus"`
	// Realtime is true when every thread runs at real-time priority.
	Realtime bool `json:"realtime"`
	// Why says why Realtime is false.
	Why string `json:"why,omitempty"`
}

// Event is one late wake-up of CPU's thread: from At (the time it should
// have woken, Unix nanoseconds) for Late nanoseconds the CPU ran none of
// it.
type Event struct {
	CPU  int   `json:"cpu"`
	At   int64 `json:"at_ns"`
	Late int64 `json:"late_ns"`
}

// Summary is the machine's pauses over a stretch of time.
type Summary struct {
	// Count is how many pauses there were.
	Count int
	// Longest and Total are the longest pause and all of them together.
	Longest, Total time.Duration
}

type span struct{ from, to int64 }

// machineWide is where every CPU was stopped at once: the intersection of
// the CPUs' stopped spans, within [from, to).
func machineWide(cpus int, events []Event, from, to int64) []span {
	if cpus < 1 {
		return nil
	}
	per := make([][]span, cpus)
	for _, e := range events {
		if e.CPU < 0 || e.CPU >= cpus {
			continue
		}
		s := span{max(e.At, from), min(e.At+e.Late, to)}
		if s.from < s.to {
			per[e.CPU] = append(per[e.CPU], s)
		}
	}
	for _, p := range per {
		slices.SortFunc(p, func(a, b span) int { return cmp.Compare(a.from, b.from) })
	}
	common := per[0]
	for _, p := range per[1:] {
		var next []span
		i, j := 0, 0
		for i < len(common) && j < len(p) {
			if s := (span{max(common[i].from, p[j].from), min(common[i].to, p[j].to)}); s.from < s.to {
				next = append(next, s)
			}
			if common[i].to < p[j].to {
				i++
			} else {
				j++
			}
		}
		common = next
	}
	return common
}

// Watcher runs a probe process and keeps what it reports.
type Watcher struct {
	proc   *child.Process
	header Header // set before Start returns, never after

	mu     sync.Mutex
	events []Event
}

// Start runs the probe command (scalelab pause-probe) and returns once it
// has said how many CPUs it watches. The probe dies with this process; Stop
// stops it.
func Start(ctx context.Context, command []string, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	w := &Watcher{}
	proc, err := child.Start(ctx, child.Config{
		Name: "pause probe", Command: command, Log: log,
		First: func(line []byte) error {
			if err := json.Unmarshal(line, &w.header); err != nil {
				return fmt.Errorf("bad header: %w", err)
			}
			if w.header.CPUs < 1 {
				return fmt.Errorf("bad header: %d CPUs", w.header.CPUs)
			}
			return nil
		},
		Next: func(line []byte) {
			var e Event
			if err := json.Unmarshal(line, &e); err != nil {
				log.Warn("pause probe: bad line", "line", string(line), "err", err)
				return
			}
			w.mu.Lock()
			w.events = append(w.events, e)
			w.mu.Unlock()
		},
	})
	if err != nil {
		return nil, err
	}
	w.proc = proc
	return w, nil
}

// Realtime reports whether the probe runs at real-time priority, and if
// not, why: without it the pauses are not measured.
func (w *Watcher) Realtime() (bool, string) { return w.header.Realtime, w.header.Why }

// Between is the machine's pauses from start to end.
func (w *Watcher) Between(start, end time.Time) Summary {
	w.mu.Lock()
	events := slices.Clone(w.events)
	w.mu.Unlock()
	var s Summary
	for _, p := range machineWide(w.header.CPUs, events, start.UnixNano(), end.UnixNano()) {
		d := time.Duration(p.to - p.from)
		s.Count++
		s.Total += d
		s.Longest = max(s.Longest, d)
	}
	return s
}

// Stop stops the probe and waits for it.
func (w *Watcher) Stop() { w.proc.Stop() }
