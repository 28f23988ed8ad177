package scenarios

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Metric is what a threshold measures.
type Metric string

// The metrics a threshold can judge. Latencies are durations, errors a
// percentage of requests, rate the achieved requests per second.
const (
	MetricP50    Metric = "p50"
	MetricP90    Metric = "p90"
	MetricP99    Metric = "p99"
	MetricP999   Metric = "p999"
	MetricMax    Metric = "max"
	MetricMean   Metric = "mean"
	MetricErrors Metric = "errors"
	MetricRate   Metric = "rate"

	// Consistency metrics, from the run's consistency check (see
	// Observed.Consistency): counts, and staleness durations.
	MetricLostWrites         Metric = "lost_writes"
	MetricRYWViolations      Metric = "ryw_violations"
	MetricMonotonicViolation Metric = "monotonic_violations"
	MetricLateOverwrites     Metric = "late_overwrites"
	MetricFinalReadFailures  Metric = "final_read_failures"
	MetricStalenessP99       Metric = "staleness_p99"
	MetricStalenessMax       Metric = "staleness_max"
)

// consistency reports whether m is judged on the consistency check.
func (m Metric) consistency() bool {
	switch m {
	case MetricLostWrites, MetricRYWViolations, MetricMonotonicViolation, MetricLateOverwrites,
		MetricFinalReadFailures, MetricStalenessP99, MetricStalenessMax:
		return true
	}
	return false
}

// duration reports whether m's bound is written as a duration.
func (m Metric) duration() bool {
	return m.latency() || m == MetricStalenessP99 || m == MetricStalenessMax
}

// Consistency is what a run's consistency check counted (see lab's
// consistency check and result.json's consistency section).
type Consistency struct {
	LostWrites, RYWViolations, MonotonicViolations, LateOverwrites, FinalReadFailures int64
	StalenessP99, StalenessMax                                                        time.Duration
}

func (m Metric) latency() bool {
	switch m {
	case MetricP50, MetricP90, MetricP99, MetricP999, MetricMax, MetricMean:
		return true
	}
	return false
}

// Unit is the unit of the metric's values in Outcome: "ms", "%" or "req/s".
func (m Metric) Unit() string {
	switch {
	case m.duration():
		return "ms"
	case m == MetricErrors:
		return "%"
	case m.consistency():
		return "count"
	}
	return "req/s"
}

// Threshold is a pass/fail criterion such as "p99 < 50ms", "errors < 0.1%",
// "rate > 1000", for one operation "get-user.p99 < 20ms", or on the
// consistency check "lost_writes == 0" or "staleness_p99 < 1s".
type Threshold struct {
	// Op restricts the threshold to one operation; "" means all of them.
	Op     Op
	Metric Metric
	// Cmp is one of "<", "<=", ">", ">=", "==".
	Cmp string
	// Bound is the limit in the metric's unit: milliseconds for latencies,
	// percent for errors, requests per second for rate.
	Bound float64
	// Latency is the bound of a latency metric as written.
	Latency time.Duration
}

