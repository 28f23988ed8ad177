package loadgen

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds from 1µs to 60s with 3 significant
// digits: every value is kept within 0.1%, and longer latencies are recorded
// as 60s.
const (
	histMin     = 1
	histMax     = 60_000_000
	histSigFigs = 3
)

// NewHistogram returns an empty latency histogram of the geometry every
// histogram in a Result has: microseconds, 1µs to 60s, 3 significant digits.
func NewHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histMin, histMax, histSigFigs)
}

// recordLatency records d in h, clamped to the histogram's range.
func recordLatency(h *hdrhistogram.Histogram, d time.Duration) {
	us := d.Microseconds()
	us = min(max(us, histMin), histMax)
	_ = h.RecordValue(us) // in range by construction
}

// Result is what a run measured. Its JSON form (MarshalJSON) is documented
// on the field tags; latencies in it are in milliseconds and every histogram
// is also there in the standard HdrHistogram V2 compressed encoding
// (base64), so results read back from JSON can still be merged exactly.
type Result struct {
	// Executor names the executor, e.g. "constant-arrival-rate".
	Executor string
	// Start is when the first operation was due.
	Start time.Time
	// Duration is how long operations were being started: the executor's
	// configured duration, or less when the run was cancelled. Rates are
	// counts divided by Duration.
	Duration time.Duration
	// End is when the last operation finished (after the graceful stop).
	End time.Time
	// Seed is the run's random seed.
	Seed uint64

	// Operations has one entry per Op, in the order of Config.Ops: each
	// operation timed as a whole, from its scheduled start (open model) or
	// its actual start (closed model) to its end.
	Operations []Stats
	// Requests has one entry per request name, sorted by name: each HTTP
	// exchange timed on its own (see Client.Do).
	Requests []Stats
	// Total merges all Requests.
	Total Stats

	// Offered counts the arrivals the pacer scheduled (open model only);
	// Offered = operations started + Dropped.
	Offered int64
	// Dropped counts arrivals that could not start on time because no
	// worker was free within the executor's MaxDelay.
	Dropped int64
	// Late counts arrivals the pacer itself handed over more than the
	// executor's MaxDelay after they were due: the load generator (or the
	// whole machine) stalled, not the system under test. They are among
	// Dropped, unless a worker took them anyway.
	Late int64
	// Workers is the largest number of workers the run used.
	Workers int
	// ErrorsByClass counts failed requests by class (see ClassTimeout and
	// friends; unexpected statuses as "http NNN"), plus failed checks
	// (ClassCheck) and failed setups (ClassSetup).
	ErrorsByClass map[string]int64
	// Counters holds the custom counters (Session.Counter), summed over
	// workers.
	Counters map[string]int64
	// StartDelay is how late operations started after they were due (open
	// model): the generator's own lateness, already inside every latency.
	// If its p99 is a sizeable part of the requests' p99, the generator,
	// not the server, is the bottleneck.
	StartDelay *hdrhistogram.Histogram
	// Series has one point per second of the run, in order.
	Series []Point
}

// Stats are the counts and latencies of one operation, one request name,
// or all requests.
type Stats struct {
	// Name of the operation or request; "total" for the total.
	Name string
	// Count of completed operations or requests, whatever their outcome.
	Count int64
	// Errors among them: failed checks, transport failures and unexpected
	// statuses. Throttled ones are not errors.
	Errors int64
	// Throttled among them: answered 429 Too Many Requests.
	Throttled int64
	// Dropped counts the operation's arrivals that could not start in
	// time and were not run (open model; operations only). They are not
	// in Count.
	Dropped int64
	// Latency holds their latencies in microseconds: every request that got
	// a response or timed out (a refused or reset connection has no
	// meaningful latency, and a failed operation has none if one of its
	// requests had such an error).
	Latency *hdrhistogram.Histogram
	// Series has one point per second of the run for an operation, aligned
	// with Result.Series; nil for requests and the total. Its points count
	// the operation: Ops, Errors, Throttled, Dropped and the latencies are
	// those of Count, Errors, Throttled, Dropped and Latency that fell in
	// the second; Requests and Offered are zero.
	Series []Point
}

