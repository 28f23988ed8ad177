package lab

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

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
	done := make(chan []string)
	go func() { done <- injectFaults(ctx, inject, faults, start, io.Discard) }()
	// The first two are due within 60 ms; the run "ends" well after.
	time.Sleep(300 * time.Millisecond)
	cancel()
	lines := <-done

	if len(calls) != 2 || calls[0].component != "redis" || calls[0].action != topologies.FaultKill ||
		calls[1].component != "replica-1" || calls[1].action != topologies.FaultPause {
		t.Fatalf("inject calls = %+v, want kill redis then pause replica-1", calls)
	}
	for i, c := range calls {
		if c.after < faults[i].At {
			t.Errorf("%s %s injected after %v, before its time %v", c.action, c.component, c.after, faults[i].At)
		}
	}
	want := []string{
		"Fault at 20ms: kill redis: injected at ",
		"Fault at 60ms: pause replica-1: failed at ",
		"Fault at 1h0m0s: restart redis: not injected, the run ended first.",
		"Fault at 2h0m0s: stop app-1: not injected, the run ended first.",
	}
	if len(lines) != len(want) {
		t.Fatalf("lines = %q, want %d", lines, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d = %q, want it to start %q", i, lines[i], w)
		}
	}
	if !strings.Contains(lines[1], "no such process") {
		t.Errorf("failed line %q does not say why", lines[1])
	}
}
