package lab

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/mattn/go-sqlite3" // the "sqlite3" driver, for measuring phase 1's database

	"scalelab/internal/pauses"
	"scalelab/internal/stats"
	"scalelab/loadgen"
	"scalelab/model"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

// SLO is what every step of a capacity search is judged against.
type SLO struct {
	// P99 bounds the p99 latency of all requests.
	P99 time.Duration
	// MaxLost is the largest share of offered arrivals that may fail or be
	// dropped (0.001: 0.1%).
	MaxLost float64
	// MinAchieved is the smallest share of the offered rate that must
	// complete (0.95).
	MinAchieved float64
}

// DefaultSLO is the SLO for sc: its p99 threshold on all requests when it
// has one, else 50 ms; at most 0.1% of arrivals lost to errors or drops;
// at least 95% of the offered rate achieved.
func DefaultSLO(sc *scenarios.Scenario) SLO {
	slo := SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	for _, t := range sc.Thresholds {
		if t.Op == "" && t.Metric == scenarios.MetricP99 && (t.Cmp == "<" || t.Cmp == "<=") {
			slo.P99 = t.Latency
		}
	}
	return slo
}

// ParseSLO reads the latency bound of an SLO, "p99<50ms" (spaces allowed),
// into base: the error and achieved-rate parts stay base's.
func ParseSLO(s string, base SLO) (SLO, error) {
	t, err := scenarios.ParseThreshold(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		return base, fmt.Errorf("slo: %w", err)
	}
	if t.Op != "" || t.Metric != scenarios.MetricP99 || (t.Cmp != "<" && t.Cmp != "<=") {
		return base, fmt.Errorf("slo %q: want a bound on the p99 of all requests, such as p99<50ms", s)
	}
	base.P99 = t.Latency
	return base, nil
}

// String is the SLO as result.json's capacity.slo records it.
func (o SLO) String() string {
	return fmt.Sprintf("p99<%s, errors+dropped<=%g%%, achieved>=%g%% of offered", o.P99, 100*o.MaxLost, 100*o.MinAchieved)
}

// Verdict is a step judged against an SLO.
type Verdict struct {
	Pass bool
	// Clear is a pass with room to spare, within half of each bound: p99
	// within half the bound, the arrivals lost within half the budget, and
	// what is short of the offered rate within half of what may be. One
	// such step settles its rate (SearchPolicy.Votes).
	Clear bool
	// Why is the first broken part of the SLO when Pass is false.
	Why string
}

// Judge says whether step s met the SLO, and if not, why (the first broken
// part). Errors and drops are counted against the arrivals offered in the
// step (offered rate × duration), so a step that dropped most of its load
// cannot pass on the few requests it sent.
func (o SLO) Judge(s reports.CapacityStep, d time.Duration) Verdict {
	bound := float64(o.P99) / float64(time.Millisecond)
	if s.P99MS > bound {
		return Verdict{Why: fmt.Sprintf("p99 %.1f ms > %s", s.P99MS, o.P99)}
	}
	if s.Offered*d.Seconds() <= 0 {
		return Verdict{Why: "nothing offered"}
	}
	lost := arrivalsLost(s, d)
	if lost > o.MaxLost {
		return Verdict{Why: fmt.Sprintf("errors+dropped %.2f%% > %g%%", 100*lost, 100*o.MaxLost)}
	}
	if s.Achieved < o.MinAchieved*s.Offered {
		return Verdict{Why: fmt.Sprintf("achieved %.0f/s < %g%% of %.0f/s", s.Achieved, 100*o.MinAchieved, s.Offered)}
	}
	short := 1 - s.Achieved/s.Offered
	return Verdict{Pass: true, Clear: s.P99MS <= bound/2 && lost <= o.MaxLost/2 && short <= (1-o.MinAchieved)/2}
}

// arrivalsLost is the share of the arrivals offered in step s, held for d,
// that failed or were dropped: what the SLO's MaxLost bounds. s.Offered × d
// must be positive.
func arrivalsLost(s reports.CapacityStep, d time.Duration) float64 {
	return (s.ErrorRate*s.Achieved*d.Seconds() + float64(s.Dropped)) / (s.Offered * d.Seconds())
}

