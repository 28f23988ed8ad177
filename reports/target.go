package reports

import (
	"fmt"
	"strconv"
)

// subject names what a run measured: "phase N", or the target URL of a
// run against a deployment the lab did not start.
func (r *Result) subject() string {
	if r.Target != "" {
		return r.Target
	}
	return "phase " + strconv.Itoa(r.Phase)
}

// targetFacts are the report's first facts for a run against a target:
// where the load went, and how it was split between generators.
func targetFacts(r *Result) []fact {
	target := r.Target
	if r.Phase > 0 {
		target += fmt.Sprintf(" (phase %d)", r.Phase)
	}
	if r.Topology != "" {
		target += " — " + r.Topology
	}
	facts := []fact{{key: "Target", value: target}}
	switch {
	case r.Generators > 1:
		facts = append(facts, fact{key: "Generators", value: fmt.Sprintf("%d load generators, results merged exactly (HDR histograms merged, counts summed)", r.Generators)})
	case r.Shard != "":
		facts = append(facts, fact{key: "Generators", value: "shard " + r.Shard + ": this generator's share of a split run"})
	}
	return facts
}
