package lab

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

func TestCheckFaults(t *testing.T) {
	component := func(name string) (topologies.Component, error) {
		if name == "redis" {
			return nil, nil
		}
		return nil, errors.New("no component " + name)
	}
	tests := []struct {
		name    string
		faults  []scenarios.Fault
		wantErr string
	}{
		{"none", nil, ""},
		{"known", []scenarios.Fault{{At: time.Second, Component: "redis", Action: "kill"}, {At: 2 * time.Second, Component: "redis", Action: "restart"}}, ""},
		{"unknown component", []scenarios.Fault{{At: time.Second, Component: "replica-1", Action: "pause"}}, "fault at 1s: pause replica-1: no component replica-1"},
		{"unknown action", []scenarios.Fault{{At: time.Second, Component: "redis", Action: "melt"}}, "fault at 1s: melt redis: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkFaults(component, tt.faults)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("checkFaults = %v, want an error starting %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.faults) {
				t.Fatalf("checkFaults returned %d faults, want %d", len(got), len(tt.faults))
			}
			for i, f := range got {
				if string(f.action) != string(tt.faults[i].Action) {
					t.Errorf("fault %d action %q, want %q", i, f.action, tt.faults[i].Action)
				}
			}
		})
	}
}

// injectFaults applies faults in order, none before its time, reports a
// failed injection, and reports the faults whose time the run did not
// reach as not injected.
func TestInjectFaults(t *testing.T) {
	faults := []scheduledFault{
		{Fault: scenarios.Fault{At: 20 * time.Millisecond, Component: "redis", Action: "kill"}, action: topologies.FaultKill},
		{Fault: scenarios.Fault{At: 60 * time.Millisecond, Component: "replica-1", Action: "pause"}, action: topologies.FaultPause},
		{Fault: scenarios.Fault{At: time.Hour, Component: "redis", Action: "restart"}, action: topologies.FaultRestart},
		{Fault: scenarios.Fault{At: 2 * time.Hour, Component: "app-1", Action: "stop"}, action: topologies.FaultStop},
	}
	type call struct {
		component string
		action    topologies.Fault
		after     time.Duration
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	start := time.Now()
	inject := func(_ context.Context, component string, f topologies.Fault) error {
		mu.Lock()
		calls = append(calls, call{component, f, time.Since(start)})
		mu.Unlock()
		if component == "replica-1" {
			return errors.New("no such process")
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []injectedFault)
	go func() { done <- injectFaults(ctx, inject, faults, start, io.Discard) }()
	// The first two are due within 60 ms; the run "ends" well after.
	time.Sleep(300 * time.Millisecond)
	cancel()
	got := <-done

	if len(calls) != 2 || calls[0].component != "redis" || calls[0].action != topologies.FaultKill ||
		calls[1].component != "replica-1" || calls[1].action != topologies.FaultPause {
		t.Fatalf("inject calls = %+v, want kill redis then pause replica-1", calls)
	}
	for i, c := range calls {
		if c.after < faults[i].At {
			t.Errorf("%s %s injected after %v, before its time %v", c.action, c.component, c.after, faults[i].At)
		}
	}
	// Timed from a load that started 10 ms after the faults' clock.
	res := reportFaults(got, start.Add(10*time.Millisecond))
	if len(res) != len(faults) {
		t.Fatalf("reportFaults = %+v, want %d faults", res, len(faults))
	}
	want := []reports.Fault{
		{Fault: "kill redis"},
		{Fault: "pause replica-1", Error: "no such process"},
		{AtS: 3600, Fault: "restart redis", Error: "not injected: the run ended first"},
		{AtS: 7200, Fault: "stop app-1", Error: "not injected: the run ended first"},
	}
	for i, w := range want {
		g := res[i]
		if g.Fault != w.Fault || g.Error != w.Error {
			t.Errorf("fault %d = %+v, want %+v", i, g, w)
		}
		if w.AtS != 0 && g.AtS != w.AtS {
			t.Errorf("fault %d at %vs, want its scheduled %vs", i, g.AtS, w.AtS)
		}
	}
	for i := range 2 {
		// Injected at calls[i].after on the faults' clock: 10 ms less on the load's.
		if want := (calls[i].after - 10*time.Millisecond).Seconds(); res[i].AtS > want+0.001 || res[i].AtS < want-0.005 {
			t.Errorf("fault %d at %.4fs, want about %.4fs", i, res[i].AtS, want)
		}
	}
}
