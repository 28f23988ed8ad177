package reports

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Capacity is result.json's capacity section, written by scalelab capacity:
// the open-model arrival rate was stepped up until the SLO broke, and each
// step recorded what it achieved and what every component's CPU cost per
// request was. The JSON names of slo, steps, max_rate, demands,
// predicted_max_rate and model are binding (docs/result-schema.md).
type Capacity struct {
	// SLO is the objective every step was judged against, as written, e.g.
	// "p99<50ms, errors+dropped<=0.1%, achieved>=95% of offered".
	SLO   string         `json:"slo"`
	Steps []CapacityStep `json:"steps"`
	// MaxRate is the measured capacity: the highest offered rate, requests
	// per second, at which the SLO held (the knee).
	MaxRate float64 `json:"max_rate"`
	// Demands are the CPU seconds each component spends per request,
	// computed from the steps at or below the knee (see ComputeDemands).
	// The load generator is the component "loadgen" when it was measured.
	Demands map[string]float64 `json:"demands"`
	// PredictedMaxRate is the queueing model's capacity for Demands on this
	// machine, requests per second.
	PredictedMaxRate float64       `json:"predicted_max_rate"`
	Model            CapacityModel `json:"model"`

	// BackgroundCores are the cores each component kept busy whatever the
	// load (the intercept of ComputeDemands' regression): scrapes, timers,
	// replication. Optional.
	BackgroundCores map[string]float64 `json:"background_cores,omitempty"`
	// DemandsMethod says how Demands were computed (ComputeDemands' Method).
	DemandsMethod string `json:"demands_method,omitempty"`
	// DataBytesPerUser is the database's size (tables and indexes) divided
	// by the users in it, measured after seeding: what the plan compares
	// with one machine's memory. Optional; 0 when not measured.
	DataBytesPerUser float64 `json:"data_bytes_per_user,omitempty"`
	// Box is the machine's own ceiling, measured after the search: a bare
	// server costing what a request of the phase costs, searched the same
	// way. Optional: absent when it was not measured.
	Box *CapacityBox `json:"box,omitempty"`
}

// CapacityBox is a capacity search of a bare server (internal/burn) on the
// same machine, with the same load generator and objective as the phase:
// how busy the cores get before the machine itself breaks the objective,
// which the model takes as the share of the cores requests may use.
type CapacityBox struct {
	// WorkUS is the CPU the server spends on each request, in µs: the sum
	// of the phase's demands, the load generator's left out.
	WorkUS float64 `json:"work_us"`
	// FrontUS is what the HTTP server itself spends of WorkUS, and Hops
	// the processes every request goes through behind it, one per tier
	// of the phase on a request's way, each spending its tier's demand.
	// No hops: one process spends it all (results before hops were
	// measured have neither).
	FrontUS float64       `json:"front_us,omitempty"`
	Hops    []CapacityHop `json:"hops,omitempty"`
	// SLO is the objective the bare server was searched against: the
	// phase's, its p99 bound less the phase's p99 with no load (the room
	// the phase leaves). Results before it was recorded searched the bare
	// server against the phase's own objective and read the model's
	// utilization off its steps.
	SLO string `json:"slo,omitempty"`
	// Steps are the bare server's; a step's CPU is the whole machine's,
	// under the component "machine".
	Steps []CapacityStep `json:"steps"`
	// MaxRate is the highest rate at which the bare server met SLO.
	MaxRate float64 `json:"max_rate"`
	// KneeBusy is the share of the cores (0–1) busy at MaxRate: the
	// median over the attempts that passed there.
	KneeBusy float64 `json:"knee_busy"`
	// Utilization is the share of the cores the model let the phase's
	// requests keep busy: KneeBusy (model.RuleBox). 0 when the bare
	// server gave none.
	Utilization float64 `json:"utilization,omitempty"`
	// PhaseShare is the phase's capacity as a share of MaxRate, two
	// searches made minutes apart on one machine: a machine that runs
	// slower or faster moves both rates, less their ratio. It is not a
	// ratio of costs: the bare server spends its own HTTP handling on top
	// of the phase's CPU per request, and the phase's requests may cost
	// less than that (phase 1's, answered from the app's cache). 0 when
	// either found none.
	PhaseShare float64 `json:"phase_share,omitempty"`
}

// CapacityHop is one process behind the bare server.
type CapacityHop struct {
	// Name is the tier it stands for.
	Name string `json:"name"`
	// WorkUS is the CPU it spends on each request, in µs.
	WorkUS float64 `json:"work_us"`
	// Threads is its GOMAXPROCS; 0: every core.
	Threads int `json:"threads,omitempty"`
}

// BoxMachine is the component that holds a CapacityBox step's CPU: the
// whole machine's.
const BoxMachine = "machine"