// ParseThreshold parses "[OP.]METRIC CMP VALUE": METRIC is p50, p90, p99,
// p999 (or p99.9), max or mean with a duration VALUE ("50ms"), errors with a
// percentage ("0.1%"), or rate with requests per second ("1000"); or, for
// the whole run only, a consistency count (lost_writes, ryw_violations,
// monotonic_violations, late_overwrites, final_read_failures) with a
// number, or staleness_p99 or staleness_max with a duration. CMP is <, <=,
// >, >= or ==.
func ParseThreshold(s string) (Threshold, error) {
	var t Threshold
	left, cmp, right, ok := splitCmp(s)
	if !ok {
		return t, fmt.Errorf("%q: want [OP.]METRIC < VALUE, e.g. \"p99 < 50ms\", \"errors < 0.1%%\", \"rate > 1000\"", s)
	}
	t.Cmp = cmp
	metric, op, dotted := left, "", false
	if m, found := strings.CutSuffix(left, "p99.9"); found && (m == "" || strings.HasSuffix(m, ".")) {
		op, metric, dotted = strings.TrimSuffix(m, "."), "p999", m != ""
	} else if i := strings.LastIndex(left, "."); i >= 0 {
		op, metric, dotted = left[:i], left[i+1:], true
	}
	if dotted && op == "" {
		return t, fmt.Errorf("%q: empty operation before \".\"", s)
	}
	t.Op = Op(op)
	if t.Op != "" && !t.Op.Valid() {
		return t, fmt.Errorf("%q: unknown operation %q (want %s)", s, t.Op, opList())
	}
	t.Metric = Metric(metric)
	if t.Metric.consistency() && t.Op != "" {
		return t, fmt.Errorf("%q: %s is judged on the whole run, not on one operation", s, t.Metric)
	}
	switch {
	case t.Metric.consistency() && !t.Metric.duration():
		n, err := strconv.ParseInt(right, 10, 64)
		if err != nil || n < 0 {
			return t, fmt.Errorf("%q: %s needs a count such as 0, got %q", s, t.Metric, right)
		}
		t.Bound = float64(n)
	case t.Metric.duration():
		d, err := time.ParseDuration(right)
		if err != nil || d <= 0 && !t.Metric.consistency() {
			return t, fmt.Errorf("%q: %s needs a positive duration such as 50ms, got %q", s, t.Metric, right)
		}
		t.Latency = d
		t.Bound = float64(d) / float64(time.Millisecond)
	case t.Metric == MetricErrors:
		num, isPct := strings.CutSuffix(right, "%")
		f, err := strconv.ParseFloat(num, 64)
		if !isPct || err != nil || f < 0 || f > 100 {
			return t, fmt.Errorf("%q: errors needs a percentage from 0%% to 100%%, such as 0.1%%, got %q", s, right)
		}
		t.Bound = f
	case t.Metric == MetricRate:
		num := strings.TrimSuffix(right, "/s")
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 {
			return t, fmt.Errorf("%q: rate needs requests per second such as 1000, got %q", s, right)
		}
		t.Bound = f
	default:
		return t, fmt.Errorf("%q: unknown metric %q (want p50, p90, p99, p999, max, mean, errors, rate, lost_writes, ryw_violations, monotonic_violations, late_overwrites, final_read_failures, staleness_p99 or staleness_max)", s, metric)
	}
	return t, nil
}

// splitCmp splits "p99 < 50ms" at its comparison operator.
func splitCmp(s string) (left, cmp, right string, ok bool) {
	i := strings.IndexAny(s, "<>")
	j := i + 1
	if e := strings.Index(s, "=="); e >= 0 && (i < 0 || e < i) {
		i, j, cmp = e, e+2, "=="
	} else if i < 0 {
		return "", "", "", false
	} else {
		cmp = s[i : i+1]
		if j < len(s) && s[j] == '=' {
			cmp += "="
			j++
		}
	}
	left, right = strings.TrimSpace(s[:i]), strings.TrimSpace(s[j:])
	if left == "" || right == "" || strings.ContainsAny(right, "<>=") ||
		strings.ContainsAny(left, " \t") || strings.ContainsAny(right, " \t") {
		return "", "", "", false
	}
	return left, cmp, right, true
}

// String writes the threshold in the canonical form ParseThreshold reads.
func (t Threshold) String() string {
	var b strings.Builder
	if t.Op != "" {
		b.WriteString(string(t.Op) + ".")
	}
	fmt.Fprintf(&b, "%s %s ", t.Metric, t.Cmp)
	switch {
	case t.Metric.duration():
		b.WriteString(t.Latency.String())
	case t.Metric == MetricErrors:
		b.WriteString(strconv.FormatFloat(t.Bound, 'f', -1, 64) + "%")
	default:
		b.WriteString(strconv.FormatFloat(t.Bound, 'f', -1, 64))
	}
	return b.String()
}

// Stats are the numbers of one operation, or of all of them, that
// thresholds judge.
type Stats struct {
	Requests int64
	Errors   int64   // not counting throttled requests
	Rate     float64 // achieved requests per second
	P50      time.Duration
	P90      time.Duration
	P99      time.Duration
	P999     time.Duration
	Max      time.Duration
	Mean     time.Duration
}

