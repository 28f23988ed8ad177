package loadgen

import (
	"os"
	"strings"
	"testing"
	"time"
)

// A test that judges the executor by time (drops past MaxDelay, a request
// timeout, a p50) judges the machine too: a process that is stopped for
// a while in the middle of a 2 s run rightly drops, times out or measures
// the stall. Such a run says nothing about the executor, so these tests
// meter the process's own stalls beside the run and judge only a run the
// process was left to run in. The meter found the load generator's own
// worst stall: the pacer's raw nanosleep, which kept its P from the
// scheduler, stopped this package's tests for 0.2 s to 15 s in half of
// its runs (see fineSleep); with it gone, no stall over 20 ms in 8 runs.

// stallMeter is a hiccup meter: a goroutine that asks to wake every
// millisecond and records the longest it was kept from running. Whatever
// stops the process (the hypervisor, the kernel, another process's load,
// the Go runtime) shows in it as it shows in the run beside it.
type stallMeter struct {
	stop  chan struct{}
	worst chan time.Duration
}

func startStallMeter() *stallMeter {
	m := &stallMeter{stop: make(chan struct{}), worst: make(chan time.Duration, 1)}
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var worst time.Duration
		last := time.Now()
		for {
			select {
			case <-m.stop:
				m.worst <- worst
				return
			case <-tick.C:
				now := time.Now() // when this goroutine ran, not when the tick was due
				worst = max(worst, now.Sub(last)-time.Millisecond)
				last = now
			}
		}
	}()
	return m
}

// Stop ends the meter and returns the longest stall it saw.
func (m *stallMeter) Stop() time.Duration {
	close(m.stop)
	return <-m.worst
}

// steadyTries is how many runs runSteady makes before it gives up.
const steadyTries = 5

// runSteady runs the configuration cfg makes, and again (with a fresh
// one: a test's server may count its requests) up to steadyTries runs in
// all while this process was stalled for longer than limit. It returns the
// first run without such a stall; when every run had one it skips the
// test, saying so: a test may pass or fail only on a run it can judge.
func runSteady(t *testing.T, limit time.Duration, cfg func() Config) *Result {
	t.Helper()
	var stalls []time.Duration
	for range steadyTries {
		m := startStallMeter()
		res := mustRun(t, cfg())
		worst := m.Stop()
		if worst <= limit {
			t.Logf("judging run %d: the longest stall of this process was %v (earlier runs: %v)", len(stalls)+1, worst, stalls)
			return res
		}
		stalls = append(stalls, worst)
		t.Logf("run %d: this process was stalled for %v (over %v)%s: running it again", len(stalls), worst, limit, pressure())
	}
	t.Skipf("this process was stalled in each of %d runs (%v, over %v each): no run to judge the executor by", steadyTries, stalls, limit)
	return nil
}

// pressure describes the machine's CPU and I/O pressure (Linux PSI), for
// the log of a stalled run; empty where the kernel does not offer it.
func pressure() string {
	var b strings.Builder
	for _, res := range []string{"cpu", "io", "memory"} {
		data, err := os.ReadFile("/proc/pressure/" + res)
		if err != nil {
			continue
		}
		// "some avg10=1.23 avg60=... total=..." on the first line.
		first, _, _ := strings.Cut(string(data), "\n")
		if f := strings.Fields(first); len(f) > 1 {
			b.WriteString(", " + res + " " + f[1])
		}
	}
	if b.Len() == 0 {
		return ""
	}
	return " (pressure" + b.String()[1:] + ")"
}
