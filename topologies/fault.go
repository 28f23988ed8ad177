package topologies

import (
	"context"
	"fmt"
	"time"
)

// Fault is something done to a component on purpose, for scenarios and
// tests.
type Fault string

const (
	FaultStop    Fault = "stop"    // graceful stop; stays down
	FaultKill    Fault = "kill"    // SIGKILL to the process group; stays down
	FaultPause   Fault = "pause"   // SIGSTOP: alive but unresponsive
	FaultResume  Fault = "resume"  // SIGCONT after a pause
	FaultRestart Fault = "restart" // stop (if running) and start again, waiting for readiness
)

// ParseFault reads a fault's name as scenarios write it.
func ParseFault(s string) (Fault, error) {
	switch f := Fault(s); f {
	case FaultStop, FaultKill, FaultPause, FaultResume, FaultRestart:
		return f, nil
	}
	return "", fmt.Errorf("fault %q: want stop, kill, pause, resume or restart", s)
}

// Inject does f to the component called name (app-2, replica-1, primary,
// redis, redis-master-0, haproxy, varnish, pgbouncer, prometheus, …) and
// records the component's new PID in topology.json.
func (t *Topology) Inject(ctx context.Context, name string, f Fault) error {
	c, err := t.Component(name)
	if err != nil {
		return err
	}
	start := time.Now()
	pid := c.PID()
	switch f {
	case FaultStop:
		err = c.Stop(ctx)
	case FaultKill:
		err = c.Kill(ctx)
	case FaultPause:
		err = c.Pause()
	case FaultResume:
		err = c.Resume()
	case FaultRestart:
		err = c.Restart(ctx)
	default:
		_, err = ParseFault(string(f))
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", f, name, err)
	}
	t.rt.log.Info("fault injected", "fault", string(f), "component", name, "pid", pid, "new_pid", c.PID(),
		"took", time.Since(start).Round(time.Millisecond))
	return t.save()
}
