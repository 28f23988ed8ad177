package model

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Loadgen is the name of the load generator in Demands. Its CPU is not a
// tier of the topology, but on one box it competes with the topology for
// the same cores, so the model counts it on the cores and never names it as
// a component bottleneck of the system under test.
const Loadgen = "loadgen"

// Cores is the name of the shared-cores station in Inputs and in the
// bottleneck Predict returns.
const Cores = "cores"

// Demands are CPU seconds per request by component (process, or process
// group), as measured: every component's CPU runs on the machine's cores.
type Demands map[string]float64

// Total is the sum of all demands: the core-seconds one request costs.
func (d Demands) Total() float64 {
	t := 0.0
	for _, v := range d {
		t += v
	}
	return t
}

// Machine is the box the components share.
type Machine struct {
	// Cores is how many cores the components share.
	Cores int
	// Background is how many cores stay busy whatever the load (for
	// example Prometheus scraping, replication keep-alives, timers): they
	// are not available to requests.
	Background float64
	// Threads caps components that cannot use every core: 1 for Redis (one
	// thread serves every command), HAProxy's nbthread, and so on. A
	// component not listed can use every core (Go's app instances,
	// PostgreSQL's process per connection).
	Threads map[string]int
	// Serial are resources a request holds one at a time without being a
	// process of their own, in seconds held per request, averaged over all
	// requests: SQLite's single writer is the one the lab has (the time a
	// write holds the database's write lock, times the write share). They
	// bound the rate; their time is CPU already counted in Demands.
	Serial map[string]float64
	// Utilization is the share of each resource's servers that requests
	// may keep busy before the latency objective breaks (RuleBox: measured
	// with a bare server on the machine, or SLOUtilization where none was);
	// 0 means 1, the throughput bound itself.
	Utilization float64
	// UtilizationRule says where Utilization comes from, for the model's
	// name (RuleBox, RuleMM1); "" is RuleMM1.
	UtilizationRule string
}

// The rules Machine.UtilizationRule names.
const (
	// RuleMM1 is SLOUtilization: u = 1 − p99₀/SLO.
	RuleMM1 = "u = 1 − p99₀/SLO (M/M/1), p99₀ measured at the lowest rates"
	// RuleBox is u measured on the machine: the share of the cores busy at
	// the knee of a bare server that spends on each request what the
	// phase's tiers do, found by a capacity search against the room the
	// phase leaves in the objective (its bound less the phase's p99 with
	// no load). Queueing for the cores, the load generator beside them and
	// the host's pauses are all in that figure, as they are in the phase's.
	RuleBox = "u: the share of the cores busy at the knee of a bare server on this machine spending on each request what the tiers do, searched against SLO − p99₀ (p99₀ the phase's p99 at the lowest rates)"
)

// SLOUtilization is the utilization at which a queue whose response-time
// percentile is p0 with no load reaches the objective slo (both in the
// same unit): 1 − p0/slo, clamped to [0, 1]. In an M/M/1 queue the
// response time is exponential with rate μ(1−ρ), so every percentile of
// it is its zero-load value divided by 1−ρ (Kleinrock, Queueing Systems
// vol. 1, 1975, §3.2; Harchol-Balter, Performance Modeling and Design of
// Computer Systems, 2013, §14.1): the percentile stays within the
// objective while ρ ≤ 1 − p0/slo. The lab takes p0 as the median p99 of
// its lowest-rate steps, where nothing queues yet.
func SLOUtilization(p0, slo float64) float64 {
	if slo <= 0 || p0 < 0 {
		return 1
	}
	return math.Max(0, math.Min(1, 1-p0/slo))
}

// Constraint is one bound on the sustainable rate.
type Constraint struct {
	Name string `json:"name"`
	// Servers is how many requests the resource serves at once.
	Servers float64 `json:"servers"`
	// Demand is its seconds per request.
	Demand float64 `json:"demand_s"`
	// MaxRate is Servers/Demand, requests per second.
	MaxRate float64 `json:"max_rate"`
}

// Inputs are what Predict computed from, to be recorded with its answer.
type Inputs struct {
	// Model names the model: the open network's asymptotic bounds.
	Model string `json:"model"`
	// Cores and Background are the machine's.
	Cores      int     `json:"cores"`
	Background float64 `json:"background_cores"`
	// Utilization is Machine.Utilization (1 when unset).
	Utilization float64 `json:"utilization"`
	// TotalDemand is the core-seconds per request of every component,
	// load generator included.
	TotalDemand float64 `json:"total_demand_s"`
	// LoadgenDemand is the load generator's part of TotalDemand.
	LoadgenDemand float64 `json:"loadgen_demand_s"`
	// Constraints are every bound considered, tightest first; the first
	// one is the bottleneck.
	Constraints []Constraint `json:"constraints"`
}

// ModelName is the name Predict records in Inputs.Model, before the rule
// for u (Machine.UtilizationRule).
const ModelName = "open-network bounds at the SLO's utilization: X ≤ min((uC−B)/ΣD, u·m_k/D_k)"

