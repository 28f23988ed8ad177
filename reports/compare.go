package reports

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The verdict rule of Compare.
const (
	// Alpha is the p-value below which a difference counts as real.
	Alpha = 0.05
	// MinRelativeEffect is the smallest change of a rate or latency median
	// worth a verdict: smaller ones are "no change" however certain. The
	// per-second samples of one run do not see the noise between runs: two
	// identical back-to-back phase-1 runs on a 2-core machine differed by
	// 5% in p50 with p = 0.001. So the bar is above that.
	MinRelativeEffect = 0.10
	// MinAbsoluteEffect is the same for error and hit rates, which are
	// compared in percentage points.
	MinAbsoluteEffect = 0.1
	// MinSamples is the fewest per-second samples per run the test needs.
	// With 4 and 4 the smallest possible p-value is 0.03.
	MinSamples = 4
)

// Verdicts of a change.
const (
	Faster    = "faster"
	Slower    = "slower"
	Better    = "better"
	Worse     = "worse"
	NoChange  = "no change"
	NoVerdict = "n/a"
	// Lower and Higher replace Slower and Faster for a rate when the runs
	// were offered different loads: the rate followed the load, which says
	// nothing about the system.
	Lower  = "lower (offered load differs)"
	Higher = "higher (offered load differs)"
)

// Method describes how Compare reaches its verdicts.
const Method = `Verdicts come from a two-sided Mann-Whitney U test of each run's per-second samples against the baseline's: "faster"/"slower" (or "better"/"worse") when p < 0.05 and the medians differ by at least 10% (0.1 percentage points for error and hit rates), "no change" otherwise. The seconds of one run are not independent samples, so p-values are optimistic: repeat a run before trusting a change near these limits.`

// Comparison puts several runs side by side; the first is the baseline.
type Comparison struct {
	Runs    []Run
	Metrics []MetricComparison
	// Notes warn about runs that differ in more than the code: another
	// scenario, another machine.
	Notes []string

	results []*Result // for the charts of RenderComparisonHTML
}

// Run identifies one compared run.
type Run struct {
	Label     string // "A", "B", …
	Phase     int
	Scenario  string
	StartedAt time.Time
	GitCommit string
	Machine   string
}

// MetricComparison is one metric across the runs.
type MetricComparison struct {
	Name string // "rate", "p99", "get-user p99", "error rate", "L1 hit rate"
	Unit string // "req/s", "ms" or "%"
	// HigherIsBetter is true for rates and hit rates.
	HigherIsBetter bool
	// Values holds each run's value; nil where the run has none.
	Values []*float64
	// Changes holds each run's change against the baseline; nil for the
	// baseline itself.
	Changes []*Change
}

// Change is one run's difference from the baseline in one metric.
type Change struct {
	// Relative is (value − baseline) / baseline; NaN when either is
	// missing or the baseline is 0.
	Relative float64
	// Delta is value − baseline in the metric's unit (percentage points
	// for "%").
	Delta float64
	// P is the test's p-value; NaN when no test ran.
	P float64
	// Samples are the per-second samples of the baseline and of this run.
	Samples [2]int
	Verdict string
	// Reason says why there is no verdict.
	Reason string
}

type metricKind struct {
	name, unit     string
	higherIsBetter bool
	percent        bool // compared in percentage points
	// followsLoad marks a rate, which follows the offered load: with
	// different loads its verdict is Lower or Higher.
	followsLoad   bool
	better, worse string
	value         func(*Result) (float64, bool)
	samples       func(*Result) []float64
}

