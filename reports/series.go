package reports

import "math"

// minInterval is the shortest second worth plotting: a sliver of a second
// at the end of a run holds a handful of requests, too few for a rate or a
// percentile.
const minInterval = 0.25

// measuredSeconds returns the seconds of r that belong to the measured part
// of the run. A point that starts at or after the end of the measured
// duration holds only what the graceful stop let finish (the last requests
// in a sliver of a second): plotted as a full second it would show a rate
// that never was. A last point shorter than minInterval is dropped for the
// same reason; a longer partial one is kept, its rates already per second
// of its real length.
func measuredSeconds(r *Result) []Second {
	var out []Second
	for _, s := range r.Series {
		if inMeasured(r, s.T, s.IntervalS) {
			out = append(out, s)
		}
	}
	return out
}

func inMeasured(r *Result, t int, interval float64) bool {
	if r.DurationS > 0 && float64(t) >= r.DurationS-1e-6 {
		return false
	}
	if interval > 0 && interval < minInterval {
		return false
	}
	if r.DurationS > 0 && interval == 0 && r.DurationS-float64(t) < minInterval {
		return false // a sliver, in a result written before IntervalS existed
	}
	return true
}

// measuredOpSeconds is measuredSeconds for one operation's series.
func measuredOpSeconds(r *Result, op *Operation) []OpSecond {
	var out []OpSecond
	for _, s := range op.Series {
		if inMeasured(r, s.T, interval(r, s.T)) {
			out = append(out, s)
		}
	}
	return out
}

// interval is the length of second t of r's series, 0 when unknown.
func interval(r *Result, t int) float64 {
	for _, s := range r.Series {
		if s.T == t {
			return s.IntervalS
		}
	}
	return 0
}

// opRates returns the operations completed per second at each second of
// r: Second.OpRate where the run recorded it, else the sum of the
// operations' own series (whose points count operations). ok is false when
// r has neither.
func opRates(r *Result) (rates map[int]float64, ok bool) {
	rates = map[int]float64{}
	for _, s := range r.Series {
		if s.Ops > 0 || s.OpRate > 0 {
			rates[s.T] = s.OpRate
			ok = true
		}
	}
	if ok {
		return rates, true
	}
	for _, op := range r.Operations {
		for _, s := range op.Series {
			rates[s.T] += s.Rate
			ok = true
		}
	}
	return rates, ok
}

// operationsCount is the number of operations completed: the sum over the
// mix, or the requests when the result has no operations.
func operationsCount(r *Result) int64 {
	var n int64
	for _, op := range r.Operations {
		n += op.Count
	}
	if len(r.Operations) == 0 {
		return r.Totals.Requests
	}
	return n
}

// operationsRate is operationsCount per second of the measured duration.
func operationsRate(r *Result) float64 {
	var rate float64
	for _, op := range r.Operations {
		rate += op.Rate
	}
	if len(r.Operations) == 0 {
		return r.Totals.Rate
	}
	return rate
}

// maxLagMS and maxVisibleMS are the worst replica's lag and write-to-visible
// p99, in ms; ok is false without replicas (or probes).
func maxLagMS(r *Result) (float64, bool) {
	v := math.Inf(-1)
	for _, rep := range r.Replicas {
		v = math.Max(v, 1000*rep.LagSMax)
	}
	return v, len(r.Replicas) > 0
}

func maxVisibleMS(r *Result) (float64, bool) {
	v, ok := math.Inf(-1), false
	for _, rep := range r.Replicas {
		if rep.VisibleMSP99 > 0 || rep.VisibleProbes > 0 {
			v, ok = math.Max(v, rep.VisibleMSP99), true
		}
	}
	return v, ok
}