// Predict returns the highest request rate the machine can sustain with
// these demands, the resource that limits it and the inputs of the
// computation. It is the open network's asymptotic bound, which holds for
// any distribution of service times: the shared cores serve at most
// (C − B)/ΣD requests per second, where ΣD counts every component and the
// load generator; a component limited to m threads serves at most m/D_k;
// a serial resource at most 1/D. Real latency grows before the bound is
// reached, so a latency SLO is met below it: with m.Utilization set
// (SLOUtilization) every resource offers only that share of its servers,
// which is where an M/M/1 queue's percentile reaches the objective.
//
// With no demand at all there is no bound: the rate is +Inf and the
// bottleneck is empty.
func Predict(d Demands, m Machine) (maxRate float64, bottleneck string, inputs Inputs) {
	u := m.Utilization
	if u <= 0 || u > 1 {
		u = 1
	}
	inputs = Inputs{
		Model:         ModelName + ", " + cmp.Or(m.UtilizationRule, RuleMM1),
		Cores:         m.Cores,
		Background:    m.Background,
		Utilization:   u,
		TotalDemand:   d.Total(),
		LoadgenDemand: d[Loadgen],
	}
	add := func(name string, servers, demand float64) {
		if demand <= 0 {
			return
		}
		inputs.Constraints = append(inputs.Constraints, Constraint{
			Name: name, Servers: servers, Demand: demand, MaxRate: math.Max(0, servers) / demand,
		})
	}
	add(Cores, u*float64(m.Cores)-m.Background, inputs.TotalDemand)
	for _, name := range slices.Sorted(maps.Keys(m.Threads)) {
		if name == Loadgen {
			continue
		}
		if t := m.Threads[name]; t < m.Cores {
			add(name, u*float64(t), d[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Serial)) {
		add(name, u, m.Serial[name])
	}
	slices.SortStableFunc(inputs.Constraints, func(a, b Constraint) int { return cmp.Compare(a.MaxRate, b.MaxRate) })
	if len(inputs.Constraints) == 0 {
		return math.Inf(1), "", inputs
	}
	c := inputs.Constraints[0]
	return c.MaxRate, c.Name, inputs
}

// Network is the closed queueing network of the machine for MVA: the
// components limited to fewer threads than cores and the serial resources
// as stations of their own (one server per thread), everything else on one
// station of Cores servers, and the think time of the clients.
//
// It is an approximation in one place: a thread-limited component's time
// is on its own station, not also on the shared cores, so MVA sees the
// cores slightly less busy than they are when such a component is busy.
// The open bound (Predict) has no such approximation.
func (m Machine) Network(d Demands, think float64) (Network, error) {
	if m.Cores < 1 {
		return Network{}, fmt.Errorf("machine has %d cores", m.Cores)
	}
	net := Network{ThinkTime: think}
	shared := d.Total()
	for _, name := range slices.Sorted(maps.Keys(m.Threads)) {
		t := m.Threads[name]
		if t >= m.Cores || d[name] == 0 {
			continue
		}
		if t < 1 {
			return Network{}, fmt.Errorf("component %s: %d threads", name, t)
		}
		net.Stations = append(net.Stations, Station{Name: name, Demand: d[name], Servers: t})
		shared -= d[name]
	}
	for _, name := range slices.Sorted(maps.Keys(m.Serial)) {
		net.Stations = append(net.Stations, Station{Name: name, Demand: m.Serial[name], Servers: 1})
	}
	// Background load takes cores away: the requests see fewer servers. A
	// station has whole servers, so the fraction is spread over the
	// demand instead (same bound, C−B servers' worth).
	cores := float64(m.Cores)
	if m.Background > 0 && m.Background < cores {
		shared *= cores / (cores - m.Background)
	}
	net.Stations = append([]Station{{Name: Cores, Demand: shared, Servers: m.Cores}}, net.Stations...)
	return net, nil
}

// LabMachine is the machine of the lab's topologies: cores shared by every
// component, with the components that run one thread capped at one core:
// Redis (each standalone or cluster node executes commands on one thread)
// and pgbouncer (one event loop). HAProxy and Varnish run a thread per core
// by default and PostgreSQL a process per connection, so they are not
// capped; a topology that sets HAProxy's nbthread below the cores should
// add it to Threads. SQLite's single writer is a Serial resource the caller
// adds when it has measured the write lock's hold time.
func LabMachine(cores int, components []string) Machine {
	m := Machine{Cores: cores, Threads: map[string]int{}}
	for _, c := range components {
		if c == "redis" || strings.HasPrefix(c, "redis-") || c == "pgbouncer" {
			m.Threads[c] = 1
		}
	}
	return m
}

// Flat returns the inputs as one map of numbers, as result.json's
// capacity.model.inputs records them: "cores", "background_cores",
// "utilization", "total_demand_s", "loadgen_demand_s", and per constraint
// "max_rate.NAME", "servers.NAME" and "demand_s.NAME".
func (in Inputs) Flat() map[string]float64 {
	out := map[string]float64{
		"cores":            float64(in.Cores),
		"background_cores": in.Background,
		"utilization":      in.Utilization,
		"total_demand_s":   in.TotalDemand,
		"loadgen_demand_s": in.LoadgenDemand,
	}
	for _, c := range in.Constraints {
		out["max_rate."+c.Name] = c.MaxRate
		out["servers."+c.Name] = c.Servers
		out["demand_s."+c.Name] = c.Demand
	}
	return out
}