// Compare puts results side by side, each against the first. Per metric —
// total rate, total p50 and p99, error rate, each operation's p50 and p99,
// and the cache hit rates — it gives the values, the change, and a verdict
// that accounts for noise (see Method).
func Compare(results []*Result) *Comparison {
	c := &Comparison{results: results}
	for i, r := range results {
		c.Runs = append(c.Runs, Run{
			Label: label(i), Phase: r.Phase, Scenario: r.Scenario, StartedAt: r.StartedAt,
			GitCommit: r.Machine.GitCommit, Machine: machineLine(Machine{CPU: r.Machine.CPU, Cores: r.Machine.Cores, MemoryBytes: r.Machine.MemoryBytes}),
		})
	}
	for i := 1; i < len(c.Runs); i++ {
		if c.Runs[i].Scenario != c.Runs[0].Scenario {
			c.Notes = append(c.Notes, fmt.Sprintf("%s ran scenario %s, %s ran %s: the load differs, not only the system.",
				c.Runs[i].Label, orDash(c.Runs[i].Scenario), c.Runs[0].Label, orDash(c.Runs[0].Scenario)))
		}
		if offeredDiffers(results[0], results[i]) {
			c.Notes = append(c.Notes, fmt.Sprintf("%s was offered %s operations/s, %s %s: a rate that follows the load is \"lower\" or \"higher\", not \"slower\" or \"faster\".",
				c.Runs[i].Label, fmtRate(results[i].Totals.OfferedRate), c.Runs[0].Label, fmtRate(results[0].Totals.OfferedRate)))
		}
		if c.Runs[i].Machine != c.Runs[0].Machine {
			c.Notes = append(c.Notes, fmt.Sprintf("%s ran on another machine (%s) than %s (%s).",
				c.Runs[i].Label, c.Runs[i].Machine, c.Runs[0].Label, c.Runs[0].Machine))
		}
	}
	for _, k := range metricKinds(results) {
		m := MetricComparison{Name: k.name, Unit: k.unit, HigherIsBetter: k.higherIsBetter}
		present := false
		for _, r := range results {
			if v, ok := k.value(r); ok {
				m.Values = append(m.Values, Float(v))
				present = true
			} else {
				m.Values = append(m.Values, nil)
			}
		}
		if !present {
			continue
		}
		m.Changes = make([]*Change, len(results))
		for i := 1; i < len(results); i++ {
			var bs, vs []float64
			if k.samples != nil {
				bs, vs = k.samples(results[0]), k.samples(results[i])
			}
			ch := judge(k, m.Values[0], m.Values[i], bs, vs)
			switch {
			case m.Values[0] == nil:
				ch.Reason = "not in " + c.Runs[0].Label
			case m.Values[i] == nil:
				ch.Reason = "not in " + c.Runs[i].Label
			}
			if k.followsLoad && offeredDiffers(results[0], results[i]) {
				switch ch.Verdict {
				case k.better:
					ch.Verdict = Higher
				case k.worse:
					ch.Verdict = Lower
				}
			}
			m.Changes[i] = ch
		}
		c.Metrics = append(c.Metrics, m)
	}
	return c
}

// Failure levels of Comparison.Failures.
const (
	// FailOnSlower fails on a latency or throughput verdict "slower".
	FailOnSlower = "slower"
	// FailOnWorse fails on "slower" and on "worse" (error rate, hit rates,
	// CPU per request, replicas).
	FailOnWorse = "worse"
)

// Failures lists the changes that fail a check at level (FailOnSlower or
// FailOnWorse), as "B vs A: p99 slower (+25.0%)"; none means it passes.
// "lower (offered load differs)" never fails: the load changed, not the
// system.
func (c *Comparison) Failures(level string) []string {
	var out []string
	for _, m := range c.Metrics {
		for i, ch := range m.Changes {
			if ch == nil {
				continue
			}
			if ch.Verdict == Slower || (level == FailOnWorse && ch.Verdict == Worse) {
				out = append(out, fmt.Sprintf("%s vs %s: %s %s", c.Runs[i].Label, c.Runs[0].Label, m.Name, strings.TrimSpace(fmtChange(ch, m.Unit))))
			}
		}
	}
	return out
}

// offeredDiffers reports whether two open-model runs were offered loads
// more than 1% apart.
func offeredDiffers(a, b *Result) bool {
	x, y := a.Totals.OfferedRate, b.Totals.OfferedRate
	return x > 0 && y > 0 && math.Abs(y/x-1) > 0.01
}

func label(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return "R" + strconv.Itoa(i+1)
}

