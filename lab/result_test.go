package lab

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/go-cmp/cmp"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

// histogram records n latencies of each of the given milliseconds.
func histogram(n int, ms ...int64) *hdrhistogram.Histogram {
	h := loadgen.NewHistogram()
	for _, m := range ms {
		for range n {
			if err := h.RecordValue(m * 1000); err != nil {
				panic(err)
			}
		}
	}
	return h
}

func mustScenario(t *testing.T, yaml string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// A load result of 3 s (2 ms and 10 ms latencies, 1% errors) and a phase-4
// topology's measurements, mapped into result.json's schema.
func TestBuildResult(t *testing.T) {
	sc := mustScenario(t, `
name: mapped
executor: {type: constant-arrival-rate, rate: 100}
duration: 3s
users: 1000
mix:
  - {op: get-user, weight: 9}
  - {op: update-user, weight: 1}
  - {op: create-user, weight: 1} # none completed: its threshold has no data
thresholds:
  - errors < 0.5%
  - get-user.p99 < 50ms
  - update-user.p50 < 5ms
  - rate > 90
  - create-user.p99 < 1s
`)
	lr := &loadgen.Result{
		Start:    time.Date(2026, 12, 2, 21, 0, 0, 0, time.FixedZone("CET", 3600)),
		Duration: 3 * time.Second,
		Seed:     7,
		Offered:  305, Dropped: 5, Workers: 16,
		Operations: []loadgen.Stats{
			{Name: "get-user", Count: 270, Errors: 3, Latency: histogram(135, 2, 2)},
			{Name: "update-user", Count: 30, Latency: histogram(15, 10, 10)},
		},
		Total:         loadgen.Stats{Count: 300, Errors: 3, Latency: histogram(135, 2, 2)},
		ErrorsByClass: map[string]int64{"http_5xx": 3},
		Counters:      map[string]int64{"stale_reads": 0},
		Series: []loadgen.Point{
			{Second: 0, Interval: time.Second, Offered: 100, Requests: 100, P50: 2, P99: 2},
			{Second: 1, Interval: time.Second, Offered: 100, Requests: 100, P50: 2, P99: 2},
			{Second: 2, Interval: time.Second, Offered: 105, Requests: 98, Errors: 3, Dropped: 5, P50: 2, P99: 10},
			// The graceful stop's tail: what finished after the last arrival.
			{Second: 3, Interval: 200 * time.Millisecond, Requests: 2, P50: 9, P99: 9},
		},
	}
	lr.Total.Latency.Merge(histogram(15, 10, 10))
	meas := &topologies.Measurements{
		Cache: topologies.CacheStats{
			L1: &topologies.CacheTier{Hits: 80, Misses: 20},
			L2: &topologies.CacheTier{}, // no lookups: null, not 0
			L3: &topologies.CacheTier{Hits: 9, Misses: 1},
		},
		Replicas: []topologies.ReplicaLag{{Name: "replica-1", LagSP50: 0.001, LagSMax: 0.02, VisibleMSP99: 3}},
		CPU:      []topologies.ComponentCPU{{Name: "app-1", Seconds: 1.5}},
		Problems: []string{"pgbouncer: no stats"},
	}
	res := buildResult(resultInput{
		phase: 4, topology: "four", scenario: sc, argv: []string{"scalelab", "run", "--phase", "4"},
		machine: reports.Machine{Cores: 2}, load: lr, measurements: meas,
	})

	if res.SchemaVersion != reports.SchemaVersion || res.Phase != 4 || res.Scenario != "mapped" || res.Topology != "four" {
		t.Errorf("header = schema %d, phase %d, %q, %q", res.SchemaVersion, res.Phase, res.Scenario, res.Topology)
	}
	if !res.StartedAt.Equal(lr.Start) || res.StartedAt.Location() != time.UTC {
		t.Errorf("started_at = %v, want %v in UTC", res.StartedAt, lr.Start)
	}
	if res.DurationS != 3 || res.Users != 1000 || res.Executor != "constant-arrival-rate 100/s" {
		t.Errorf("duration %v, users %d, executor %q", res.DurationS, res.Users, res.Executor)
	}
	tot := res.Totals
	if tot.Requests != 300 || tot.Errors != 3 || tot.Rate != 100 || tot.Dropped != 5 || tot.OfferedRate != 305.0/3 {
		t.Errorf("totals = %+v, want 300 requests, 3 errors, 100/s, 5 dropped, offered 305/3 s", tot)
	}
	if tot.LatencyMS.P50 < 1.99 || tot.LatencyMS.P50 > 2.01 || tot.LatencyMS.Max < 9.99 || tot.LatencyMS.Max > 10.01 {
		t.Errorf("total latency = %+v, want p50 2 ms, max 10 ms", tot.LatencyMS)
	}
	if len(res.Operations) != 2 || res.Operations[0].Name != "get-user" || res.Operations[0].Rate != 90 || res.Operations[1].Count != 30 {
		t.Errorf("operations = %+v", res.Operations)
	}
	if len(res.Series) != 3 {
		t.Errorf("series has %d seconds, want 3 (the graceful stop's tail left out)", len(res.Series))
	}
	if len(res.LatencyDistribution) == 0 || res.LatencyDistribution[len(res.LatencyDistribution)-1].Percentile != 100 {
		t.Errorf("latency distribution = %+v, want points up to the 100th percentile", res.LatencyDistribution)
	}

	var verdicts []string
	for _, th := range res.Thresholds {
		obs := "no data"
		if th.Observed != nil {
			obs = strconv.FormatFloat(*th.Observed, 'g', 3, 64)
		}
		verdicts = append(verdicts, th.Threshold+" "+map[bool]string{true: "PASS", false: "FAIL"}[th.Pass]+" "+obs+" "+th.Unit)
	}
	want := []string{
		"errors < 0.5% FAIL 1 %",
		"get-user.p99 < 50ms PASS 2 ms",
		"update-user.p50 < 5ms FAIL 10 ms",
		"rate > 90 PASS 100 req/s",
		"create-user.p99 < 1s FAIL no data ms",
	}
	if diff := cmp.Diff(want, verdicts); diff != "" {
		t.Errorf("thresholds (-want +got):\n%s", diff)
	}

	if c := res.Cache; c.L1HitRate == nil || *c.L1HitRate != 0.8 || c.L2HitRate != nil || c.L3HitRate == nil || *c.L3HitRate != 0.9 {
		t.Errorf("cache = %s, want L1 0.8, L2 null, L3 0.9", fmtCache(c))
	}
	if diff := cmp.Diff([]reports.Replica{{Name: "replica-1", LagSP50: 0.001, LagSMax: 0.02, VisibleMSP99: 3}}, res.Replicas); diff != "" {
		t.Errorf("replicas (-want +got):\n%s", diff)
	}
	if len(res.Components) != 1 || res.Components[0].CPUS != 1.5 {
		t.Errorf("components = %+v", res.Components)
	}
	notes := strings.Join(res.Notes, "\n")
	for _, n := range []string{"not measured: pgbouncer: no stats", "same 2 cores", "phase 3 and 4 pay for the load balancer", "answered by Varnish", "5 arrivals were dropped"} {
		if !strings.Contains(notes, n) {
			t.Errorf("notes lack %q:\n%s", n, notes)
		}
	}
}

// Without topology measurements (sampling failed) the result says nothing
// about caches or replicas, rather than zeros.
func TestBuildResultWithoutMeasurements(t *testing.T) {
	sc := mustScenario(t, `
name: bare
executor: {type: constant-arrival-rate, rate: 10}
duration: 1s
users: 10
mix: [{op: get-user, weight: 1}]
`)
	lr := &loadgen.Result{Duration: time.Second, Total: loadgen.Stats{Count: 10, Latency: histogram(10, 1)},
		Operations: []loadgen.Stats{{Name: "get-user", Count: 10, Latency: histogram(10, 1)}}}
	res := buildResult(resultInput{phase: 1, scenario: sc, load: lr})
	if c := res.Cache; c.L1HitRate != nil || c.L2HitRate != nil || c.L3HitRate != nil {
		t.Errorf("cache = %s, want all null", fmtCache(c))
	}
	if res.Replicas == nil || len(res.Replicas) != 0 || res.Thresholds == nil {
		t.Errorf("replicas %v, thresholds %v: want empty lists (JSON []), not null", res.Replicas, res.Thresholds)
	}
}

func fmtCache(c reports.Cache) string {
	f := func(p *float64) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("L1 %s, L2 %s, L3 %s", f(c.L1HitRate), f(c.L2HitRate), f(c.L3HitRate))
}

// The per-second fields: operations apart from requests and each second's
// real length, the cache tiers' hit rate per second from the sampler's
// intervals, and each replica's lag and write-to-visible p99 per second,
// all lined up with the load's seconds although the sampler started
// earlier; the latency distribution at the report's percentiles.
func TestBuildResultSeries(t *testing.T) {
	sc := mustScenario(t, `
name: series
executor: {type: constant-arrival-rate, rate: 100}
duration: 3s
users: 10
mix: [{op: read-after-write, weight: 1}]
`)
	start := time.Date(2026, 12, 2, 21, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	lr := &loadgen.Result{
		Start: start, Duration: 3 * time.Second,
		Total:      loadgen.Stats{Count: 600, Latency: histogram(100, 1, 2, 3, 4, 5, 6)},
		Operations: []loadgen.Stats{{Name: "read-after-write", Count: 300, Latency: histogram(50, 2, 4, 6, 8, 10, 12)}},
		Series: []loadgen.Point{
			{Second: 0, Interval: time.Second, Offered: 100, Ops: 100, Requests: 200},
			{Second: 1, Interval: time.Second, Offered: 100, Ops: 100, Requests: 200},
			{Second: 2, Interval: 500 * time.Millisecond, Offered: 50, Ops: 50, Requests: 100},
		},
	}
	tier := func(h, m uint64) *topologies.CacheTier { return &topologies.CacheTier{Hits: h, Misses: m} }
	meas := &topologies.Measurements{
		CacheSeries: []topologies.CacheInterval{
			// Before the load: left out.
			{Start: at(-1300), End: at(-300), L1: tier(1, 1)},
			// Middle in second 0; L2 could not be read, L3 had no lookups.
			{Start: at(-300), End: at(700), L1: tier(3, 1), L3: tier(0, 0)},
			{Start: at(700), End: at(1700), L1: tier(9, 1), L2: tier(1, 1), L3: tier(1, 3)},
			// Two short intervals in second 2 add up.
			{Start: at(1700), End: at(2300), L1: tier(1, 1)},
			{Start: at(2300), End: at(2900), L1: tier(2, 0)},
			// After the series' last second: left out.
			{Start: at(2900), End: at(3900), L1: tier(5, 5)},
		},
		Replicas: []topologies.ReplicaLag{{
			Name: "replica-1",
			Lag: []topologies.LagPoint{
				{At: at(-100), LagS: 9},
				{At: at(100), LagS: 0.002}, {At: at(900), LagS: 0.004},
				{At: at(2100), LagS: 0.001},
			},
			Visible: []topologies.VisibleSecond{
				{Start: at(-300), P99MS: 1.5, Probes: 10},
				{Start: at(700), P99MS: 2.5, Probes: 10},
				{Start: at(1700), Probes: 0},
			},
		}},
	}
	res := buildResult(resultInput{phase: 3, scenario: sc, load: lr, measurements: meas})

	var seconds []string
	for _, s := range res.Series {
		seconds = append(seconds, fmt.Sprintf("t%d: %d req %.0f/s, %d ops %.0f/s of %.0f offered in %.1fs", s.T, s.Requests, s.Rate, s.Ops, s.OpRate, s.Offered, s.IntervalS))
	}
	wantSeconds := []string{
		"t0: 200 req 200/s, 100 ops 100/s of 100 offered in 1.0s",
		"t1: 200 req 200/s, 100 ops 100/s of 100 offered in 1.0s",
		"t2: 100 req 200/s, 50 ops 100/s of 100 offered in 0.5s",
	}
	if diff := cmp.Diff(wantSeconds, seconds); diff != "" {
		t.Errorf("series (-want +got):\n%s", diff)
	}

	want := []reports.CacheSecond{
		{T: 0, L1: reports.Float(0.75)},
		{T: 1, L1: reports.Float(0.9), L2: reports.Float(0.5), L3: reports.Float(0.25)},
		{T: 2, L1: reports.Float(0.75)},
	}
	if diff := cmp.Diff(want, res.CacheSeries); diff != "" {
		t.Errorf("cache series (-want +got):\n%s", diff)
	}

	wantReplica := []reports.ReplicaSecond{
		{T: 0, LagMS: 4, VisibleMSP99: reports.Float(1.5)},
		{T: 1, VisibleMSP99: reports.Float(2.5)},
		{T: 2, LagMS: 1},
	}
	if len(res.Replicas) != 1 {
		t.Fatalf("replicas = %+v, want one", res.Replicas)
	}
	if diff := cmp.Diff(wantReplica, res.Replicas[0].Series); diff != "" {
		t.Errorf("replica series (-want +got):\n%s", diff)
	}

	var ps []float64
	for _, p := range res.LatencyDistribution {
		ps = append(ps, p.Percentile)
	}
	if diff := cmp.Diff(reports.DistributionPercentiles(), ps); diff != "" {
		t.Errorf("distribution percentiles (-want +got):\n%s", diff)
	}
	if last := res.LatencyDistribution[len(res.LatencyDistribution)-1]; last.ValueMS < 5.99 || last.ValueMS > 6.01 {
		t.Errorf("distribution at 100 = %v ms, want the maximum, 6 ms", last.ValueMS)
	}
}