// SearchPolicy is how a capacity search picks its rates.
type SearchPolicy struct {
	// Start is the first rate tried, requests per second.
	Start float64
	// Factor multiplies the rate after a pass until a step fails (and
	// divides it after a fail while nothing has passed yet); > 1.
	Factor float64
	// Precision ends the bisection once the first failing rate is within
	// this fraction of the last passing one (0.05: 5%).
	Precision float64
	// MaxSteps bounds the steps measured, growth and bisection together.
	MaxSteps int
	// Floor is the lowest rate worth trying; a search whose every step
	// failed down to it reports no capacity.
	Floor float64
	// Votes is how many times, at most, a rate is measured before it is
	// judged: the majority of its attempts decides, and the search stops
	// measuring it as soon as one verdict has that majority (two of
	// three). A first step that passes with room to spare (Verdict.Clear)
	// settles its rate at once, so rates far below the knee cost one step;
	// after a failure, or in a recheck, a clear pass is one vote like any
	// other. Near the knee one step says little on a shared box: on the
	// 2-core test box one rate gave p99s of 138, 202, 175, 123, 108 and 37
	// ms in six steps, and a search that took the first pass it saw
	// (failures measured again, passes not) ended on the highest lucky
	// pass, so two searches of one phase in a row came 14 to 26% apart.
	// Every attempt but a rate's last stays in the steps, marked Retried
	// (the last one always agrees with the verdict). 1: one step decides.
	Votes int
	// StallRetries is how many more times a failed step is measured when
	// the load generator's own pacer sent arrivals late during it
	// (GeneratorLate): the machine stalled, so the step says nothing about
	// the system under test. These attempts are no votes (Votes) and are
	// marked Retried too. Seen on the 2-core test box: a stall of
	// about 19 s failed two 10 s steps at 500/s in a row, which a search
	// without them reported as phase 1's capacity (485/s, against 6,500/s
	// a few minutes before). A step whose cores were busy
	// (reports.SaturatedShare of Cores, or more) is saturated, not
	// stalled: there the pacer is late because the system under test
	// takes the cores, and the step counts.
	StallRetries int
	// Cores is the machine's, for telling a stall from saturation; 0:
	// every late step counts as stalled.
	Cores int
	// PauseStall is how long the whole machine must have been paused
	// during a failed step (CapacityStep.MachinePausedMS, all its pauses
	// together) for the step to count as stalled too, whatever the cores'
	// load: a pause of s at utilization ρ keeps the queue standing for
	// s/(1−ρ), so at 85% of the cores 10 ms of pauses hold requests for
	// about 70 ms, and on the 2-core test box such pauses came every few
	// seconds to half a minute (internal/pauses). 0: pauses never count.
	PauseStall time.Duration
	// OverloadLoss is the share of a failed step's offered arrivals that,
	// lost (failed, dropped or never sent) with the cores saturated
	// (reports.SaturatedShare of Cores), makes the step an overload
	// whatever paused the machine in it: it is then no stall, and counts.
	// On the 2-core test box, searches spent two more steps on each of
	// phase 1 at 12,000/s (9% of requests failed, the machine paused for
	// 20 and 64 ms) and phase 2 at 16,000/s (17 to 40% failed), far past
	// their knees near 9,000 and 10,500/s. 0: a paused step is always
	// stalled.
	OverloadLoss float64
	// Recheck is how many of the failed rates the search measures again
	// at its end, when it would otherwise stop: the lowest failed rate,
	// above the highest pass, gets a vote of its own (Votes) apart from its
	// first attempts, which came back to back: a disturbance that lasts
	// longer than two steps (seen on the 2-core test box: phase 4 failed
	// twice at 2,000/s with p99s of 252 and 52 ms, then passed 1,940/s with
	// 23 ms and never went back) fails them all. A rate that passes its
	// recheck is a pass, and the search goes on above it; one that fails
	// it is the knee. Each rate is rechecked at most once.
	Recheck int
}

// stalled reports whether step s failed for a stall of the machine: the
// machine was paused for PauseStall or more during it, or its load
// generator sent arrivals late while the cores had room; but not when it
// lost OverloadLoss of its arrivals or more with the cores saturated.
func (p SearchPolicy) stalled(s reports.CapacityStep) bool {
	saturated := p.Cores > 0 && s.BusyCores() >= reports.SaturatedShare*float64(p.Cores)
	if saturated && p.OverloadLoss > 0 && lostShare(s) >= p.OverloadLoss {
		return false
	}
	if p.paused(s) {
		return true
	}
	return s.GeneratorLate > 0 && !saturated
}

// lostShare is the share of step s's offered arrivals that did not end in
// an answer: failed, dropped, or never sent.
func lostShare(s reports.CapacityStep) float64 {
	if s.Offered <= 0 {
		return 1
	}
	return 1 - (1-s.ErrorRate)*s.Achieved/s.Offered
}

// paused reports whether the machine was paused for PauseStall or more
// during step s.
func (p SearchPolicy) paused(s reports.CapacityStep) bool {
	return p.PauseStall > 0 && s.MachinePausedMS != nil && *s.MachinePausedMS >= float64(p.PauseStall)/float64(time.Millisecond)
}