// Rate returns the stats' count per second over d.
func (s *Stats) Rate(d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(s.Count) / d.Seconds()
}

// Percentiles returns the latency summary in milliseconds.
func (s *Stats) Percentiles() Latency { return latencyOf(s.Latency) }

// merge adds o into s.
func (s *Stats) merge(o *Stats) {
	s.Count += o.Count
	s.Errors += o.Errors
	s.Throttled += o.Throttled
	s.Dropped += o.Dropped
	if s.Latency == nil {
		s.Latency = NewHistogram()
	}
	if o.Latency != nil {
		s.Latency.Merge(o.Latency)
	}
}

// Latency is a latency summary in milliseconds, measured from each
// request's scheduled start. result.json writes it as is (reports.Latency
// is this type).
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	v := h.ValueAtPercentilesSlice([]float64{50, 90, 99, 99.9})
	return Latency{
		P50: usToMS(v[0]), P90: usToMS(v[1]), P99: usToMS(v[2]), P999: usToMS(v[3]),
		Max:  usToMS(h.Max()),
		Mean: math.Round(h.Mean()) / 1000,
	}
}

func usToMS(us int64) float64 { return float64(us) / 1000 }

// Point is one second of a run: what completed, was offered or was dropped
// during it.
type Point struct {
	// Second counts from 0 at the start of the run.
	Second int
	// Interval is the length of the point, one second except for the last.
	Interval time.Duration
	// Offered is the number of arrivals due in this second (open model).
	Offered int64
	// Dropped is the number of arrivals dropped in this second.
	Dropped int64
	// Ops is the number of operations that finished in this second.
	Ops int64
	// Requests is the number of requests that finished in this second;
	// Errors and Throttled count those that failed or got a 429.
	Requests, Errors, Throttled int64
	// P50 and P99 are the latencies (ms) of the requests that finished in
	// this second.
	P50, P99 float64
	// Latency holds those latencies (µs), sparse to keep a long series
	// small.
	Latency *hdrhistogram.PackedHistogram
}

// Rate returns the achieved request rate of the point, per second.
func (p *Point) Rate() float64 { return perSecond(p.Requests, p.Interval) }

// OfferedRate returns the offered arrival rate of the point, per second.
func (p *Point) OfferedRate() float64 { return perSecond(p.Offered, p.Interval) }

// OpRate returns the rate of operations finished in the point, per second.
func (p *Point) OpRate() float64 { return perSecond(p.Ops, p.Interval) }

