package pauses

import (
	"context"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestMain runs the probe itself when a test starts this binary as one.
func TestMain(m *testing.M) {
	if os.Getenv("PAUSES_TEST_PROBE") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := Probe(ctx, os.Stdout)
		stop()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestMachineWide(t *testing.T) {
	ev := func(cpu int, at, late int64) Event { return Event{CPU: cpu, At: at, Late: late} }
	for _, tc := range []struct {
		name     string
		cpus     int
		events   []Event
		from, to int64
		want     []span
	}{
		{"one CPU stopped is no pause", 2, []Event{ev(0, 100, 50)}, 0, 1000, nil},
		{"both stopped together", 2, []Event{ev(0, 100, 50), ev(1, 110, 60)}, 0, 1000, []span{{110, 150}}},
		{"stopped apart", 2, []Event{ev(0, 100, 10), ev(1, 200, 10)}, 0, 1000, nil},
		{"several, out of order", 2,
			[]Event{ev(1, 500, 30), ev(0, 100, 20), ev(0, 490, 20), ev(1, 95, 15)}, 0, 1000,
			[]span{{100, 110}, {500, 510}}},
		{"clipped to the window", 2, []Event{ev(0, 100, 100), ev(1, 100, 100)}, 150, 170, []span{{150, 170}}},
		{"three CPUs need all three", 3, []Event{ev(0, 100, 50), ev(1, 100, 50)}, 0, 1000, nil},
		{"a CPU out of range is ignored", 1, []Event{ev(0, 100, 5), ev(3, 0, 1000)}, 0, 1000, []span{{100, 105}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := machineWide(tc.cpus, tc.events, tc.from, tc.to); !slices.Equal(got, tc.want) {
				t.Errorf("machineWide = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestWatcherSeesTheProbeStopped stops the probe process with SIGSTOP, which
// to its threads is the machine stopping: every CPU's thread wakes late by
// about as long, at once.
func TestWatcherSeesTheProbeStopped(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the probe is Linux only")
	}
	t.Setenv("PAUSES_TEST_PROBE", "1")
	w, err := Start(t.Context(), []string{os.Args[0], "-test.run=^$"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if rt, why := w.Realtime(); !rt {
		t.Logf("the probe runs without real-time priority (%s); a stopped process is seen all the same", why)
	}
	time.Sleep(100 * time.Millisecond)
	stopped := time.Now()
	pid := w.proc.Pid()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	var s Summary
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s = w.Between(stopped.Add(-10*time.Millisecond), resumed.Add(10*time.Millisecond)); s.Longest >= 50*time.Millisecond {
			break
		}
	}
	if s.Longest < 50*time.Millisecond || s.Longest > 80*time.Millisecond+20*time.Millisecond {
		t.Errorf("stopped for 80ms: longest pause seen %v (%d pauses, %v in all), want about 80ms", s.Longest, s.Count, s.Total)
	}
	if before := w.Between(stopped.Add(-100*time.Millisecond), stopped.Add(-10*time.Millisecond)); before.Longest >= 50*time.Millisecond {
		t.Errorf("before the stop: a pause of %v", before.Longest)
	}
	w.Stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("probe %d still runs after Stop", pid)
	}
}
