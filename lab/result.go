package lab

import (
	"fmt"
	"math"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

type resultInput struct {
	phase        int
	topology     string
	scenario     *scenarios.Scenario
	argv         []string
	machine      reports.Machine
	load         *loadgen.Result
	measurements *topologies.Measurements // nil when sampling failed
	// target is set for a run against a deployment the lab did not start
	// (target.go); it has no measurements.
	target      *targetInput
	consistency *reports.Consistency // nil when the run did not check
}

// buildResult maps what the load generator and the topology measured into
// the result.json schema.
func buildResult(in resultInput) reports.Result {
	lr, sc := in.load, in.scenario
	d := lr.Duration
	res := reports.Result{
		SchemaVersion:       reports.SchemaVersion,
		Phase:               in.phase,
		Scenario:            sc.Name,
		StartedAt:           lr.Start.UTC(),
		DurationS:           d.Seconds(),
		Machine:             in.machine,
		Command:             reports.CommandLine(in.argv),
		ScenarioDescription: sc.Description,
		Topology:            in.topology,
		Executor:            sc.Executor.String(),
		Keys:                sc.Keys.String(),
		Users:               int64(sc.Users),
		WarmupS:             sc.Warmup.Seconds(),
		Counters:            lr.Counters,
		Replicas:            []reports.Replica{},
		Thresholds:          []reports.ThresholdResult{},
	}
	total := lr.Total
	res.Totals = reports.Totals{
		Requests:      total.Count,
		Errors:        total.Errors,
		Rate:          total.Rate(d),
		Dropped:       lr.Dropped,
		Throttled:     total.Throttled,
		ErrorsByClass: lr.ErrorsByClass,
		LatencyMS:     total.Percentiles(),
	}
	if d > 0 && lr.Offered > 0 {
		res.Totals.OfferedRate = float64(lr.Offered) / d.Seconds()
	}
	for i := range lr.Operations {
		res.Operations = append(res.Operations, operation(lr, &lr.Operations[i]))
	}
	for i := range lr.Requests {
		res.Requests = append(res.Requests, operation(lr, &lr.Requests[i]))
	}
	for _, p := range lr.Series {
		if tail(lr, p.Second) {
			continue
		}
		res.Series = append(res.Series, reports.Second{
			T: p.Second, Requests: p.Requests, Rate: p.Rate(), Offered: p.OfferedRate(),
			Ops: p.Ops, OpRate: p.OpRate(), IntervalS: p.Interval.Seconds(),
			Errors: p.Errors, Throttled: p.Throttled, Dropped: p.Dropped, P50MS: p.P50, P99MS: p.P99,
		})
	}
	res.LatencyDistribution = distribution(total.Latency)
	if lr.StartDelay != nil {
		res.Generator = &reports.Generator{Workers: lr.Workers, Seed: lr.Seed, StartDelayMS: (&loadgen.Stats{Latency: lr.StartDelay}).Percentiles()}
	}

	res.Consistency = in.consistency
	obs := observed(lr)
	obs.Consistency = observedConsistency(in.consistency)
	outcomes, _ := scenarios.Evaluate(sc.Thresholds, obs)
	for _, o := range outcomes {
		tr := reports.ThresholdResult{Threshold: o.Threshold.String(), Pass: o.Pass, Unit: o.Threshold.Metric.Unit()}
		if !o.NoData {
			tr.Observed = reports.Float(o.Value)
		}
		res.Thresholds = append(res.Thresholds, tr)
	}

	if m := in.measurements; m != nil {
		res.Cache = reports.Cache{L1HitRate: hitRate(m.Cache.L1), L2HitRate: hitRate(m.Cache.L2), L3HitRate: hitRate(m.Cache.L3)}
		res.CacheSeries = cacheSeries(m.CacheSeries, lr.Start, len(res.Series))
		for _, r := range m.Replicas {
			res.Replicas = append(res.Replicas, reports.Replica{
				Name: r.Name, LagSP50: r.LagSP50, LagSMax: r.LagSMax,
				VisibleMSP99: r.VisibleMSP99, VisibleMSP50: r.VisibleMSP50, VisibleMSMax: r.VisibleMSMax,
				VisibleProbes: int64(r.VisibleProbes), VisibleTimeouts: int64(r.VisibleTimeouts),
				Series: replicaSeries(r, lr.Start, len(res.Series)),
			})
		}
		for _, b := range m.Backends {
			res.Backends = append(res.Backends, reports.Backend{Name: b.Server, Requests: int64(b.Requests)})
		}
		for _, c := range m.CPU {
			comp := reports.Component{Name: c.Name, CPUS: c.Seconds}
			if n := res.Totals.Requests; n > 0 {
				comp.CPUUSPerRequest = math.Round(c.Seconds/float64(n)*1e7) / 10
			}
			res.Components = append(res.Components, comp)
		}
		res.Queue = queueResult(m.Queue)
		res.Breakers = breakersResult(m.Breakers)
		res.DBPools = dbPoolsResult(m.Pools, res.Totals.Requests, lr.Duration.Seconds())
		for _, p := range m.Problems {
			res.Notes = append(res.Notes, "not measured: "+p)
		}
	}
	res.Notes = append(res.Notes, notes(in, &res)...)
	return res
}

// notes says what a reader must know to read the numbers right.
func notes(in resultInput, res *reports.Result) []string {
	var n []string
	if in.target != nil {
		n = append(n, targetNotes(in.target, res)...)
	} else {
		n = append(n, fmt.Sprintf("The load generator ran in the same process as this command, on the same %d cores as every component: its CPU is taken from the server's.", res.Machine.Cores))
	}
	if in.phase >= 3 {
		n = append(n, "One machine: phase 3 and 4 pay for the load balancer, the extra hops and every extra process on the same cores, so they are not expected to be faster here. Their point is what they would do on many machines; read the per-component CPU seconds as the cost of each tier per request.")
	}
	if res.Cache.L3HitRate != nil {
		n = append(n, "L1 and L2 hit rates count only the requests that got past the CDN tier: with most anonymous reads answered by Varnish, the app instances see mostly first reads of each user, which no cache below can hold yet.")
	}
	if res.Totals.Dropped > 0 {
		n = append(n, fmt.Sprintf("%d arrivals were dropped: no worker was free within the executor's bound, so the server saw less than the offered rate.", res.Totals.Dropped))
	}
	if g := res.Generator; g != nil && res.Totals.LatencyMS.P99 > 0 && g.StartDelayMS.P99 > 0.25*res.Totals.LatencyMS.P99 {
		n = append(n, fmt.Sprintf("The generator's own start delay (p99 %.2f ms) is a sizeable part of the requests' p99 (%.2f ms): the generator, not the server, may be the bottleneck.", g.StartDelayMS.P99, res.Totals.LatencyMS.P99))
	}
	if n503 := in.load.ErrorsByClass["http 503"]; n503 > 0 {
		n = append(n, overloadNote(in.load, n503))
	}
	return n
}

// overloadNote gives what an overload run is judged on: goodput (successful
// requests per second), the share of requests shed with 503, and the p99
// of the successful ones. The histograms hold every answered request, the
// fast 503s among them, so that p99 is bounded from above by the quantile
// that leaves out as many of the slowest requests as if every 503 had been
// among the fastest.
func overloadNote(lr *loadgen.Result, shed int64) string {
	t := &lr.Total
	ok := t.Count - t.Errors - t.Throttled
	goodput := float64(ok) / lr.Duration.Seconds()
	share := float64(shed) / float64(max(t.Count, 1))
	bound := "unknown"
	if h := t.Latency; h != nil && h.TotalCount() > 0 && ok > 0 {
		q := 100 * (1 - 0.01*float64(ok)/float64(h.TotalCount()))
		bound = fmt.Sprintf("%.2f ms", float64(h.ValueAtQuantile(q))/1000)
	}
	return fmt.Sprintf("Overload: %d requests (%.1f%%) were shed with 503 by the servers' admission control; goodput %.0f successful requests/s; p99 of the successful requests at most %s.",
		shed, 100*share, goodput, bound)
}

// tail reports whether second i of lr is in the graceful stop's tail: what
// finished after the last arrival. Its few completions would draw a false
// cliff, and its latencies would be judged on a handful of samples.
func tail(lr *loadgen.Result, i int) bool {
	return i >= int(lr.Duration/time.Second) && (i >= len(lr.Series) || lr.Series[i].Offered == 0)
}

// operation maps an operation's or a request name's stats; only operations
// have a series.
func operation(lr *loadgen.Result, s *loadgen.Stats) reports.Operation {
	op := reports.Operation{Name: s.Name, Count: s.Count, Errors: s.Errors, Throttled: s.Throttled, Dropped: s.Dropped, Rate: s.Rate(lr.Duration), LatencyMS: s.Percentiles()}
	for _, p := range s.Series {
		if tail(lr, p.Second) {
			continue
		}
		op.Series = append(op.Series, reports.OpSecond{
			T: p.Second, Requests: p.Ops, Rate: p.OpRate(), Errors: p.Errors, P50MS: p.P50, P99MS: p.P99,
		})
	}
	return op
}

// distribution samples the latency histogram (µs) at the percentiles the
// report's chart on the "nines" scale asks for.
func distribution(h *hdrhistogram.Histogram) []reports.PercentilePoint {
	if h == nil || h.TotalCount() == 0 {
		return nil
	}
	ps := reports.DistributionPercentiles()
	out := make([]reports.PercentilePoint, 0, len(ps))
	for _, p := range ps {
		v := h.ValueAtQuantile(p)
		if p == 100 {
			v = h.Max()
		}
		out = append(out, reports.PercentilePoint{Percentile: p, ValueMS: float64(v) / 1000})
	}
	return out
}

func hitRate(t *topologies.CacheTier) *float64 {
	if t == nil {
		return nil
	}
	r, ok := t.HitRate()
	if !ok {
		return nil
	}
	return reports.Float(r)
}

// observed is the view of the run that thresholds judge.
func observed(lr *loadgen.Result) scenarios.Observed {
	o := scenarios.Observed{Total: observedStats(&lr.Total, lr.Duration), Ops: map[scenarios.Op]scenarios.Stats{}}
	for i := range lr.Operations {
		o.Ops[scenarios.Op(lr.Operations[i].Name)] = observedStats(&lr.Operations[i], lr.Duration)
	}
	return o
}

// observedStats is one operation's (or the total's) figures as thresholds
// read them.
func observedStats(s *loadgen.Stats, d time.Duration) scenarios.Stats {
	p := s.Percentiles()
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	return scenarios.Stats{
		Requests: s.Count, Errors: s.Errors, Rate: s.Rate(d),
		P50: ms(p.P50), P90: ms(p.P90), P99: ms(p.P99), P999: ms(p.P999), Max: ms(p.Max), Mean: ms(p.Mean),
	}
}

// breakersResult maps the sampler's breaker changes into result.json's;
// nil when they were not read.
func breakersResult(ts []topologies.BreakerTransitions) *reports.Breakers {
	if ts == nil {
		return nil
	}
	out := &reports.Breakers{Transitions: []reports.BreakerTransition{}}
	for _, t := range ts {
		out.Transitions = append(out.Transitions, reports.BreakerTransition{Breaker: t.Breaker, From: t.From, To: t.To, Count: int64(t.Count), Instances: t.Instances})
	}
	return out
}

// queueResult maps the sampler's job queue figures into result.json's.
func queueResult(q *topologies.QueueStats) *reports.Queue {
	if q == nil {
		return nil
	}
	out := &reports.Queue{DepthMax: q.DepthMax, DepthEnd: q.DepthEnd, Jobs: []reports.QueueJob{}}
	for _, j := range q.Jobs {
		out.Jobs = append(out.Jobs, reports.QueueJob{
			Kind: j.Kind, Completed: int64(j.Completed), Failed: int64(j.Failed), Cancelled: int64(j.Cancelled), Started: int64(j.Started),
			WaitMS: reports.JobLatency{P50: j.WaitMSP50, P99: j.WaitMSP99},
			RunMS:  reports.JobLatency{P50: j.RunMSP50, P99: j.RunMSP99},
		})
	}
	return out
}

// dbPoolsResult is the pools' part of result.json, for a run of requests
// requests over secs seconds.
func dbPoolsResult(pools []topologies.DBPool, requests int64, secs float64) []reports.DBPool {
	var out []reports.DBPool
	for _, p := range pools {
		rp := reports.DBPool{
			Component: p.Component, Store: p.Store, Pool: p.Pool, MaxOpen: p.MaxOpen,
			InUseMean: math.Round(p.InUseMean*100) / 100, InUseMax: p.InUseMax,
			Waits: int64(p.Waits), WaitS: p.WaitS,
		}
		if secs > 0 {
			rp.WaitsPerS = float64(p.Waits) / secs
		}
		if p.Waits > 0 {
			rp.WaitMSMean = p.WaitS / float64(p.Waits) * 1000
		}
		if requests > 0 {
			rp.WaitUSPerRequest = p.WaitS / float64(requests) * 1e6
		}
		out = append(out, rp)
	}
	return out
}