// setLatency sets the point's latencies to those of h (µs), if any.
func (p *Point) setLatency(h *hdrhistogram.Histogram) {
	if h.TotalCount() == 0 {
		return
	}
	v := h.ValueAtPercentilesSlice([]float64{50, 99})
	p.P50, p.P99 = usToMS(v[0]), usToMS(v[1])
	p.Latency = hdrhistogram.NewPacked(histMin, histMax, histSigFigs)
	p.Latency.MergeFrom(h)
}

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Merge adds o into r, as if both runs had been one: counts add up,
// histograms merge (so percentiles of the merged result are those of all the
// values recorded by both), the per-second series (the total's and each
// operation's) are aligned on wall-clock seconds, and the merged run spans
// from the earlier start to the later end. Use it to combine the results of several generator processes that
// ran at the same time, or of several rounds.
func (r *Result) Merge(o *Result) {
	start, end := o.Start, o.Start.Add(o.Duration)
	if !r.Start.IsZero() {
		start = minTime(r.Start, o.Start)
		end = maxTime(r.Start.Add(r.Duration), end)
		if shift := int(math.Round(r.Start.Sub(start).Seconds())); shift > 0 {
			r.Series = shiftSeries(r.Series, shift)
			for i := range r.Operations {
				r.Operations[i].Series = shiftSeries(r.Operations[i].Series, shift)
			}
		}
	}
	r.Start, r.Duration = start, end.Sub(start)
	if o.End.After(r.End) {
		r.End = o.End
	}
	if r.Executor == "" {
		r.Executor = o.Executor
	} else if o.Executor != "" && o.Executor != r.Executor {
		r.Executor = "mixed"
	}

	r.Operations = mergeStats(r.Operations, o.Operations, false)
	r.Requests = mergeStats(r.Requests, o.Requests, true)
	r.Total.merge(&o.Total)
	r.Total.Name = "total"
	r.Offered += o.Offered
	r.Dropped += o.Dropped
	r.Late += o.Late
	r.Workers += o.Workers
	r.ErrorsByClass = addCounts(r.ErrorsByClass, o.ErrorsByClass)
	r.Counters = addCounts(r.Counters, o.Counters)
	if o.StartDelay != nil {
		if r.StartDelay == nil {
			r.StartDelay = NewHistogram()
		}
		r.StartDelay.Merge(o.StartDelay)
	}

	offset := int(math.Round(o.Start.Sub(r.Start).Seconds()))
	r.Series = mergeSeries(r.Series, o.Series, offset)
	for i := range o.Operations {
		// mergeStats above has given r every operation of o.
		j := slices.IndexFunc(r.Operations, func(s Stats) bool { return s.Name == o.Operations[i].Name })
		r.Operations[j].Series = mergeSeries(r.Operations[j].Series, o.Operations[i].Series, offset)
	}
}

// shiftSeries moves a series n seconds later, prepending empty points.
func shiftSeries(a []Point, n int) []Point {
	a = append(make([]Point, n), a...)
	for i := range a {
		a[i].Second = i
	}
	return a
}