// Observed is the view of a run's results that thresholds evaluate.
type Observed struct {
	// Total counts every HTTP request (an operation such as
	// read-after-write sends two).
	Total Stats
	// Ops counts each operation as a whole: its latency runs from the
	// operation's scheduled start to its last response.
	Ops map[Op]Stats
	// Consistency is the run's consistency check; nil when the run did
	// not check (its consistency thresholds then have no data, and fail).
	Consistency *Consistency
}

// Outcome is one threshold's verdict on a run.
type Outcome struct {
	Threshold Threshold
	Pass      bool
	// Value is what the run measured, in the metric's unit (see
	// Metric.Unit); meaningless when NoData.
	Value float64
	// NoData is set when the run has nothing to judge: no requests, or none
	// of the threshold's operation. Such a threshold fails.
	NoData bool
}

// Evaluate judges o by t.
func (t Threshold) Evaluate(o Observed) Outcome {
	out := Outcome{Threshold: t}
	if t.Metric.consistency() {
		c := o.Consistency
		if c == nil {
			out.NoData = true
			return out
		}
		switch t.Metric {
		case MetricLostWrites:
			out.Value = float64(c.LostWrites)
		case MetricRYWViolations:
			out.Value = float64(c.RYWViolations)
		case MetricMonotonicViolation:
			out.Value = float64(c.MonotonicViolations)
		case MetricLateOverwrites:
			out.Value = float64(c.LateOverwrites)
		case MetricFinalReadFailures:
			out.Value = float64(c.FinalReadFailures)
		case MetricStalenessP99:
			out.Value = float64(c.StalenessP99) / float64(time.Millisecond)
		case MetricStalenessMax:
			out.Value = float64(c.StalenessMax) / float64(time.Millisecond)
		}
		out.Pass = compare(out.Value, t.Cmp, t.Bound)
		return out
	}
	st := o.Total
	if t.Op != "" {
		var ok bool
		if st, ok = o.Ops[t.Op]; !ok {
			out.NoData = true
			return out
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	switch t.Metric {
	case MetricP50:
		out.Value = ms(st.P50)
	case MetricP90:
		out.Value = ms(st.P90)
	case MetricP99:
		out.Value = ms(st.P99)
	case MetricP999:
		out.Value = ms(st.P999)
	case MetricMax:
		out.Value = ms(st.Max)
	case MetricMean:
		out.Value = ms(st.Mean)
	case MetricErrors:
		if st.Requests > 0 {
			out.Value = 100 * float64(st.Errors) / float64(st.Requests)
		}
	case MetricRate:
		out.Value = st.Rate
	}
	if st.Requests == 0 && t.Metric != MetricRate {
		out.NoData = true
		return out
	}
	out.Pass = compare(out.Value, t.Cmp, t.Bound)
	return out
}

// compare judges "value cmp bound".
func compare(value float64, cmp string, bound float64) bool {
	switch cmp {
	case "<":
		return value < bound
	case "<=":
		return value <= bound
	case ">":
		return value > bound
	case ">=":
		return value >= bound
	case "==":
		return value == bound
	}
	return false
}

// Evaluate judges o by every threshold; ok is false if any failed.
func Evaluate(ts []Threshold, o Observed) (outcomes []Outcome, ok bool) {
	ok = true
	for _, t := range ts {
		out := t.Evaluate(o)
		ok = ok && out.Pass
		outcomes = append(outcomes, out)
	}
	return outcomes, ok
}

// Observed formats the measured value with its unit, e.g. "12.3ms", "0.05%",
// "1998.2 req/s", or "no data".
func (o Outcome) Observed() string {
	if o.NoData {
		return "no data"
	}
	switch o.Threshold.Metric.Unit() {
	case "ms":
		return time.Duration(o.Value * float64(time.Millisecond)).Round(time.Microsecond).String()
	case "%":
		return strconv.FormatFloat(o.Value, 'g', 3, 64) + "%"
	case "count":
		return strconv.FormatFloat(o.Value, 'f', 0, 64)
	}
	return strconv.FormatFloat(o.Value, 'f', 1, 64) + " req/s"
}

// String reads "PASS p99 < 50ms (observed 12.3ms)".
func (o Outcome) String() string {
	verdict := "FAIL"
	if o.Pass {
		verdict = "PASS"
	}
	return fmt.Sprintf("%s %s (observed %s)", verdict, o.Threshold, o.Observed())
}
