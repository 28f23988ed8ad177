package reports

import "fmt"

// Queue is the job queue over the measured part of a run, in a phase with
// queue workers (phase 4): how deep it got, and per kind of job how many
// attempts ended how and how long they took. From the workers' and apps'
// Prometheus metrics.
type Queue struct {
	// DepthMax is the most jobs waiting at once (available, scheduled or
	// retryable), as scraped each second; DepthEnd those waiting at the
	// end.
	DepthMax float64    `json:"depth_max"`
	DepthEnd float64    `json:"depth_end"`
	Jobs     []QueueJob `json:"jobs"`
}

// QueueJob is one kind of job (export, delete_records, cdn_purge) over a
// run. Latencies are estimated from histogram buckets (linear within a
// bucket), in milliseconds.
type QueueJob struct {
	Kind      string `json:"kind"`
	Completed int64  `json:"completed"`
	// Failed counts failed attempts: retried later, or given up at the
	// last attempt.
	Failed    int64 `json:"failed"`
	Cancelled int64 `json:"cancelled"`
	// Started counts the attempts a worker started.
	Started int64 `json:"started"`
	// WaitMS is from the job being enqueued (or its retry being due) to a
	// worker starting it: the queue's latency. RunMS is from start to done.
	WaitMS JobLatency `json:"wait_ms"`
	RunMS  JobLatency `json:"run_ms"`
}

// JobLatency is a job latency's percentiles in milliseconds.
type JobLatency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

func queueSection(r *Result) section {
	q := r.Queue
	tb := &table{
		head: []string{"job", "completed", "failed attempts", "cancelled", "wait p50 ms", "wait p99 ms", "run p50 ms", "run p99 ms"},
		num:  []bool{false, true, true, true, true, true, true, true},
	}
	for _, j := range q.Jobs {
		tb.rows = append(tb.rows, []cell{{text: j.Kind, code: true}, c(groupDigits(j.Completed)), c(groupDigits(j.Failed)), c(groupDigits(j.Cancelled)),
			c(fmtMS(j.WaitMS.P50)), c(fmtMS(j.WaitMS.P99)), c(fmtMS(j.RunMS.P50)), c(fmtMS(j.RunMS.P99))})
	}
	s := section{
		title: "Job queue",
		text: fmt.Sprintf("Heavy work goes to River's queue in Postgres and `scalelab worker` works it. Most jobs waiting at once: %g; waiting at the end: %g. "+
			"Wait is from a job being enqueued (or its retry falling due) to a worker starting it; run is from start to done. "+
			"Percentiles are estimated from the workers' histogram buckets.", q.DepthMax, q.DepthEnd),
		empty: "No job ran during the measured part.",
	}
	if len(q.Jobs) > 0 {
		s.table = tb
	}
	return s
}