// mergeSeries adds b into a, b's second 0 being a's second offset.
func mergeSeries(a, b []Point, offset int) []Point {
	for _, p := range b {
		i := p.Second + offset
		for len(a) <= i {
			a = append(a, Point{Second: len(a)})
		}
		q := &a[i]
		q.Interval = max(q.Interval, p.Interval)
		q.Offered += p.Offered
		q.Dropped += p.Dropped
		q.Ops += p.Ops
		q.Requests += p.Requests
		q.Errors += p.Errors
		q.Throttled += p.Throttled
		if p.Latency != nil {
			if q.Latency == nil {
				q.Latency = p.Latency.Clone()
			} else {
				q.Latency.Merge(p.Latency)
			}
			q.P50 = usToMS(q.Latency.ValueAtPercentile(50))
			q.P99 = usToMS(q.Latency.ValueAtPercentile(99))
		}
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// mergeStats merges b into a by name, keeping a's order and appending
// b's new names (then sorting by name if sorted).
func mergeStats(a, b []Stats, sorted bool) []Stats {
	for i := range b {
		j := slices.IndexFunc(a, func(s Stats) bool { return s.Name == b[i].Name })
		if j < 0 {
			a = append(a, Stats{Name: b[i].Name})
			j = len(a) - 1
		}
		a[j].merge(&b[i])
	}
	if sorted {
		slices.SortFunc(a, func(x, y Stats) int { return cmp.Compare(x.Name, y.Name) })
	}
	return a
}

func addCounts(a, b map[string]int64) map[string]int64 {
	if a == nil {
		a = make(map[string]int64, len(b))
	}
	for k, v := range b {
		a[k] += v
	}
	return a
}

// Summary is the JSON form of a Result: the names are those its fields
// document, durations are in seconds and latencies in milliseconds.
type Summary struct {
	Executor    string         `json:"executor"`   // e.g. "constant-arrival-rate"
	StartedAt   time.Time      `json:"started_at"` // UTC
	DurationS   float64        `json:"duration_s"` // Result.Duration: rates divide by it
	EndedAt     time.Time      `json:"ended_at"`   // UTC, after the graceful stop
	Seed        uint64         `json:"seed"`
	Total       StatsSummary   `json:"total"`          // all requests
	Operations  []StatsSummary `json:"operations"`     // per Op, as a whole
	Requests    []StatsSummary `json:"requests"`       // per request name
	Offered     int64          `json:"offered"`        // arrivals scheduled (open model)
	OfferedRate float64        `json:"offered_rate"`   // per second
	Dropped     int64          `json:"dropped"`        // arrivals not started in time
	Late        int64          `json:"late,omitempty"` // arrivals the pacer itself handed over late
	Workers     int            `json:"workers"`        // most workers used
	// ErrorsByClass and Counters: see Result.
	ErrorsByClass map[string]int64 `json:"errors_by_class"`
	Counters      map[string]int64 `json:"counters"`
	// StartDelayMS summarises how late operations started (open model).
	StartDelayMS        Latency        `json:"start_delay_ms"`
	StartDelayHistogram string         `json:"start_delay_histogram,omitempty"`
	Series              []PointSummary `json:"series"` // one per second
}

// StatsSummary is the JSON form of Stats.
type StatsSummary struct {
	Name      string  `json:"name"`
	Count     int64   `json:"count"`
	Errors    int64   `json:"errors"`
	Throttled int64   `json:"throttled"`
	Dropped   int64   `json:"dropped"`
	Rate      float64 `json:"rate"` // Count per second of the run's Duration
	LatencyMS Latency `json:"latency_ms"`
	// Histogram is the latency histogram (µs) in HdrHistogram's V2
	// compressed encoding, base64.
	Histogram string `json:"histogram,omitempty"`
	// Series is an operation's per-second series (Stats.Series).
	Series []PointSummary `json:"series,omitempty"`
}

// PointSummary is the JSON form of a Point.
type PointSummary struct {
	Second    int     `json:"second"`
	IntervalS float64 `json:"interval_s"`
	Offered   int64   `json:"offered"`
	Dropped   int64   `json:"dropped"`
	Ops       int64   `json:"ops"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	Throttled int64   `json:"throttled"`
	Rate      float64 `json:"rate"` // requests per second
	P50MS     float64 `json:"p50_ms"`
	P99MS     float64 `json:"p99_ms"`
	Histogram string  `json:"histogram,omitempty"`
}

// Summary returns the JSON-ready form of r.
func (r *Result) Summary() Summary {
	s := Summary{
		Executor:            r.Executor,
		StartedAt:           r.Start.UTC(),
		DurationS:           r.Duration.Seconds(),
		EndedAt:             r.End.UTC(),
		Seed:                r.Seed,
		Total:               r.statsSummary(&r.Total),
		Operations:          []StatsSummary{},
		Requests:            []StatsSummary{},
		Offered:             r.Offered,
		OfferedRate:         perSecond(r.Offered, r.Duration),
		Dropped:             r.Dropped,
		Late:                r.Late,
		Workers:             r.Workers,
		ErrorsByClass:       cloneCounts(r.ErrorsByClass),
		Counters:            cloneCounts(r.Counters),
		StartDelayMS:        latencyOf(r.StartDelay),
		StartDelayHistogram: encode(r.StartDelay),
		Series:              []PointSummary{},
	}
	for i := range r.Operations {
		s.Operations = append(s.Operations, r.statsSummary(&r.Operations[i]))
	}
	for i := range r.Requests {
		s.Requests = append(s.Requests, r.statsSummary(&r.Requests[i]))
	}
	for i := range r.Series {
		s.Series = append(s.Series, r.Series[i].summary())
	}
	return s
}

func (p *Point) summary() PointSummary {
	ps := PointSummary{
		Second: p.Second, IntervalS: p.Interval.Seconds(),
		Offered: p.Offered, Dropped: p.Dropped, Ops: p.Ops,
		Requests: p.Requests, Errors: p.Errors, Throttled: p.Throttled,
		Rate: p.Rate(), P50MS: p.P50, P99MS: p.P99,
	}
	if p.Latency != nil && p.Latency.TotalCount() > 0 {
		if b, err := p.Latency.Encode(); err == nil {
			ps.Histogram = string(b)
		}
	}
	return ps
}

// point decodes the JSON form of a Point.
func (ps *PointSummary) point() (Point, error) {
	p := Point{
		Second: ps.Second, Interval: time.Duration(ps.IntervalS * float64(time.Second)),
		Offered: ps.Offered, Dropped: ps.Dropped, Ops: ps.Ops,
		Requests: ps.Requests, Errors: ps.Errors, Throttled: ps.Throttled,
		P50: ps.P50MS, P99: ps.P99MS,
	}
	if ps.Histogram != "" {
		var err error
		if p.Latency, err = hdrhistogram.DecodePacked([]byte(ps.Histogram)); err != nil {
			return Point{}, fmt.Errorf("second %d histogram: %w", ps.Second, err)
		}
	}
	return p, nil
}

func cloneCounts(m map[string]int64) map[string]int64 {
	if m == nil {
		return map[string]int64{}
	}
	return maps.Clone(m)
}

func (r *Result) statsSummary(s *Stats) StatsSummary {
	ss := StatsSummary{
		Name: s.Name, Count: s.Count, Errors: s.Errors, Throttled: s.Throttled, Dropped: s.Dropped,
		Rate:      s.Rate(r.Duration),
		LatencyMS: s.Percentiles(),
		Histogram: encode(s.Latency),
	}
	for i := range s.Series {
		ss.Series = append(ss.Series, s.Series[i].summary())
	}
	return ss
}

func encode(h *hdrhistogram.Histogram) string {
	if h == nil || h.TotalCount() == 0 {
		return ""
	}
	b, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return string(b)
}

func decode(s string) (*hdrhistogram.Histogram, error) {
	if s == "" {
		return NewHistogram(), nil
	}
	h, err := hdrhistogram.Decode([]byte(s))
	if err != nil {
		return nil, err
	}
	// Re-record into the standard geometry so merges never drop values.
	out := NewHistogram()
	out.Merge(h)
	return out, nil
}

// MarshalJSON encodes r as its Summary.
func (r *Result) MarshalJSON() ([]byte, error) { return json.Marshal(r.Summary()) }

// UnmarshalJSON decodes a Summary, histograms included, back into r.
func (r *Result) UnmarshalJSON(b []byte) error {
	var s Summary
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	out := Result{
		Executor: s.Executor, Start: s.StartedAt, End: s.EndedAt, Seed: s.Seed,
		Duration: time.Duration(s.DurationS * float64(time.Second)),
		Offered:  s.Offered, Dropped: s.Dropped, Late: s.Late, Workers: s.Workers,
		ErrorsByClass: s.ErrorsByClass, Counters: s.Counters,
	}
	var err error
	if out.StartDelay, err = decode(s.StartDelayHistogram); err != nil {
		return fmt.Errorf("start delay histogram: %w", err)
	}
	stats := func(ss StatsSummary) (Stats, error) {
		h, err := decode(ss.Histogram)
		if err != nil {
			return Stats{}, fmt.Errorf("%s histogram: %w", ss.Name, err)
		}
		st := Stats{Name: ss.Name, Count: ss.Count, Errors: ss.Errors, Throttled: ss.Throttled, Dropped: ss.Dropped, Latency: h}
		for _, ps := range ss.Series {
			p, err := ps.point()
			if err != nil {
				return Stats{}, fmt.Errorf("%s: %w", ss.Name, err)
			}
			st.Series = append(st.Series, p)
		}
		return st, nil
	}
	if out.Total, err = stats(s.Total); err != nil {
		return err
	}
	for _, ss := range s.Operations {
		st, err := stats(ss)
		if err != nil {
			return err
		}
		out.Operations = append(out.Operations, st)
	}
	for _, ss := range s.Requests {
		st, err := stats(ss)
		if err != nil {
			return err
		}
		out.Requests = append(out.Requests, st)
	}
	for _, ps := range s.Series {
		p, err := ps.point()
		if err != nil {
			return err
		}
		out.Series = append(out.Series, p)
	}
	*r = out
	return nil
}
