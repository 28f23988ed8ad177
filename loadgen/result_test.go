package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/google/go-cmp/cmp"
)

// fakeResult records latencies the way a run does and returns the result
// of a run that started at start.
func fakeResult(start time.Time, lats map[string][]time.Duration, counters map[string]int64) *Result {
	r := &Result{
		Executor: "constant-arrival-rate", Start: start, Duration: 10 * time.Second, End: start.Add(11 * time.Second),
		Total: Stats{Name: "total", Latency: NewHistogram()}, ErrorsByClass: map[string]int64{"http 503": 1},
		Counters: counters, StartDelay: NewHistogram(), Offered: 100, Dropped: 2, Workers: 3,
	}
	grow := func(s []Point, sec int) []Point {
		for len(s) <= sec {
			s = append(s, Point{Second: len(s), Interval: time.Second,
				Latency: hdrhistogram.NewPacked(histMin, histMax, histSigFigs)})
		}
		return s
	}
	for _, name := range []string{"get", "put"} {
		st := Stats{Name: name, Latency: NewHistogram(), Errors: 1}
		var opSeries []Point
		for i, d := range lats[name] {
			st.Count++
			recordLatency(st.Latency, d)
			recordLatency(r.StartDelay, d/100)
			sec := i % 10
			r.Series = grow(r.Series, sec)
			r.Series[sec].Requests++
			r.Series[sec].Latency.RecordValue(d.Microseconds())
			opSeries = grow(opSeries, sec)
			opSeries[sec].Ops++
			opSeries[sec].Latency.RecordValue(d.Microseconds())
		}
		r.Requests = append(r.Requests, st)
		op := st
		op.Latency = st.Latency.Clone()
		op.Series = opSeries
		r.Operations = append(r.Operations, op)
		r.Total.merge(&st)
	}
	return r
}

func randomLatencies(rng *rand.Rand, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		// Mostly fast, with a long tail, like real latencies.
		out[i] = time.Duration(200+rng.ExpFloat64()*800) * time.Microsecond
		if rng.IntN(100) == 0 {
			out[i] = time.Duration(rng.IntN(2000)) * time.Millisecond
		}
	}
	return out
}

// Two results merged equal one result that recorded all the values.
func TestResultMergeEqualsRecordingAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := map[string][]time.Duration{"get": randomLatencies(rng, 5000), "put": randomLatencies(rng, 500)}
	b := map[string][]time.Duration{"get": randomLatencies(rng, 3000), "put": randomLatencies(rng, 700)}
	all := map[string][]time.Duration{}
	for _, m := range []map[string][]time.Duration{a, b} {
		for k, v := range m {
			all[k] = append(all[k], v...)
		}
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	merged := fakeResult(start, a, map[string]int64{"stale_reads": 2})
	merged.Merge(fakeResult(start, b, map[string]int64{"stale_reads": 3, "other": 1}))
	want := fakeResult(start, all, nil)

	for i, name := range []string{"get", "put"} {
		got, wantSt := merged.Requests[i], want.Requests[i]
		if got.Name != name || got.Count != wantSt.Count || !got.Latency.Equals(wantSt.Latency) {
			t.Errorf("merged %s: count %d, want %d; histograms equal: %v", name, got.Count, wantSt.Count, got.Latency.Equals(wantSt.Latency))
		}
		if diff := cmp.Diff(wantSt.Percentiles(), got.Percentiles()); diff != "" {
			t.Errorf("merged %s percentiles (-want +got):\n%s", name, diff)
		}
		if got.Errors != 2 {
			t.Errorf("merged %s errors = %d, want 2", name, got.Errors)
		}
	}
	if !merged.Total.Latency.Equals(want.Total.Latency) || merged.Total.Count != 5000+500+3000+700 {
		t.Errorf("merged total: count %d, histogram equal %v", merged.Total.Count, merged.Total.Latency.Equals(want.Total.Latency))
	}
	if !merged.StartDelay.Equals(want.StartDelay) {
		t.Errorf("merged start delay differs")
	}
	if diff := cmp.Diff(map[string]int64{"stale_reads": 5, "other": 1}, merged.Counters); diff != "" {
		t.Errorf("merged counters (-want +got):\n%s", diff)
	}
	if merged.Offered != 200 || merged.Dropped != 4 || merged.ErrorsByClass["http 503"] != 2 {
		t.Errorf("merged offered %d dropped %d errors %v", merged.Offered, merged.Dropped, merged.ErrorsByClass)
	}
	for i, p := range merged.Series {
		w := want.Series[i]
		if p.Requests != w.Requests || p.Latency.TotalCount() != w.Latency.TotalCount() ||
			p.Latency.ValueAtPercentile(99) != w.Latency.ValueAtPercentile(99) {
			t.Errorf("merged second %d: %d requests, p99 %d; want %d, %d", i, p.Requests,
				p.Latency.ValueAtPercentile(99), w.Requests, w.Latency.ValueAtPercentile(99))
		}
	}
	for i, op := range merged.Operations {
		w := want.Operations[i]
		if len(op.Series) != len(w.Series) {
			t.Fatalf("merged %s series has %d points, want %d", op.Name, len(op.Series), len(w.Series))
		}
		for j, p := range op.Series {
			wp := w.Series[j]
			wp99 := usToMS(wp.Latency.ValueAtPercentile(99))
			if p.Ops != wp.Ops || p.P99 != wp99 || p.Latency.TotalCount() != wp.Latency.TotalCount() {
				t.Errorf("merged %s second %d: %d ops, p99 %v; want %d, %v", op.Name, j, p.Ops, p.P99, wp.Ops, wp99)
			}
		}
	}
}

