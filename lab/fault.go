package lab

import (
	"context"
	"fmt"
	"io"
	"time"

	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

// scheduledFault is a scenario fault whose component exists.
type scheduledFault struct {
	scenarios.Fault
	action topologies.Fault
}

// checkFaults resolves the scenario's faults against the running topology
// (component looks a component up by name, as Topology.Component does)
// before the run starts, so that a misnamed component fails at once.
func checkFaults(component func(name string) (topologies.Component, error), faults []scenarios.Fault) ([]scheduledFault, error) {
	var out []scheduledFault
	for _, f := range faults {
		if _, err := component(f.Component); err != nil {
			return nil, fmt.Errorf("fault %s: %w", f, err)
		}
		action, err := topologies.ParseFault(string(f.Action))
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", f, err)
		}
		out = append(out, scheduledFault{Fault: f, action: action})
	}
	return out, nil
}

// injectedFault is what became of one scheduled fault.
type injectedFault struct {
	fault scheduledFault
	// at is when the injection began; zero when the run ended first.
	at  time.Time
	err error
}

// injectFaults applies each fault at its time after start with inject (as
// Topology.Inject does), in order, until ctx ends, prints a line per fault
// to stdout and returns what became of each. A fault whose time comes
// after ctx ended is not injected.
func injectFaults(ctx context.Context, inject func(ctx context.Context, component string, f topologies.Fault) error,
	faults []scheduledFault, start time.Time, stdout io.Writer) []injectedFault {
	var out []injectedFault
	for _, f := range faults {
		t := time.NewTimer(time.Until(start.Add(f.At)))
		select {
		case <-ctx.Done():
			t.Stop()
			out = append(out, injectedFault{fault: f})
			continue
		case <-t.C:
		}
		at := time.Now()
		err := inject(ctx, f.Component, f.action)
		line := fmt.Sprintf("Fault %s: injected at %.2fs, took %s.", f.Fault, at.Sub(start).Seconds(), time.Since(at).Round(time.Millisecond))
		if err != nil {
			line = fmt.Sprintf("Fault %s: failed at %.2fs: %v.", f.Fault, at.Sub(start).Seconds(), err)
		}
		fmt.Fprintf(stdout, "\n%s\n", line)
		out = append(out, injectedFault{fault: f, at: at, err: err})
	}
	return out
}

// reportFaults maps the faults for result.json, their times counted from
// start, the start of the measured part.
func reportFaults(faults []injectedFault, start time.Time) []reports.Fault {
	var out []reports.Fault
	for _, f := range faults {
		rf := reports.Fault{Fault: fmt.Sprintf("%s %s", f.fault.Action, f.fault.Component)}
		switch {
		case f.at.IsZero():
			rf.AtS = f.fault.At.Seconds()
			rf.Error = "not injected: the run ended first"
		default:
			rf.AtS = f.at.Sub(start).Seconds()
			if f.err != nil {
				rf.Error = f.err.Error()
			}
		}
		out = append(out, rf)
	}
	return out
}