// DefaultPolicy starts at 250/s, doubles until the SLO fails, then bisects
// to within 5%: about six growth steps and five bisection steps reach a
// knee anywhere from 250/s to 8,000/s. A rate is judged by the majority of
// up to three attempts (one, when it passes with room to spare); an
// attempt that failed while the machine stalled or was paused for 10 ms or
// more is measured again without counting, up to twice; at the end, the
// lowest failed rate gets one more vote. A step that lost 5% of its
// arrivals or more with the cores saturated is never a stall. The votes
// take steps too: 28 leave room for them.
func DefaultPolicy() SearchPolicy {
	return SearchPolicy{Start: 250, Factor: 2, Precision: 0.05, MaxSteps: 28, Floor: 10, Votes: 3, StallRetries: 2, PauseStall: 10 * time.Millisecond, OverloadLoss: 0.05, Recheck: 1}
}

// SearchStep is one measured step and its verdict.
type SearchStep struct {
	Step reports.CapacityStep
	Pass bool
	// Why is the broken part of the SLO when Pass is false.
	Why string
}

// Search finds the highest rate at which judge passes: it measures at
// p.Start and multiplies the rate by p.Factor after each rate that passed
// until one fails, then bisects between the highest pass and the lowest
// fail (the midpoint to three significant digits) until they are within
// p.Precision of each other (or p.MaxSteps are spent). If the first rate
// fails it divides by p.Factor until one passes or the rate goes below
// p.Floor. Each rate is judged by the majority of up to p.Votes attempts,
// or at once by a first attempt that passes with room to spare
// (Verdict.Clear); an attempt that failed while the machine stalled
// (p.stalled) is measured again without counting, up to p.StallRetries
// times a rate. Where the search would stop, it votes once more on the
// lowest failed rate, up to p.Recheck times (each rate once): if it passes
// now, the search goes on between it and the next failed rate above
// (growing again if there is none). It returns every step in the order
// measured, each attempt but a rate's last marked Retried, and the highest
// passing rate (0 when none passed).
func Search(ctx context.Context, p SearchPolicy, measure func(ctx context.Context, rate float64) (reports.CapacityStep, error), judge func(reports.CapacityStep) Verdict) ([]SearchStep, float64, error) {
	if p.Start <= 0 || p.Factor <= 1 || p.MaxSteps < 1 || p.Precision <= 0 {
		return nil, 0, fmt.Errorf("capacity search: invalid policy %+v", p)
	}
	votes := max(1, p.Votes)
	majority := votes/2 + 1
	var steps []SearchStep
	pass := 0.0
	// The rates that counted as failed: every one is above pass (each
	// rate tried lies between pass and the lowest of them, or is that
	// lowest one, rechecked), so the lowest is the bisection's upper end.
	var failed []float64
	rechecked := map[float64]bool{} // the failed rates voted on again at the end
	rate := p.Start
	passes, fails, stalls := 0, 0, 0 // this rate's attempts so far
	recheck := false                 // this vote is a recheck
	for len(steps) < p.MaxSteps {
		if err := ctx.Err(); err != nil {
			return steps, pass, err
		}
		s, err := measure(ctx, rate)
		if err != nil {
			return steps, pass, fmt.Errorf("measure at %.0f/s: %w", rate, err)
		}
		v := judge(s)
		lastStep := len(steps)+1 >= p.MaxSteps
		if !v.Pass && !lastStep && stalls < p.StallRetries && p.stalled(s) {
			stalls++
			s.Retried = true
			steps = append(steps, SearchStep{Step: s, Why: v.Why + " (the machine stalled: measured again)"})
			continue
		}
		if v.Pass {
			passes++
		} else {
			fails++
		}
		// A clear pass settles a rate that has not failed a vote, outside
		// a recheck: after a failure it is one lucky attempt among others
		// (phase 3 on the 2-core test box: four failures at 4,130/s, p99
		// 54 to 98 ms, then one at 19 ms).
		settled := v.Clear && fails == 0 && !recheck
		// Undecided: no majority yet, not settled, votes and steps left.
		if !settled && passes < majority && fails < majority && passes+fails < votes && !lastStep {
			s.Retried = true
			why := v.Why + " (measured again)"
			switch {
			case v.Pass && !v.Clear:
				why = "passed without room to spare (measured again)"
			case v.Pass:
				why = "passed, after a failed attempt or in a recheck (measured again)"
			}
			steps = append(steps, SearchStep{Step: s, Pass: v.Pass, Why: why})
			continue
		}
		// Decided, and by this attempt: the one that made the majority,
		// settled the rate, or came last.
		passes, fails, stalls = 0, 0, 0
		if recheck {
			// The attempt that counted before is a retried one now.
			for i := range steps {
				if steps[i].Step.Offered == rate && !steps[i].Step.Retried {
					steps[i].Step.Retried = true
					steps[i].Why += " (measured again at the end of the search)"
				}
			}
			recheck = false
		}
		steps = append(steps, SearchStep{Step: s, Pass: v.Pass, Why: v.Why})
		if v.Pass {
			pass = max(pass, rate)
			failed = slices.DeleteFunc(failed, func(f float64) bool { return f == rate })
		} else if !slices.Contains(failed, rate) {
			failed = append(failed, rate)
		}
		fail := math.Inf(1)
		if len(failed) > 0 {
			fail = slices.Min(failed)
		}
		switch {
		case math.IsInf(fail, 1):
			rate *= p.Factor
		case pass == 0:
			rate /= p.Factor
			if rate < p.Floor {
				return steps, 0, nil
			}
		case (fail-pass)/pass <= p.Precision:
			if len(rechecked) >= p.Recheck || rechecked[fail] {
				return steps, pass, nil
			}
			rechecked[fail] = true
			rate, recheck = fail, true
		default:
			rate = roundSig3((pass + fail) / 2)
		}
	}
	return steps, pass, nil
}