func judge(k metricKind, base, v *float64, bs, vs []float64) *Change {
	ch := &Change{Relative: math.NaN(), Delta: math.NaN(), P: math.NaN(), Samples: [2]int{len(bs), len(vs)}, Verdict: NoVerdict}
	if base == nil || v == nil {
		ch.Reason = "missing in one run"
		return ch
	}
	ch.Delta = *v - *base
	if *base != 0 {
		ch.Relative = ch.Delta / *base
	}
	switch {
	case k.samples == nil:
		ch.Reason = "one value per run: no test"
		return ch
	case len(bs) == 0 || len(vs) == 0:
		ch.Reason = "no per-second samples"
		return ch
	case len(bs) < MinSamples || len(vs) < MinSamples:
		ch.Reason = fmt.Sprintf("fewer than %d per-second samples", MinSamples)
		return ch
	}
	_, ch.P = mannWhitney(bs, vs)
	mb, mv := median(bs), median(vs)
	var effect float64
	big := false
	if k.percent {
		effect = mv - mb
		big = math.Abs(effect) >= MinAbsoluteEffect
	} else {
		switch {
		case mb != 0:
			effect = (mv - mb) / math.Abs(mb)
		case mv != 0:
			effect = math.Copysign(math.Inf(1), mv)
		}
		big = math.Abs(effect) >= MinRelativeEffect
	}
	if ch.P >= Alpha || !big {
		ch.Verdict = NoChange
		return ch
	}
	if (effect > 0) == k.higherIsBetter {
		ch.Verdict = k.better
	} else {
		ch.Verdict = k.worse
	}
	return ch
}

func metricKinds(results []*Result) []metricKind {
	ks := []metricKind{
		{
			name: "rate", unit: "req/s", higherIsBetter: true, better: Faster, worse: Slower, followsLoad: true,
			value: func(r *Result) (float64, bool) { return r.Totals.Rate, true },
			samples: func(r *Result) []float64 {
				return seriesOf(r, func(s Second) (float64, bool) { return s.Rate, true })
			},
		},
		latencyKind("p50", func(l Latency) float64 { return l.P50 }, func(s Second) float64 { return s.P50MS }),
		latencyKind("p99", func(l Latency) float64 { return l.P99 }, func(s Second) float64 { return s.P99MS }),
		{
			name: "error rate", unit: "%", percent: true, better: Better, worse: Worse,
			value: func(r *Result) (float64, bool) { return 100 * r.Totals.ErrorRate(), r.Totals.Requests > 0 },
			samples: func(r *Result) []float64 {
				return seriesOf(r, func(s Second) (float64, bool) {
					if s.Requests == 0 {
						return 0, false
					}
					return 100 * float64(s.Errors) / float64(s.Requests), true
				})
			},
		},
	}
	var ops []string
	for _, r := range results {
		for _, op := range r.Operations {
			if !containsString(ops, op.Name) {
				ops = append(ops, op.Name)
			}
		}
	}
	for _, name := range ops {
		ks = append(ks,
			opLatencyKind(name, "p50", func(l Latency) float64 { return l.P50 }, func(s OpSecond) float64 { return s.P50MS }),
			opLatencyKind(name, "p99", func(l Latency) float64 { return l.P99 }, func(s OpSecond) float64 { return s.P99MS }))
	}
	for _, tier := range []struct {
		name string
		rate func(Cache) *float64
		sec  func(CacheSecond) *float64
	}{
		{"L1 hit rate", func(c Cache) *float64 { return c.L1HitRate }, func(s CacheSecond) *float64 { return s.L1 }},
		{"L2 hit rate", func(c Cache) *float64 { return c.L2HitRate }, func(s CacheSecond) *float64 { return s.L2 }},
		{"L3 hit rate", func(c Cache) *float64 { return c.L3HitRate }, func(s CacheSecond) *float64 { return s.L3 }},
	} {
		ks = append(ks, metricKind{
			name: tier.name, unit: "%", higherIsBetter: true, percent: true, better: Better, worse: Worse,
			value: func(r *Result) (float64, bool) {
				if p := tier.rate(r.Cache); p != nil {
					return 100 * *p, true
				}
				return 0, false
			},
			samples: func(r *Result) []float64 {
				var xs []float64
				for _, s := range r.CacheSeries {
					if v := tier.sec(s); v != nil && inMeasured(r, s.T, 0) {
						xs = append(xs, 100**v)
					}
				}
				return xs
			},
		})
	}
	ks = append(ks, metricKind{
		name: "CPU per request", unit: "µs", better: Better, worse: Worse,
		value: cpuPerRequest,
	})
	var tiers []string
	for _, r := range results {
		for _, t := range cpuTiers(r) {
			if !containsString(tiers, t.name) {
				tiers = append(tiers, t.name)
			}
		}
	}
	for _, name := range tiers {
		ks = append(ks, metricKind{
			name: "CPU per request: " + name, unit: "µs", better: Better, worse: Worse,
			value: func(r *Result) (float64, bool) {
				for _, t := range cpuTiers(r) {
					if t.name == name && r.Totals.Requests > 0 {
						return 1e6 * t.cpuS / float64(r.Totals.Requests), true
					}
				}
				return 0, false
			},
		})
	}
	ks = append(ks,
		metricKind{name: "replica lag max", unit: "ms", better: Better, worse: Worse, value: maxLagMS,
			samples: func(r *Result) []float64 {
				return replicaSamples(r, func(s ReplicaSecond) (float64, bool) { return s.LagMS, true })
			}},
		metricKind{name: "write-to-visible p99", unit: "ms", better: Better, worse: Worse, value: maxVisibleMS,
			samples: func(r *Result) []float64 {
				return replicaSamples(r, func(s ReplicaSecond) (float64, bool) {
					if s.VisibleMSP99 == nil {
						return 0, false
					}
					return *s.VisibleMSP99, true
				})
			}},
	)
	return ks
}

