package lab

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

// linkFault is a scenario fault on a link the topology proxies.
type linkFault struct {
	scenarios.Fault
	fault topologies.LinkFault
}

// linkTopology is what link faults need of a running topology
// (*topologies.Topology).
type linkTopology interface {
	HasLink(name string) error
	InjectLinkFault(ctx context.Context, name string, f topologies.LinkFault) (func(context.Context) error, error)
}

// splitFaults separates the faults on components from those on links.
func splitFaults(faults []scenarios.Fault) (components, links []scenarios.Fault) {
	for _, f := range faults {
		if f.Link != "" {
			links = append(links, f)
		} else {
			components = append(components, f)
		}
	}
	return components, links
}

// checkLinkFaults resolves link faults against the running topology before
// the run starts, so that a misnamed link (or a link fault under the none
// profile, which proxies nothing) fails at once.
func checkLinkFaults(top linkTopology, faults []scenarios.Fault) ([]linkFault, error) {
	var out []linkFault
	for _, f := range faults {
		if err := top.HasLink(f.Link); err != nil {
			return nil, fmt.Errorf("fault %s: %w", f, err)
		}
		lf := topologies.LinkFault{
			Action: topologies.LinkAction(f.Action), Direction: f.Direction, Latency: f.Latency, RateKBps: f.RateKBps,
		}
		if err := lf.Check(); err != nil {
			return nil, fmt.Errorf("fault %s: %w", f, err)
		}
		out = append(out, linkFault{Fault: f, fault: lf})
	}
	return out, nil
}

// injectedLink is what became of one link fault: when its injection
// began (zero when the run ended first) and why it failed.
type injectedLink struct {
	fault string
	at    time.Time
	err   error
}

// injectLinkFaults applies each link fault at its time after start and
// heals it For later (or when ctx ends, for a fault without For, or one
// still on when the run ends), and returns a line per fault and per heal
// for the report's notes, and each fault's injection for the time charts'
// markers.
func injectLinkFaults(ctx context.Context, top linkTopology, faults []linkFault, start time.Time, stdout io.Writer) ([]string, []injectedLink) {
	var (
		mu       sync.Mutex
		lines    []string
		injected []injectedLink
		wg       sync.WaitGroup
	)
	say := func(line string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(stdout, "\n%s\n", line)
		lines = append(lines, line)
	}
	for _, f := range faults {
		if !sleepUntil(ctx, start.Add(f.At)) {
			say(fmt.Sprintf("Fault %s: not injected, the run ended first.", f.Fault))
			injected = append(injected, injectedLink{fault: linkMark(f.Fault)})
			continue
		}
		now := time.Now()
		at := now.Sub(start)
		heal, err := top.InjectLinkFault(ctx, f.Link, f.fault)
		injected = append(injected, injectedLink{fault: linkMark(f.Fault), at: now, err: err})
		if err != nil {
			say(fmt.Sprintf("Fault %s: failed at %.2fs: %v.", f.Fault, at.Seconds(), err))
			continue
		}
		say(fmt.Sprintf("Fault %s: injected at %.2fs.", f.Fault, at.Seconds()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			healed := false
			if f.For > 0 {
				healed = sleepUntil(ctx, start.Add(f.At+f.For))
			} else {
				<-ctx.Done()
			}
			// Heal even when the run ended first: the topology may stay up
			// (a Session measures again) and must not stay cut.
			herr := heal(context.WithoutCancel(ctx))
			switch {
			case herr != nil:
				say(fmt.Sprintf("Fault %s: healing failed: %v.", f.Fault, herr))
			case healed:
				say(fmt.Sprintf("Fault %s: healed at %.2fs.", f.Fault, time.Since(start).Seconds()))
			default:
				say(fmt.Sprintf("Fault %s: healed when the run ended.", f.Fault))
			}
		}()
	}
	wg.Wait()
	return lines, injected
}

// linkMark names a link fault as a chart marks it: the fault without its
// time ("partition primary->replica-1 for 10s").
func linkMark(f scenarios.Fault) string {
	_, after, _ := strings.Cut(f.String(), ": ")
	return after
}

// reportLinkFaults maps link faults for result.json, their times counted
// from start, the start of the measured part.
func reportLinkFaults(faults []injectedLink, start time.Time) []reports.Fault {
	var out []reports.Fault
	for _, f := range faults {
		rf := reports.Fault{Fault: f.fault}
		switch {
		case f.at.IsZero():
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

// sleepUntil waits until t and says whether it got there before ctx ended.
func sleepUntil(ctx context.Context, t time.Time) bool {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