// lowLoad is the latency with no load to speak of, for the model's
// utilization at the SLO (model.SLOUtilization): the median p50 and the
// median p99 of the three lowest-rate steps that passed, retried attempts
// left out. It needs at least one such step below maxRate.
//
// The p99 is the measured one. It used to be derived from the p50 as an
// M/M/1 queue's (6.64 times it), on the grounds that the measured p99 at
// low rates had stalls in it that do not grow with the load; those stalls
// were the load generator's own pacer (loadgen's fineSleep), and with them
// gone the measured tail is the system's: phase 4's is 10 ms at 250/s
// where its p50 of 0.27 ms implied 1.8 ms, and the derived figure let the
// model fill 96% of the cores where the knee came at 80%.
func lowLoad(steps []reports.CapacityStep, maxRate float64) (p50, p99 float64, ok bool) {
	var low []reports.CapacityStep
	for _, s := range steps {
		if !s.Retried && s.Offered < maxRate {
			low = append(low, s)
		}
	}
	slices.SortFunc(low, func(a, b reports.CapacityStep) int { return cmp.Compare(a.Offered, b.Offered) })
	var p50s, p99s []float64
	for _, s := range low {
		if len(p50s) == 3 {
			break
		}
		p50s = append(p50s, s.P50MS)
		p99s = append(p99s, s.P99MS)
	}
	if len(p50s) == 0 {
		return 0, 0, false
	}
	return stats.Quantile(p50s, 0.5), stats.Quantile(p99s, 0.5), true
}

// boxSLO is the objective the bare server is searched against: the
// phase's, its p99 bound less p0, the phase's p99 with no load, rounded
// down to the tenth of a millisecond. The bare server's p99 with no load is
// a fraction of a millisecond, so what it adds to it under load is, within
// that, the wait the machine puts on a request at that utilization, and
// the phase stays within its objective while its own wait does not exceed
// that room. ok is false with no p99 bound, or less than a millisecond of
// room.
func boxSLO(o SLO, p0 float64) (room SLO, ok bool) {
	left := o.P99 - time.Duration(p0*float64(time.Millisecond))
	if o.P99 <= 0 || left < time.Millisecond {
		return o, false
	}
	o.P99 = left.Truncate(100 * time.Microsecond)
	return o, true
}

// roundSig3 rounds a rate to three significant digits (1187.5 to 1190,
// 16.3125 to 16.3): rates that read well, without a bisection at low
// rates landing on a whole number next to the last pass.
func roundSig3(x float64) float64 {
	if x <= 0 {
		return x
	}
	p := math.Pow(10, 2-math.Floor(math.Log10(x)))
	return math.Round(x*p) / p
}

// CapacityConfig is one capacity search on a Session.
type CapacityConfig struct {
	SLO    SLO
	Policy SearchPolicy
	// Step is how long each rate is held; default 10s.
	Step time.Duration
	// Settle is the pause after a failed step, for the queues it left to
	// drain before the next one; default 2s.
	Settle time.Duration
	// NoBox skips the machine's own ceiling: the search of a bare server
	// after the phase's (searchBox), against the room the phase leaves in
	// the objective (boxSLO), whose knee gives the model the share of the
	// cores requests may use (model.RuleBox). Without it the model takes
	// that share from the M/M/1 rule (model.SLOUtilization).
	NoBox bool
	// BoxChain makes the bare server a chain of processes, one per tier a
	// request goes through, each spending its tier's demand (boxPath),
	// rather than one process spending them all: whether the hops
	// themselves (a process to wake per tier) lower the share of the cores
	// requests can use.
	BoxChain bool
}