func latencyKind(name string, agg func(Latency) float64, sec func(Second) float64) metricKind {
	return metricKind{
		name: name, unit: "ms", better: Faster, worse: Slower,
		value: func(r *Result) (float64, bool) { return agg(r.Totals.LatencyMS), r.Totals.Requests > 0 },
		samples: func(r *Result) []float64 {
			return seriesOf(r, func(s Second) (float64, bool) { return sec(s), s.Requests > 0 })
		},
	}
}

func opLatencyKind(op, name string, agg func(Latency) float64, sec func(OpSecond) float64) metricKind {
	find := func(r *Result) *Operation {
		for i := range r.Operations {
			if r.Operations[i].Name == op {
				return &r.Operations[i]
			}
		}
		return nil
	}
	return metricKind{
		name: op + " " + name, unit: "ms", better: Faster, worse: Slower,
		value: func(r *Result) (float64, bool) {
			if o := find(r); o != nil && o.Count > 0 {
				return agg(o.LatencyMS), true
			}
			return 0, false
		},
		samples: func(r *Result) []float64 {
			o := find(r)
			if o == nil {
				return nil
			}
			var xs []float64
			for _, s := range measuredOpSeconds(r, o) {
				if s.Requests > 0 {
					xs = append(xs, sec(s))
				}
			}
			return xs
		},
	}
}

func seriesOf(r *Result, f func(Second) (float64, bool)) []float64 {
	var xs []float64
	for _, s := range measuredSeconds(r) {
		if v, ok := f(s); ok {
			xs = append(xs, v)
		}
	}
	return xs
}

// replicaSamples are the worst replica's value in each second.
func replicaSamples(r *Result, f func(ReplicaSecond) (float64, bool)) []float64 {
	worst := map[int]float64{}
	var ts []int
	for _, rep := range r.Replicas {
		for _, s := range rep.Series {
			v, ok := f(s)
			if !ok || !inMeasured(r, s.T, 0) {
				continue
			}
			if old, seen := worst[s.T]; !seen {
				ts = append(ts, s.T)
				worst[s.T] = v
			} else {
				worst[s.T] = math.Max(old, v)
			}
		}
	}
	slices.Sort(ts)
	var xs []float64
	for _, t := range ts {
		xs = append(xs, worst[t])
	}
	return xs
}

// cpuTier is the CPU time of one tier: the components of one kind, such as
// app-1, app-2 and app-3.
type cpuTier struct {
	name string
	cpuS float64
}

// cpuTiers groups r's components into tiers: a name loses its instance
// number ("app-2" is "app", "replica-1" is "replica"), and every Redis
// process (standalone, cluster masters and replicas) is "redis".
func cpuTiers(r *Result) []cpuTier {
	var out []cpuTier
	idx := map[string]int{}
	for _, comp := range r.Components {
		name := tierOf(comp.Name)
		if i, ok := idx[name]; ok {
			out[i].cpuS += comp.CPUS
			continue
		}
		idx[name] = len(out)
		out = append(out, cpuTier{name: name, cpuS: comp.CPUS})
	}
	slices.SortStableFunc(out, func(a, b cpuTier) int { return cmp.Compare(b.cpuS, a.cpuS) })
	return out
}

func tierOf(name string) string {
	if strings.HasPrefix(name, "redis") {
		return "redis"
	}
	for {
		i := strings.LastIndexByte(name, '-')
		if i <= 0 || strings.Trim(name[i+1:], "0123456789") != "" {
			return name
		}
		name = name[:i]
	}
}

