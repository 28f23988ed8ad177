package lab

import (
	"context"
	"fmt"
	"math"
	"time"

	"scalelab/internal/burn"
	"scalelab/internal/pauses"
	"scalelab/loadgen"
	"scalelab/model"
	"scalelab/reports"
)

// boxMaxSteps bounds the bare server's search: it starts at 40% of the
// cores (its HTTP work on top of the set CPU makes that nearer 55%) and
// grows by a quarter, so four or five steps reach its knee and three
// bisect it, with room for retries.
const boxMaxSteps = 16

// boxPolicy is the bare server's search: the phase's policy (its
// precision, retries and pause rule), started at 40% of what the cores
// could serve at its cost per request and grown by 25% a step, so that it
// spends its steps near the knee rather than climbing to it from 250/s.
func boxPolicy(p SearchPolicy, perRequest float64) SearchPolicy {
	p.Start = roundSig3(0.4 * float64(p.Cores) / perRequest)
	p.Factor = 1.25
	p.Floor = p.Start / 8
	p.MaxSteps = min(p.MaxSteps, boxMaxSteps)
	return p
}

// searchBox is the machine's own ceiling: a capacity search, with the
// phase's objective and load generator, of a bare server (scalelab
// burn-server, internal/burn) spending work of CPU on every request.
// c.Policy.Cores is the machine's (Capacity sets it).
// loadgenDemand is the generator's CPU seconds per request in the phase,
// for where to start.
func (s *Session) searchBox(ctx context.Context, c CapacityConfig, work, loadgenDemand float64, probe *pauses.Watcher) (*reports.CapacityBox, error) {
	workDur := time.Duration(math.Round(work*1e6)) * time.Microsecond
	srv, err := burn.Start(ctx, []string{s.cfg.Binary, "burn-server", "--listen", "127.0.0.1:0", "--work", workDur.String()}, s.log)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	policy := boxPolicy(c.Policy, work+loadgenDemand)
	fmt.Fprintf(s.out, "the machine's own ceiling: a bare server spending %s of CPU per request, from %.0f/s\n", workDur, policy.Start)
	measure := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		return s.measureBox(ctx, srv.URL, rate, c)
	}
	steps, maxRate, err := s.search(ctx, c, policy, probe, measure)
	if err != nil {
		return nil, fmt.Errorf("the bare server's search: %w", err)
	}
	box := &reports.CapacityBox{WorkUS: work * 1e6, MaxRate: maxRate}
	for _, st := range steps {
		box.Steps = append(box.Steps, st.Step)
		if st.Pass && st.Step.Offered == maxRate {
			box.KneeBusy = st.Step.BusyCores() / float64(policy.Cores)
		}
	}
	return box, nil
}

// boxOp is the bare server's whole load: one GET.
func boxOp() loadgen.Op {
	return loadgen.Op{Name: "GET /", Weight: 1, Do: func(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
		_, err := c.Do(&loadgen.Request{Name: "GET /", Path: "/"})
		return err
	}}
}

// measureBox holds rate against the bare server at url for one step. The
// step's CPU is the whole machine's busy time (/proc/stat), under
// reports.BoxMachine.
func (s *Session) measureBox(ctx context.Context, url string, rate float64, c CapacityConfig) (reports.CapacityStep, error) {
	before, err := machineBusy()
	if err != nil {
		return reports.CapacityStep{}, err
	}
	lr, err := loadgen.Run(ctx, loadgen.Config{
		Target: url, Ops: []loadgen.Op{boxOp()}, Seed: s.cfg.Seed, Timeout: 10 * time.Second,
		Executor: loadgen.ConstantArrivalRate{Rate: rate, Duration: c.Step, Pool: stepPool(s.sc, rate, c.SLO)},
	})
	if err != nil {
		return reports.CapacityStep{}, fmt.Errorf("load the bare server at %.0f/s: %w", rate, err)
	}
	after, err := machineBusy()
	if err != nil {
		return reports.CapacityStep{}, err
	}
	st := loadStep(rate, lr)
	if lr.Total.Count > 0 {
		st.CPUUSPerRequest[reports.BoxMachine] = (after - before) / float64(lr.Total.Count) * 1e6
	}
	return st, nil
}

// boxUtilization is the share of the cores the model lets the phase's
// requests use, read off the bare server's curve (model.CurveUtilization):
// its steps that were not retried, busy share against p99, at the phase's
// zero-load p99 p0 and the objective's bound, both in ms.
func boxUtilization(box *reports.CapacityBox, cores int, p0, slo float64) (float64, bool) {
	var pts []model.CurvePoint
	for _, st := range box.Steps {
		if !st.Retried && st.Achieved > 0 {
			pts = append(pts, model.CurvePoint{Busy: st.BusyCores() / float64(cores), P99: st.P99MS})
		}
	}
	return model.CurveUtilization(pts, p0, slo)
}