// stepPool is the load generator's pool for a capacity step at rate: as
// many requests in flight as the SLO's latency bound lets a request take
// at that rate (Little's law: rate × bound), or the scenario's max_workers
// if that is more. With fewer, a pause shorter than the bound leaves no
// worker free, and the arrivals it drops fail the step's drop budget: the
// generator's cap, not the system under test, would set the knee (the
// read-heavy scenario's 256 workers are 18 ms of requests at 14,000/s;
// phase 2's published search broke there, on drops, with p99 40 ms).
func stepPool(sc *scenarios.Scenario, rate float64, slo SLO) loadgen.Pool {
	p := pool(sc)
	if slo.P99 > 0 {
		p.MaxWorkers = max(p.Limit(), int(math.Ceil(rate*slo.P99.Seconds())))
	}
	return p
}

// loadgenName is the load generator's component name in the steps' CPU.
const loadgenName = model.Loadgen

// Capacity runs a capacity search on the seeded, warmed-up topology: each
// step is MeasureRate at one rate, its CPU sampled per component (and this
// process's own, from getrusage, as the load generator "loadgen"). The
// result is the knee step's run (the highest passing rate; the lowest
// step when none passed) with the SLO's parts as its thresholds, and the
// capacity section: the steps, the knee, the demands below it, the model's
// prediction for this machine's cores and the database's bytes per user.
func (s *Session) Capacity(ctx context.Context, c CapacityConfig) (reports.Result, error) {
	if c.Policy.Cores == 0 {
		c.Policy.Cores = runtime.NumCPU() // the machine the topology and the generator share
	}
	if c.Step <= 0 {
		c.Step = 10 * time.Second
	}
	if c.Settle <= 0 {
		c.Settle = 2 * time.Second
	}
	fmt.Fprintf(s.out, "capacity search: %s; steps of %s\n", c.SLO, c.Step)
	probe, pauseNote := s.startPauseProbe(ctx)
	if probe != nil {
		defer probe.Stop()
	}
	measured := map[float64]*Measured{}
	measure := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		before, err := selfCPU()
		if err != nil {
			return reports.CapacityStep{}, err
		}
		boxBefore, boxErr := machineBusy()
		m, err := s.measureRate(ctx, rate, c.Step, stepPool(s.sc, rate, c.SLO))
		if err != nil {
			return reports.CapacityStep{}, err
		}
		boxAfter, boxErr2 := machineBusy()
		after, err := selfCPU()
		if err != nil {
			return reports.CapacityStep{}, err
		}
		measured[rate] = m
		st := capacityStep(rate, m, after-before)
		if err := errors.Join(boxErr, boxErr2); err != nil {
			s.log.Warn("reading the machine's busy time failed; the step has no other-work figure", "err", err)
		} else if m.Topology != nil {
			st.OtherCores = reports.Float(otherCores(boxAfter-boxBefore, m, after-before))
		}
		return st, nil
	}
	steps, maxRate, err := s.search(ctx, c, c.Policy, probe, measure)
	if err != nil {
		return reports.Result{}, err
	}
	if len(steps) == 0 {
		return reports.Result{}, errors.New("capacity search: no step measured")
	}
	knee := steps[0]
	for _, st := range steps {
		if st.Pass && st.Step.Offered == maxRate {
			knee = st
		}
	}
	res := s.Result(ctx, measured[knee.Step.Offered])
	res.Thresholds = sloThresholds(c.SLO, knee, c.Step)
	res.Executor = fmt.Sprintf("capacity search of %d steps; below, the knee step: constant-arrival-rate %g/s", len(steps), knee.Step.Offered)
	capy := &reports.Capacity{SLO: c.SLO.String(), MaxRate: maxRate, Demands: map[string]float64{}}
	for _, st := range steps {
		capy.Steps = append(capy.Steps, st.Step)
	}
	if maxRate > 0 {
		d, err := reports.ComputeDemands(capy.Steps, maxRate)
		if err != nil {
			return res, err
		}
		capy.Demands, capy.DemandsMethod = d.PerRequest, d.Method
		if len(d.Background) > 0 {
			capy.BackgroundCores = d.Background
		}
		machine := model.LabMachine(res.Machine.Cores, slices.Collect(maps.Keys(d.PerRequest)))
		if machine.Cores == 0 {
			machine.Cores = runtime.NumCPU()
		}
		for name, b := range d.Background {
			if name != loadgenName {
				machine.Background += b
			}
		}
		other, haveOther := otherWork(capy.Steps, maxRate)
		machine.Background += other
		p50, p0, haveP0 := lowLoad(capy.Steps, maxRate)
		sloMS := float64(c.SLO.P99) / float64(time.Millisecond)
		if haveP0 && c.SLO.P99 > 0 {
			machine.Utilization, machine.UtilizationRule = model.SLOUtilization(p0, sloMS), model.RuleMM1
		}
		room, haveRoom := boxSLO(c.SLO, p0)
		switch {
		case c.NoBox:
		case !haveP0:
			res.Notes = append(res.Notes, "The machine's own ceiling was not searched: no step below the knee passed, so the phase's p99 with no load, which sets the room to search it against, was not measured. The model gives the throughput bound itself (u = 1).")
		case !haveRoom:
			res.Notes = append(res.Notes, fmt.Sprintf("The machine's own ceiling was not searched: the phase's p99 with no load (%.1f ms) left less than a millisecond of the objective to search it against. The model uses %s.", p0, model.RuleMM1))
		default:
			bc := c
			bc.SLO = room
			box, err := s.searchBox(ctx, bc, d.PerRequest, machine.Threads, probe)
			switch {
			case err != nil && ctx.Err() != nil:
				return res, err
			case err != nil:
				s.log.Warn("the machine's own ceiling was not measured", "err", err)
				res.Notes = append(res.Notes, "not measured: the machine's own ceiling (a bare server's search): "+err.Error())
			case box.MaxRate <= 0:
				capy.Box = box
				res.Notes = append(res.Notes, "The bare server met the room the phase leaves in the objective at no rate: the model uses "+model.RuleMM1+".")
			default:
				capy.Box = box
				box.Utilization = box.KneeBusy
				box.PhaseShare = maxRate / box.MaxRate
				machine.Utilization, machine.UtilizationRule = box.KneeBusy, model.RuleBox
			}
		}
		pred, bottleneck, in := model.Predict(d.PerRequest, machine)
		capy.PredictedMaxRate = pred
		capy.Model = reports.CapacityModel{Name: in.Model, Bottleneck: bottleneck, Inputs: in.Flat()}
		if haveOther {
			capy.Model.Inputs["other_work_cores"] = other
		}
		if haveP0 {
			capy.Model.Inputs["low_load_p50_ms"] = p50
			capy.Model.Inputs["low_load_p99_ms"] = p0
		}
	} else {
		res.Notes = append(res.Notes, "No step met the SLO: there is no measured capacity and no demands to model.")
	}
	bytes, err := dataBytesPerUser(ctx, s.top.DatabaseURL)
	if err != nil {
		s.log.Warn("measuring the database's bytes per user failed", "err", err)
		res.Notes = append(res.Notes, "not measured: data bytes per user: "+err.Error())
	}
	capy.DataBytesPerUser = bytes
	res.Capacity = capy
	if pauseNote != "" {
		res.Notes = append(res.Notes, pauseNote)
	}
	res.Notes = append(res.Notes, fmt.Sprintf("Capacity search: %d steps of %s each; the rest of this report is the knee step's run at %.0f/s.", len(steps), c.Step, knee.Step.Offered))
	return res, nil
}

