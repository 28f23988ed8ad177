package lab

import (
	"context"
	"fmt"
	"io"
	"time"

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

// injectFaults applies each fault at its time after start with inject (as
// Topology.Inject does), in order, until ctx ends, and returns a line per
// fault for the report's notes. A fault whose time comes after ctx ended is
// reported as not injected.
func injectFaults(ctx context.Context, inject func(ctx context.Context, component string, f topologies.Fault) error,
	faults []scheduledFault, start time.Time, stdout io.Writer) []string {
	var lines []string
	for _, f := range faults {
		t := time.NewTimer(time.Until(start.Add(f.At)))
		select {
		case <-ctx.Done():
			t.Stop()
			lines = append(lines, fmt.Sprintf("Fault %s: not injected, the run ended first.", f.Fault))
			continue
		case <-t.C:
		}
		at := time.Since(start)
		err := inject(ctx, f.Component, f.action)
		line := fmt.Sprintf("Fault %s: injected at %.2fs, took %s.", f.Fault, at.Seconds(), time.Since(start.Add(at)).Round(time.Millisecond))
		if err != nil {
			line = fmt.Sprintf("Fault %s: failed at %.2fs: %v.", f.Fault, at.Seconds(), err)
		}
		fmt.Fprintf(stdout, "\n%s\n", line)
		lines = append(lines, line)
	}
	return lines
}
