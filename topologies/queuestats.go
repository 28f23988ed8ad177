package topologies

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
)

// QueueStats is the job queue over a run, for a topology with workers:
// how deep it got, and per kind of job how many ended how, how long they
// waited from being enqueued (or their retry being due) to a worker
// starting them, and how long they ran. From the workers' and apps'
// metrics, through Prometheus.
type QueueStats struct {
	// DepthMax is the most jobs waiting at once (available, scheduled or
	// retryable), as Prometheus scraped it each interval; DepthEnd the
	// number waiting when the run ended.
	DepthMax float64
	DepthEnd float64
	// Jobs has one entry per kind of job that ran or ended in the run,
	// by kind.
	Jobs []JobKindStats
}

// JobKindStats is one kind of job over a run. The percentiles are
// estimated from the workers' histogram buckets (linear within a bucket,
// as Prometheus' histogram_quantile does); 0 without observations.
type JobKindStats struct {
	Kind      string
	Completed uint64
	Failed    uint64 // attempts that failed (retried, or discarded at the last)
	Cancelled uint64
	// Started counts the attempts whose wait was observed.
	Started              uint64
	WaitMSP50, WaitMSP99 float64
	RunMSP50, RunMSP99   float64
}

// jobCounters are the queue's cumulative counters at one moment, summed
// over the workers: "kind/outcome" → attempts ended, and for each
// histogram "kind/le" → observations at or below le.
type jobCounters struct {
	finished map[string]float64
	wait     map[string]float64
	run      map[string]float64
}

// readJobCounters reads the queue's counters through Prometheus; nil when
// the topology has no workers or no Prometheus.
func (s *Sampler) readJobCounters(ctx context.Context) *jobCounters {
	if len(s.top.WorkerMetricsURLs) == 0 || s.top.PrometheusURL == "" {
		return nil
	}
	c := &jobCounters{}
	for _, q := range []struct {
		into  *map[string]float64
		query string
		label string
	}{
		{&c.finished, `sum by (kind, outcome) (scalelab_jobs_finished_total)`, "outcome"},
		{&c.wait, `sum by (kind, le) (scalelab_job_queue_wait_seconds_bucket)`, "le"},
		{&c.run, `sum by (kind, le) (scalelab_job_run_seconds_bucket)`, "le"},
	} {
		vec, err := promQuery(ctx, s.top.PrometheusURL, q.query)
		if err != nil {
			s.problem("job queue from prometheus: %v", err)
			return nil
		}
		m := map[string]float64{}
		for _, v := range vec {
			m[v.labels["kind"]+"/"+v.labels[q.label]] = v.value
		}
		*q.into = m
	}
	return c
}

// queueStats turns the readings at the start and the end of a run into
// QueueStats, with the depth Prometheus saw over the run's duration d.
func (s *Sampler) queueStats(ctx context.Context, base, final *jobCounters, d time.Duration) *QueueStats {
	if base == nil || final == nil {
		return nil
	}
	q := &QueueStats{}
	secs := max(int(math.Ceil(d.Seconds())), 1)
	for _, x := range []struct {
		into  *float64
		query string
	}{
		{&q.DepthMax, fmt.Sprintf(`max_over_time(max(scalelab_queue_depth)[%ds:1s])`, secs)},
		{&q.DepthEnd, `max(scalelab_queue_depth)`},
	} {
		vec, err := promQuery(ctx, s.top.PrometheusURL, x.query)
		if err != nil {
			s.problem("job queue depth from prometheus: %v", err)
			continue
		}
		if len(vec) > 0 {
			*x.into = vec[0].value
		}
	}
	kinds := map[string]*JobKindStats{}
	kind := func(k string) *JobKindStats {
		if kinds[k] == nil {
			kinds[k] = &JobKindStats{Kind: k}
		}
		return kinds[k]
	}
	for key, v := range final.finished {
		k, outcome := splitKey(key)
		n := uint64(math.Round(counterDelta(base.finished[key], v)))
		if n == 0 {
			continue
		}
		switch outcome {
		case "completed":
			kind(k).Completed += n
		case "failed":
			kind(k).Failed += n
		case "cancelled":
			kind(k).Cancelled += n
		}
	}
	waits, runs := bucketDeltas(base.wait, final.wait), bucketDeltas(base.run, final.run)
	for k, b := range waits {
		st := kind(k)
		st.Started = uint64(math.Round(b.total()))
		st.WaitMSP50, st.WaitMSP99 = 1000*b.quantile(0.5), 1000*b.quantile(0.99)
	}
	for k, b := range runs {
		st := kind(k)
		st.RunMSP50, st.RunMSP99 = 1000*b.quantile(0.5), 1000*b.quantile(0.99)
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		if st := kinds[k]; st.Completed+st.Failed+st.Cancelled+st.Started > 0 {
			q.Jobs = append(q.Jobs, *st)
		}
	}
	return q
}

// splitKey splits "kind/label" at its last slash.
func splitKey(key string) (string, string) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}

// buckets is one histogram's cumulative bucket counts over a run, in
// increasing order of their upper bounds (the last is +Inf).
type buckets []bucket

type bucket struct {
	le    float64
	count float64
}

// bucketDeltas returns, per kind, the histogram of the observations made
// between base and final ("kind/le" → cumulative count).
func bucketDeltas(base, final map[string]float64) map[string]buckets {
	out := map[string]buckets{}
	for key, v := range final {
		k, leText := splitKey(key)
		le, err := strconv.ParseFloat(leText, 64)
		if err != nil {
			continue
		}
		out[k] = append(out[k], bucket{le: le, count: counterDelta(base[key], v)})
	}
	for k, b := range out {
		slices.SortFunc(b, func(x, y bucket) int {
			switch {
			case x.le < y.le:
				return -1
			case x.le > y.le:
				return 1
			}
			return 0
		})
		if b.total() == 0 {
			delete(out, k)
		}
	}
	return out
}

func (b buckets) total() float64 {
	if len(b) == 0 {
		return 0
	}
	return b[len(b)-1].count
}

// quantile estimates the q-quantile (0..1), linearly within the bucket it
// falls in; in the +Inf bucket it is the largest finite bound.
func (b buckets) quantile(q float64) float64 {
	total := b.total()
	if total == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, bk := range b {
		if bk.count >= rank {
			if math.IsInf(bk.le, 1) {
				return lower
			}
			in := bk.count - below
			if in <= 0 {
				return bk.le
			}
			return lower + (bk.le-lower)*(rank-below)/in
		}
		lower, below = bk.le, bk.count
	}
	return lower
}