// search is Search with policy p over measure, as both of a capacity
// command's searches (the phase's and the bare server's) run it: after a
// failed step it waits c.Settle for the queues the step left to drain; it
// adds to each step the machine's pauses during it, as probe saw them (when
// there is one), judges it against c.SLO and prints it.
func (s *Session) search(ctx context.Context, c CapacityConfig, p SearchPolicy, probe *pauses.Watcher, measure func(ctx context.Context, rate float64) (reports.CapacityStep, error)) ([]SearchStep, float64, error) {
	judge := func(st reports.CapacityStep) Verdict { return c.SLO.Judge(st, c.Step) }
	lastFailed := false
	step := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		if lastFailed {
			select {
			case <-ctx.Done():
				return reports.CapacityStep{}, ctx.Err()
			case <-time.After(c.Settle):
			}
		}
		begin := time.Now()
		st, err := measure(ctx, rate)
		if err != nil {
			return st, err
		}
		if probe != nil {
			ps := probe.Between(begin, time.Now())
			st.MachinePausedMS, st.MachinePauseMaxMS = reports.Float(ms(ps.Total)), reports.Float(ms(ps.Longest))
		}
		v := judge(st)
		lastFailed = !v.Pass
		fmt.Fprintln(s.out, stepLine(p, st, v))
		return st, nil
	}
	return Search(ctx, p, step, judge)
}

