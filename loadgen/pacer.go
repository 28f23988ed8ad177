package loadgen

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// A Pacer decides when each arrival of an open-model run is due.
//
// Due returns the time arrival n (counting from 0) is due, as an offset from
// the start of the run, and false when the schedule ends before arrival n.
// The executor sleeps until that time and starts the arrival then, whatever
// became of earlier arrivals: send times follow from the schedule alone,
// never from responses, so a slow server cannot slow the load down (the
// "coordinated omission" of closed-loop load generators). Latency is
// measured from the due time, so a late start is charged to the request.
//
// Due is called with n = 0, 1, 2, ... from one goroutine.
type Pacer interface {
	Due(n int64) (time.Duration, bool)
}

// PacerFunc adapts a function to a Pacer.
type PacerFunc func(n int64) (time.Duration, bool)

// Due calls f(n).
func (f PacerFunc) Due(n int64) (time.Duration, bool) { return f(n) }

// ConstantRate is a Pacer of a fixed number of arrivals per second,
// evenly spaced: arrival n is due at n/rate seconds, for ever (the executor
// bounds the run). A rate of 0 or less has no arrivals.
type ConstantRate float64

// Due returns n/rate seconds.
func (r ConstantRate) Due(n int64) (time.Duration, bool) {
	if r <= 0 {
		return 0, false
	}
	return time.Duration(float64(n) / float64(r) * float64(time.Second)), true
}

// Stage is one stage of a Ramp: the rate moves linearly from where the
// previous stage ended to Target over Duration. Equal targets hold a rate.
type Stage struct {
	// Target is the rate, in arrivals per second, at the end of the stage.
	Target float64
	// Duration is how long the stage lasts.
	Duration time.Duration
}

// Ramp is a Pacer whose rate follows straight lines between stage
// targets, like k6's ramping-arrival-rate. With Start 0 and stages
// {100/s, 10s}, {100/s, 20s}, {0/s, 5s} the rate is:
//
//	rate
//	100 |        ____________________
//	    |      /                      \
//	    |    /                          \
//	  0 |__/______________________________\___ time
//	    0        10                   30  35 s
//
// The arrivals due by time t are the area under that line, and arrival n is
// due when that area reaches n: inside a stage that is the root of a
// quadratic, so send times are exact and do not drift however long the run.
type Ramp struct {
	start  float64
	stages []Stage
	segs   []segment
	total  float64 // arrivals in the whole ramp
}

// segment is a stage with its precomputed place in the ramp.
type segment struct {
	at       time.Duration // start offset
	from, to float64       // rates at both ends
	secs     float64       // length in seconds
	before   float64       // arrivals due before the segment
	count    float64       // arrivals in the segment
}

// NewRamp returns a ramp that starts at rate start and runs through stages.
// Rates must not be negative and durations must be positive.
func NewRamp(start float64, stages ...Stage) (*Ramp, error) {
	if start < 0 || math.IsNaN(start) || math.IsInf(start, 0) {
		return nil, fmt.Errorf("ramp: start rate %v, want >= 0", start)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("ramp: no stages")
	}
	r := &Ramp{start: start, stages: append([]Stage(nil), stages...)}
	from, at, before := start, time.Duration(0), 0.0
	for i, s := range stages {
		if s.Target < 0 || math.IsNaN(s.Target) || math.IsInf(s.Target, 0) {
			return nil, fmt.Errorf("ramp: stage %d: target %v, want >= 0", i, s.Target)
		}
		if s.Duration <= 0 {
			return nil, fmt.Errorf("ramp: stage %d: duration %v, want > 0", i, s.Duration)
		}
		secs := s.Duration.Seconds()
		count := (from + s.Target) / 2 * secs
		r.segs = append(r.segs, segment{at: at, from: from, to: s.Target, secs: secs, before: before, count: count})
		from, at, before = s.Target, at+s.Duration, before+count
	}
	r.total = before
	return r, nil
}

// Duration returns the length of the whole ramp.
func (r *Ramp) Duration() time.Duration {
	last := r.segs[len(r.segs)-1]
	return last.at + r.stages[len(r.stages)-1].Duration
}

// Rate returns the target rate at offset t, in arrivals per second.
func (r *Ramp) Rate(t time.Duration) float64 {
	if t < 0 {
		return r.start
	}
	for _, s := range r.segs {
		if x := (t - s.at).Seconds(); x <= s.secs {
			return s.from + (s.to-s.from)*x/s.secs
		}
	}
	return 0
}

// Due returns when arrival n is due, solving for the time at which the area
// under the rate line reaches n.
func (r *Ramp) Due(n int64) (time.Duration, bool) {
	x := float64(n)
	if x >= r.total {
		return 0, false
	}
	// The first segment whose end lies beyond arrival n.
	i := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].before+r.segs[i].count > x })
	s := r.segs[i]
	m := x - s.before
	// Arrivals t seconds into the segment: from*t + k*t², k = (to-from)/(2*secs).
	// Solve k t² + from t - m = 0 in the form that stays exact when k is 0
	// and has no cancellation when from is large.
	k := (s.to - s.from) / (2 * s.secs)
	t := 0.0
	if m > 0 {
		t = 2 * m / (s.from + math.Sqrt(max(0, s.from*s.from+4*k*m)))
	}
	t = min(t, s.secs)
	return s.at + time.Duration(t*float64(time.Second)), true
}