// CapacityStep is one step of the search: a constant arrival rate held long
// enough to be steady.
type CapacityStep struct {
	// Offered and Achieved are the scheduled and completed requests per
	// second.
	Offered  float64 `json:"offered"`
	Achieved float64 `json:"achieved"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
	// ErrorRate is errors as a fraction of completed requests.
	ErrorRate float64 `json:"error_rate"`
	// Dropped counts arrivals that found no free worker and were never
	// sent.
	Dropped int64 `json:"dropped"`
	// CPUUSPerRequest is each component's CPU time (user plus system)
	// during the step divided by the requests completed in it, in
	// microseconds.
	CPUUSPerRequest map[string]float64 `json:"cpu_us_per_request"`
	// OtherCores is how many cores the rest of the machine kept busy
	// during the step, outside the topology and the load generator (other
	// users of a shared box): the machine's busy time from /proc/stat less
	// every measured component's, per second. Optional.
	OtherCores *float64 `json:"other_cores,omitempty"`
	// Retried marks an attempt that the search measured again at the same
	// rate (the next step, or a recheck at the search's end): a failed one,
	// or a pass without room to spare, on the way to a majority of votes;
	// the rate's verdict is its last attempt's, which agrees with that
	// majority. Retried steps are left out of the demands.
	Retried bool `json:"retried,omitempty"`
	// GeneratorLate counts arrivals the load generator's own pacer sent
	// late (past the executor's MaxDelay): a stall of the generator or of
	// the whole machine, not of the system under test. Optional.
	GeneratorLate int64 `json:"generator_late,omitempty"`
	// MachinePausedMS is how long the whole machine was stopped during
	// the step, in milliseconds: every CPU at once ran nothing of ours,
	// as when a virtual machine's host takes its vCPUs away (seen by a
	// probe at real-time priority, internal/pauses). Optional: absent
	// when the pauses were not measured.
	MachinePausedMS *float64 `json:"machine_paused_ms,omitempty"`
	// MachinePauseMaxMS is the longest of those pauses, in milliseconds.
	MachinePauseMaxMS *float64 `json:"machine_pause_max_ms,omitempty"`
	// ErrorsByClass counts the step's failed requests by class, as the
	// load generator names them ("timeout", "connection reset",
	// "http 503"...): what broke the SLO when errors did. Optional.
	ErrorsByClass map[string]int64 `json:"errors_by_class,omitempty"`
	// DBPoolWaitUSPerRequest is the time the step's requests waited for a
	// database connection in the apps' pools, summed over the pools and
	// divided by the requests completed, in microseconds; DBPoolInUse is
	// the fullest pool's mean share of its connections in use (0–1).
	// Optional: absent when the apps export no pool (the bare server).
	DBPoolWaitUSPerRequest *float64 `json:"db_pool_wait_us_per_request,omitempty"`
	DBPoolInUse            *float64 `json:"db_pool_in_use,omitempty"`
}

// SaturatedShare is the share of the cores busy (BusyCores) from which a
// step counts as saturated: below it, a failure is latency spikes or a
// stall with cores to spare (the capacity search re-measures a stalled
// step; the report says the SLO broke before the cores ran out).
const SaturatedShare = 0.85

// BusyCores is how many cores the step kept busy: every measured
// component's CPU per request times the requests completed per second,
// plus the other work on the machine when it was measured.
func (s CapacityStep) BusyCores() float64 {
	busy := 0.0
	for _, us := range s.CPUUSPerRequest {
		busy += us * s.Achieved / 1e6
	}
	if s.OtherCores != nil {
		busy += *s.OtherCores
	}
	return busy
}

// CapacityModel names the queueing model behind PredictedMaxRate and the
// numbers it was given.
type CapacityModel struct {
	Name string `json:"name"`
	// Bottleneck is the resource the model says runs out first.
	Bottleneck string `json:"bottleneck,omitempty"`
	// Inputs are the model's inputs by name, e.g. "cores", "total_demand_s",
	// "max_rate.redis".
	Inputs map[string]float64 `json:"inputs"`
}

// DemandsMethod values.
const (
	// MethodRegression fits each component's busy cores against the
	// achieved rate over the steps (the utilization law U = B + D·X): the
	// slope D is the demand, the intercept B the background.
	MethodRegression = "regression of CPU seconds per second on requests per second, steps at or below the knee"
	// MethodRatio is the median of the steps' CPU per request, used when
	// the steps cannot support a fit.
	MethodRatio = "median of the per-step CPU per request, steps at or below the knee"
)

// Demands is what ComputeDemands returns.
type Demands struct {
	// PerRequest is CPU seconds per request by component.
	PerRequest map[string]float64
	// Background is cores busy at no load by component (0 with MethodRatio).
	Background map[string]float64
	// Method is MethodRegression or MethodRatio.
	Method string
	// Steps is how many steps were used.
	Steps int
	// Ratio lists the components whose demand is their median ratio
	// although Method is the regression (too few steps measured them, or
	// their fit had no positive slope).
	Ratio []string
}

// ComputeDemands derives each component's CPU demand per request from the
// steps at or below the knee (offered ≤ maxRate, and something achieved).
//
// It fits a line through each component's busy cores (CPU seconds per
// second: cpu_us_per_request × achieved) against the achieved rate, the
// utilization law with an intercept, by least squares. A regression rather
// than the per-step ratio because a component has a fixed cost per second
// as well as a cost per request (Prometheus scrapes it, the replicas stream
// WAL, timers fire): divided by the rate, that fixed cost inflates the
// ratio at low rates and shrinks it at high ones, and the ratio of any one
// step mixes the two; the slope is what one more request costs, which is
// what capacity and planning need, and the intercept is kept as the
// background. Steps above the knee are left out because saturated
// components spend CPU on contention (spinning, context switches, retries)
// that the linear law does not describe.
//
// With fewer than three usable steps, or rates too close together to fit
// (the highest achieved rate less than twice the lowest: a fixed cost and a
// cost per request cannot be told apart over a narrower range, and on a
// shared machine a few percent of noise then gives slopes of either sign),
// the fit is noise, and the median of the per-step ratios is used instead, with no
// background. A component whose fit comes out with a negative intercept is
// refitted through the origin (a negative background is noise); one with a
// negative or zero slope falls back to the median ratio.
func ComputeDemands(steps []CapacityStep, maxRate float64) (Demands, error) {
	var use []CapacityStep
	for _, s := range steps {
		if s.Offered <= maxRate && s.Achieved > 0 && !s.Retried {
			use = append(use, s)
		}
	}
	if len(use) == 0 {
		return Demands{}, errors.New("compute demands: no step at or below the knee completed any request")
	}
	names := map[string]bool{}
	for _, s := range use {
		for name := range s.CPUUSPerRequest {
			names[name] = true
		}
	}
	d := Demands{
		PerRequest: map[string]float64{},
		Background: map[string]float64{},
		Method:     MethodRegression,
		Steps:      len(use),
	}
	minX, maxX := use[0].Achieved, use[0].Achieved
	for _, s := range use {
		minX, maxX = min(minX, s.Achieved), max(maxX, s.Achieved)
	}
	if len(use) < 3 || maxX < 2*minX {
		d.Method = MethodRatio
	}
	for _, name := range slices.Sorted(maps.Keys(names)) {
		xs := make([]float64, 0, len(use))
		ys := make([]float64, 0, len(use))
		ratios := make([]float64, 0, len(use))
		for _, s := range use {
			us, ok := s.CPUUSPerRequest[name]
			if !ok {
				continue
			}
			if us < 0 {
				return Demands{}, fmt.Errorf("compute demands: %s: negative CPU per request %v at %v/s", name, us, s.Offered)
			}
			xs = append(xs, s.Achieved)
			ys = append(ys, us*1e-6*s.Achieved)
			ratios = append(ratios, us*1e-6)
		}
		if d.Method == MethodRatio {
			d.PerRequest[name] = median(ratios)
			continue
		}
		slope, icept := fitLine(xs, ys)
		if icept < 0 {
			slope, icept = fitOrigin(xs, ys), 0
		}
		if slope <= 0 || len(xs) < 3 {
			// Too few points for this component, or noise: its median
			// ratio is the honest figure.
			d.PerRequest[name] = median(ratios)
			d.Ratio = append(d.Ratio, name)
			continue
		}
		d.PerRequest[name] = slope
		if icept > 0 {
			d.Background[name] = icept
		}
	}
	return d, nil
}

// fitLine is the least-squares line y = a·x + b.
func fitLine(xs, ys []float64) (a, b float64) {
	n := float64(len(xs))
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx /= n
	my /= n
	var sxy, sxx float64
	for i := range xs {
		sxy += (xs[i] - mx) * (ys[i] - my)
		sxx += (xs[i] - mx) * (xs[i] - mx)
	}
	if sxx == 0 {
		return 0, my
	}
	a = sxy / sxx
	return a, my - a*mx
}

// fitOrigin is the least-squares line through the origin, y = a·x.
func fitOrigin(xs, ys []float64) float64 {
	var sxy, sxx float64
	for i := range xs {
		sxy += xs[i] * ys[i]
		sxx += xs[i] * xs[i]
	}
	if sxx == 0 {
		return 0
	}
	return sxy / sxx
}