// stepLine is a measured step as the search prints it, with its verdict
// and, when the machine paused or the generator was late, by how much.
func stepLine(p SearchPolicy, st reports.CapacityStep, v Verdict) string {
	verdict := "pass"
	switch {
	case !v.Pass:
		verdict = "FAIL: " + v.Why
	case !v.Clear:
		verdict = "pass, without room to spare"
	}
	switch {
	case p.paused(st):
		verdict += fmt.Sprintf(" (the whole machine was paused for %.0f ms, the longest pause %.0f ms)", *st.MachinePausedMS, *st.MachinePauseMaxMS)
	case p.stalled(st):
		verdict += fmt.Sprintf(" (the load generator itself sent %d arrivals late with cores to spare: the machine stalled)", st.GeneratorLate)
	case st.GeneratorLate > 0:
		verdict += fmt.Sprintf(" (the load generator itself sent %d arrivals late: the cores were busy)", st.GeneratorLate)
	}
	pool := ""
	if st.DBPoolWaitUSPerRequest != nil && st.DBPoolInUse != nil {
		pool = fmt.Sprintf(", db pool %.0f%% in use (%.0f µs wait/request)", 100**st.DBPoolInUse, *st.DBPoolWaitUSPerRequest)
	}
	return fmt.Sprintf("  %.0f/s offered: %.0f/s achieved, p50 %.2f ms, p99 %.2f ms, errors %.3f%%, dropped %d%s: %s",
		st.Offered, st.Achieved, st.P50MS, st.P99MS, 100*st.ErrorRate, st.Dropped, pool, verdict)
}

// startPauseProbe starts the probe that sees the whole machine's pauses
// (internal/pauses), or says why there is none: the steps then have no
// machine_paused_ms, and a pause fails a step like any other stall.
func (s *Session) startPauseProbe(ctx context.Context) (*pauses.Watcher, string) {
	w, err := pauses.Start(ctx, []string{s.cfg.Binary, "pause-probe"}, s.log)
	if err != nil {
		s.log.Warn("the machine's pauses are not measured", "err", err)
		return nil, "not measured: the machine's pauses: " + err.Error()
	}
	if rt, why := w.Realtime(); !rt {
		w.Stop()
		return nil, "not measured: the machine's pauses: the probe needs real-time priority to tell them from the lab's own load (" + why + ")"
	}
	return w, ""
}

// ms is d in milliseconds, to the hundredth.
func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*100) / 100 }

// capacityStep maps one MeasureRate into a step. loadgenCPU is this
// process's CPU seconds during it.
func capacityStep(rate float64, m *Measured, loadgenCPU float64) reports.CapacityStep {
	lr := m.Load
	st := loadStep(rate, lr)
	if lr.Total.Count > 0 {
		per := func(cpu float64) float64 { return cpu / float64(lr.Total.Count) * 1e6 }
		if m.Topology != nil {
			for _, c := range m.Topology.CPU {
				st.CPUUSPerRequest[c.Name] = per(c.Seconds)
			}
			st.DBPoolWaitUSPerRequest, st.DBPoolInUse = poolLoad(m.Topology.Pools, lr.Total.Count)
		}
		st.CPUUSPerRequest[loadgenName] = per(loadgenCPU)
	}
	return st
}

// poolLoad is the apps' pools' part of a step of requests requests: their
// wait per request in microseconds, and the fullest pool's mean share of
// connections in use; nils with no pool.
func poolLoad(pools []topologies.DBPool, requests int64) (waitUS, inUse *float64) {
	if len(pools) == 0 || requests <= 0 {
		return nil, nil
	}
	var wait, full float64
	for _, p := range pools {
		wait += p.WaitS
		if p.MaxOpen > 0 {
			full = max(full, p.InUseMean/p.MaxOpen)
		}
	}
	wait = wait / float64(requests) * 1e6
	return &wait, &full
}

// loadStep is what the load generator measured in a step at rate: the
// operations completed per second, the requests' latency, errors, drops
// and late arrivals, and no CPU yet.
func loadStep(rate float64, lr *loadgen.Result) reports.CapacityStep {
	var ops int64
	for _, o := range lr.Operations {
		ops += o.Count
	}
	p := lr.Total.Percentiles()
	st := reports.CapacityStep{
		Offered: rate, P50MS: p.P50, P99MS: p.P99, Dropped: lr.Dropped, GeneratorLate: lr.Late,
		CPUUSPerRequest: map[string]float64{},
	}
	if len(lr.ErrorsByClass) > 0 {
		st.ErrorsByClass = maps.Clone(lr.ErrorsByClass)
	}
	if secs := lr.Duration.Seconds(); secs > 0 {
		st.Achieved = float64(ops) / secs
	}
	if lr.Total.Count > 0 {
		st.ErrorRate = float64(lr.Total.Errors) / float64(lr.Total.Count)
	}
	return st
}

// sloThresholds are the SLO's three parts judged on the knee step, for the
// report's verdict.
func sloThresholds(o SLO, knee SearchStep, d time.Duration) []reports.ThresholdResult {
	s := knee.Step
	lost, achieved := 0.0, 0.0
	if s.Offered > 0 {
		lost = 100 * arrivalsLost(s, d)
		achieved = 100 * s.Achieved / s.Offered
	}
	maxMS := float64(o.P99) / float64(time.Millisecond)
	return []reports.ThresholdResult{
		{Threshold: fmt.Sprintf("p99 < %s at the knee", o.P99), Pass: s.P99MS <= maxMS, Unit: "ms", Observed: reports.Float(s.P99MS)},
		{Threshold: fmt.Sprintf("errors+dropped <= %g%% at the knee", 100*o.MaxLost), Pass: lost <= 100*o.MaxLost, Unit: "%", Observed: reports.Float(lost)},
		{Threshold: fmt.Sprintf("achieved >= %g%% of offered at the knee", 100*o.MinAchieved), Pass: achieved >= 100*o.MinAchieved, Unit: "%", Observed: reports.Float(achieved)},
	}
}