// Results of runs that did not start together line up on wall-clock
// seconds, and the merged run spans both.
func TestResultMergeAlignsSeries(t *testing.T) {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mk := func(at time.Time, perSecond ...int64) *Result {
		r := &Result{Start: at, Duration: time.Duration(len(perSecond)) * time.Second, Operations: []Stats{{Name: "get"}}}
		for i, n := range perSecond {
			r.Series = append(r.Series, Point{Second: i, Interval: time.Second, Requests: n})
			r.Operations[0].Series = append(r.Operations[0].Series, Point{Second: i, Interval: time.Second, Ops: n})
		}
		return r
	}
	r := mk(start.Add(2*time.Second), 10, 10)
	r.Merge(mk(start, 1, 1, 1))
	var got, gotOps []int64
	for _, p := range r.Series {
		got = append(got, p.Requests)
	}
	for i, p := range r.Operations[0].Series {
		if p.Second != i {
			t.Errorf("merged operation point %d has second %d", i, p.Second)
		}
		gotOps = append(gotOps, p.Ops)
	}
	if diff := cmp.Diff([]int64{1, 1, 11, 10}, got); diff != "" {
		t.Errorf("merged series requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{1, 1, 11, 10}, gotOps); diff != "" {
		t.Errorf("merged operation series ops (-want +got):\n%s", diff)
	}
	if !r.Start.Equal(start) || r.Duration != 4*time.Second {
		t.Errorf("merged start %v duration %v, want %v and 4s", r.Start, r.Duration, start)
	}
	// Merging into an empty Result copies.
	var empty Result
	empty.Merge(mk(start, 5))
	if !empty.Start.Equal(start) || empty.Duration != time.Second || len(empty.Series) != 1 {
		t.Errorf("merge into empty: start %v duration %v series %d", empty.Start, empty.Duration, len(empty.Series))
	}
}

// A result survives JSON with its histograms, so saved runs still merge
// exactly.
func TestResultJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	orig := fakeResult(start, map[string][]time.Duration{"get": randomLatencies(rng, 2000), "put": randomLatencies(rng, 100)}, map[string]int64{"stale_reads": 7})
	b, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(orig.Summary(), back.Summary()); diff != "" {
		t.Errorf("summary after a JSON round trip (-want +got):\n%s", diff)
	}
	for i := range orig.Requests {
		if !orig.Requests[i].Latency.Equals(back.Requests[i].Latency) {
			t.Errorf("request %s histogram differs after a round trip", orig.Requests[i].Name)
		}
	}
	// The documented field names.
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"executor", "started_at", "duration_s", "total", "operations", "requests", "offered", "dropped", "errors_by_class", "counters", "series", "start_delay_ms"} {
		if _, ok := m[key]; !ok {
			t.Errorf("JSON has no %q", key)
		}
	}
	op := m["operations"].([]any)[0].(map[string]any)
	if _, ok := op["series"]; !ok {
		t.Errorf("operation JSON has no \"series\"")
	}
	if _, ok := m["total"].(map[string]any)["series"]; ok {
		t.Errorf("total JSON has a \"series\", want it only on operations")
	}
	lat := op["latency_ms"].(map[string]any)
	for _, key := range []string{"p50", "p90", "p99", "p999", "max", "mean"} {
		if _, ok := lat[key]; !ok {
			t.Errorf("latency_ms has no %q", key)
		}
	}
}

// Merging the results of two real runs adds them up.
func TestMergeRealRuns(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	run := func() *Result {
		res, err := Run(context.Background(), Config{
			Target:   srv.URL,
			Ops:      []Op{getOp("get", "/")},
			Executor: ConstantArrivalRate{Rate: 100, Duration: 500 * time.Millisecond, Pool: Pool{MaxDelay: time.Minute}}, // exact counts even if the box stalls
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := run(), run()
	all := NewHistogram()
	all.Merge(a.Total.Latency)
	all.Merge(b.Total.Latency)
	a.Merge(b)
	if a.Total.Count != 100 || a.Offered != 100 || !a.Total.Latency.Equals(all) {
		t.Errorf("merged count %d offered %d, want 100 and 100; histogram equal %v", a.Total.Count, a.Offered, a.Total.Latency.Equals(all))
	}
	get := a.Operations[0]
	var ops, latencies int64
	for _, p := range get.Series {
		ops += p.Ops
		if p.Latency != nil {
			latencies += p.Latency.TotalCount()
		}
	}
	if ops != get.Count || latencies != get.Latency.TotalCount() {
		t.Errorf("merged get series sums %d ops, %d latencies; want %d and %d", ops, latencies, get.Count, get.Latency.TotalCount())
	}
}

func TestLatencyClampsToRange(t *testing.T) {
	h := NewHistogram()
	recordLatency(h, 0)
	recordLatency(h, -time.Second)
	recordLatency(h, 2*time.Minute)
	if h.TotalCount() != 3 || h.Max() < 59_000_000 || h.Min() != 1 {
		t.Errorf("count %d min %d max %d, want 3 values clamped to 1µs..60s", h.TotalCount(), h.Min(), h.Max())
	}
}