func containsString(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

// RenderComparison writes c as aligned plain text for a terminal.
func RenderComparison(w io.Writer, c *Comparison) error {
	b := bufio.NewWriter(w)
	if len(c.Runs) == 1 {
		b.WriteString("scalelab compare: 1 run")
	} else {
		fmt.Fprintf(b, "scalelab compare: %d runs", len(c.Runs))
	}
	if len(c.Runs) > 1 {
		fmt.Fprintf(b, ", each against %s", c.Runs[0].Label)
	}
	b.WriteString("\n\n")
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	for i, r := range c.Runs {
		started := "—"
		if !r.StartedAt.IsZero() {
			started = r.StartedAt.UTC().Format("2006-01-02 15:04 UTC")
		}
		commit := "no commit"
		if r.GitCommit != "" {
			commit = "commit " + r.GitCommit
		}
		base := ""
		if i == 0 && len(c.Runs) > 1 {
			base = "\t(baseline)"
		}
		fmt.Fprintf(tw, "  %s\tphase %d\t%s\t%s\t%s%s\n", r.Label, r.Phase, orDash(r.Scenario), started, commit, base)
	}
	tw.Flush()
	b.WriteString("\n")

	tw = tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
	tw.Write([]byte("metric"))
	for _, r := range c.Runs {
		fmt.Fprintf(tw, "\t%s", r.Label)
	}
	for _, r := range c.Runs[min(1, len(c.Runs)):] {
		fmt.Fprintf(tw, "\t%s vs %s", r.Label, c.Runs[0].Label)
	}
	tw.Write([]byte("\n"))
	for _, m := range c.Metrics {
		if m.Unit == "%" {
			fmt.Fprint(tw, m.Name) // the values carry their "%"
		} else {
			fmt.Fprintf(tw, "%s (%s)", m.Name, m.Unit)
		}
		for _, v := range m.Values {
			fmt.Fprintf(tw, "\t%s", fmtCompared(v, m.Unit))
		}
		for _, ch := range m.Changes[min(1, len(m.Changes)):] {
			fmt.Fprintf(tw, "\t%s", fmtChange(ch, m.Unit))
		}
		tw.Write([]byte("\n"))
	}
	tw.Flush()
	b.WriteString("\n")
	for _, n := range c.Notes {
		fmt.Fprintf(b, "note: %s\n", n)
	}
	if len(c.Notes) > 0 {
		b.WriteString("\n")
	}
	if len(c.Runs) > 1 {
		b.WriteString(wrap(Method, 100))
		b.WriteString("\n")
	}
	return b.Flush()
}

func fmtCompared(v *float64, unit string) string {
	if v == nil {
		return "—"
	}
	switch unit {
	case "ms":
		return fmtMS(*v)
	case "%":
		switch {
		case *v == 0:
			return "0%"
		case *v >= 1:
			return strconv.FormatFloat(*v, 'f', 1, 64) + "%"
		}
		return strconv.FormatFloat(*v, 'g', 3, 64) + "%"
	}
	return fmtRate(*v)
}

func fmtChange(ch *Change, unit string) string {
	if ch == nil {
		return ""
	}
	var delta string
	switch {
	case math.IsNaN(ch.Delta):
		delta = "—"
	case unit == "%":
		delta = fmt.Sprintf("%+.3g pp", ch.Delta)
		if ch.Delta == 0 {
			delta = "±0 pp"
		}
	case math.IsNaN(ch.Relative):
		delta = fmt.Sprintf("%+.3g", ch.Delta)
	default:
		delta = fmt.Sprintf("%+.1f%%", 100*ch.Relative)
	}
	switch {
	case ch.Verdict == NoVerdict:
		return fmt.Sprintf("%s  n/a (%s)", delta, ch.Reason)
	case ch.P < 0.001:
		return fmt.Sprintf("%s  %s (p<0.001)", delta, ch.Verdict)
	}
	return fmt.Sprintf("%s  %s (p=%.3f)", delta, ch.Verdict, ch.P)
}

// wrap breaks text into lines of at most width characters.
func wrap(text string, width int) string {
	var b strings.Builder
	line := 0
	for _, w := range strings.Fields(text) {
		if line > 0 && line+1+len(w) > width {
			b.WriteString("\n")
			line = 0
		} else if line > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}