// otherCores is the cores the rest of the machine kept busy during a step:
// the machine's busy seconds less the topology's and the load generator's,
// per second of the step; never below 0 (the two are read at slightly
// different moments).
func otherCores(busy float64, m *Measured, loadgenCPU float64) float64 {
	secs := m.Topology.End.Sub(m.Topology.Start).Seconds()
	if secs <= 0 {
		return 0
	}
	own := loadgenCPU
	for _, c := range m.Topology.CPU {
		own += c.Seconds
	}
	return max(0, (busy-own)/secs)
}

// kneeSteps is how many of the passing steps nearest the knee otherWork
// looks at.
const kneeSteps = 3

// otherWork is the median of the other cores busy over the (up to
// kneeSteps) passing steps nearest the knee: on a shared machine, cores
// the topology could not have when it reached its knee. Not every step
// below the knee: other users come and go, and the quiet minutes of the
// first, low-rate steps say nothing about what was left at the knee.
func otherWork(steps []reports.CapacityStep, maxRate float64) (float64, bool) {
	var near []reports.CapacityStep
	for _, s := range steps {
		if s.Offered <= maxRate && s.OtherCores != nil && !s.Retried {
			near = append(near, s)
		}
	}
	if len(near) == 0 {
		return 0, false
	}
	slices.SortFunc(near, func(a, b reports.CapacityStep) int { return cmp.Compare(b.Offered, a.Offered) })
	var vs []float64
	for _, s := range near[:min(kneeSteps, len(near))] {
		vs = append(vs, *s.OtherCores)
	}
	return stats.Quantile(vs, 0.5), true
}

// machineBusy is the machine's busy CPU time since boot in seconds, all
// cores summed: /proc/stat's cpu line less idle and iowait.
func machineBusy() (float64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var busy float64
	for i, v := range f[1:] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: field %d %q: %w", i+1, v, err)
		}
		// Fields: user nice system idle iowait irq softirq steal guest
		// guest_nice; guest time is already counted in user.
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		busy += n
	}
	// The kernel counts in USER_HZ ticks, 100 per second on Linux.
	return busy / 100, nil
}

// selfCPU is this process's CPU time so far (user plus system), in
// seconds: the load generator's, with the sampler's small share.
func selfCPU() (float64, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime), nil
}

// dataBytesPerUser is the size of the database's user data (the users and
// records tables with their indexes on PostgreSQL; the whole file less its
// free pages on SQLite, which is almost all users) divided by the users in
// it.
func dataBytesPerUser(ctx context.Context, dsn string) (float64, error) {
	var size, users float64
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		db, err := sql.Open("sqlite3", "file:"+strings.TrimPrefix(dsn, "sqlite:")+"?mode=ro")
		if err != nil {
			return 0, fmt.Errorf("open %s: %w", dsn, err)
		}
		defer db.Close()
		err = db.QueryRowContext(ctx, `SELECT (p.page_count - f.freelist_count) * s.page_size
			FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s`).Scan(&size)
		if err != nil {
			return 0, fmt.Errorf("size of %s: %w", dsn, err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&users); err != nil {
			return 0, fmt.Errorf("count users in %s: %w", dsn, err)
		}
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			return 0, fmt.Errorf("connect to the database: %w", err)
		}
		defer conn.Close(context.Background())
		// pg_partition_tree lists a partitioned table's partitions (and
		// nothing for a plain table); a partitioned parent holds no data.
		err = conn.QueryRow(ctx, `SELECT coalesce(sum(pg_total_relation_size(t.relid)), 0)::float8 FROM (
				SELECT relid FROM pg_partition_tree('users') UNION SELECT 'users'::regclass
				UNION SELECT relid FROM pg_partition_tree('records') UNION SELECT 'records'::regclass) t`).Scan(&size)
		if err != nil {
			return 0, fmt.Errorf("size of the users tables: %w", err)
		}
		if err := conn.QueryRow(ctx, `SELECT count(*)::float8 FROM users`).Scan(&users); err != nil {
			return 0, fmt.Errorf("count users: %w", err)
		}
	default:
		return 0, fmt.Errorf("database %q: neither sqlite: nor postgres://", dsn)
	}
	if users == 0 {
		return 0, errors.New("the users table is empty")
	}
	return size / users, nil
}
