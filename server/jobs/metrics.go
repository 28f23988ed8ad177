package jobs

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
)

// metrics are the queue's: depth (read from River's table at scrape time,
// so every process reports the same number), and, in a worker, the time
// jobs waited and ran, and how they ended.
type metrics struct {
	wait     *prometheus.HistogramVec
	run      *prometheus.HistogramVec
	finished *prometheus.CounterVec
}

var jobBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(reg prometheus.Registerer, pool *pgxpool.Pool, working bool) *metrics {
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "scalelab_queue_depth",
		Help: "Jobs waiting to run (available, scheduled or retryable) in River's table; -1 when the database does not answer.",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		defer cancel()
		var n int64
		err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state IN ('available', 'scheduled', 'retryable')`).Scan(&n)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	reg.MustRegister(depth)
	m := &metrics{}
	if !working {
		return m
	}
	m.wait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "scalelab_job_queue_wait_seconds",
		Help:    "Time from a job being available (enqueued, or its retry due) to a worker starting it: the queue's latency, by kind.",
		Buckets: jobBuckets,
	}, []string{"kind"})
	m.run = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "scalelab_job_run_seconds",
		Help:    "Time a job's worker ran, from start to done (or failed), by kind.",
		Buckets: jobBuckets,
	}, []string{"kind"})
	m.finished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scalelab_jobs_finished_total",
		Help: "Job attempts that ended, by kind and outcome (completed, failed, cancelled).",
	}, []string{"kind", "outcome"})
	for _, kind := range []string{(ExportArgs{}).Kind(), (DeleteRecordsArgs{}).Kind(), (PurgeArgs{}).Kind()} {
		for _, outcome := range []string{"completed", "failed", "cancelled"} {
			m.finished.WithLabelValues(kind, outcome) // show zeros from the start
		}
	}
	reg.MustRegister(m.wait, m.run, m.finished)
	return m
}

func (m *metrics) observe(ev *river.Event) {
	if m.finished == nil || ev.Job == nil {
		return
	}
	kind := ev.Job.Kind
	outcome := "completed"
	switch ev.Kind {
	case river.EventKindJobFailed:
		outcome = "failed"
	case river.EventKindJobCancelled:
		outcome = "cancelled"
	}
	m.finished.WithLabelValues(kind, outcome).Inc()
	if ev.JobStats != nil {
		m.wait.WithLabelValues(kind).Observe(ev.JobStats.QueueWaitDuration.Seconds())
		m.run.WithLabelValues(kind).Observe(ev.JobStats.RunDuration.Seconds())
	}
}
