// Package dbmetrics holds the Prometheus metrics both stores export, so that
// SQLite and PostgreSQL runs show up under the same names on one dashboard:
//
//	scalelab_db_query_duration_seconds{store, op, role}    histogram
//	scalelab_db_pool_open_connections{store, pool}          gauge
//	scalelab_db_pool_in_use_connections{store, pool}        gauge
//	scalelab_db_pool_idle_connections{store, pool}          gauge
//	scalelab_db_pool_max_open_connections{store, pool}      gauge
//	scalelab_db_pool_wait_count_total{store, pool}          counter
//	scalelab_db_pool_wait_duration_seconds_total{store, pool} counter
//
// store is "sqlite" or "postgres"; role is "primary" or "replica";
// pool names a connection pool: SQLite's "writer" and "reader", PostgreSQL's
// "primary". A wait is an acquisition that found no idle connection.
package dbmetrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Buckets span SQLite's tens of microseconds to a slow second.
var buckets = prometheus.ExponentialBuckets(25e-6, 2, 16) // 25µs .. 0.8s

// Queries times store operations. A nil *Queries does nothing, so a store
// opened without a registerer pays one nil check per operation.
type Queries struct {
	ops map[string]prometheus.Observer // read-only after New
}

// NewQueries registers the query duration histogram on reg and returns one
// *Queries per role, in the order given (a store with read replicas times
// its operations under "primary" and "replica"), with the operations ops
// resolved up front. It returns nils when reg is nil.
func NewQueries(reg prometheus.Registerer, store string, ops []string, roles ...string) ([]*Queries, error) {
	if reg == nil {
		return make([]*Queries, len(roles)), nil
	}
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "scalelab_db_query_duration_seconds",
		Help:    "Duration of store operations (one or more SQL statements), by store, operation and database role.",
		Buckets: buckets,
	}, []string{"store", "op", "role"})
	if err := reg.Register(h); err != nil {
		return nil, err
	}
	qs := make([]*Queries, len(roles))
	for i, role := range roles {
		q := &Queries{ops: make(map[string]prometheus.Observer, len(ops))}
		for _, op := range ops {
			q.ops[op] = h.WithLabelValues(store, op, role)
		}
		qs[i] = q
	}
	return qs, nil
}

// Since records an operation that started at start. Use it as
// defer q.Since("user", time.Now()).
func (q *Queries) Since(op string, start time.Time) {
	if q == nil {
		return
	}
	if o, ok := q.ops[op]; ok {
		o.Observe(time.Since(start).Seconds())
	}
}

// PoolStats is one pool's numbers at one moment.
type PoolStats struct {
	Open, InUse, Idle, MaxOpen int
	WaitCount                  int64
	WaitDuration               time.Duration
}

// Pool is a named pool and how to read its stats.
type Pool struct {
	Name  string
	Stats func() PoolStats
}

// RegisterPools registers a collector that reads the pools' stats at every
// scrape. It does nothing when reg is nil.
func RegisterPools(reg prometheus.Registerer, store string, pools ...Pool) error {
	if reg == nil {
		return nil
	}
	return reg.Register(&poolCollector{store: store, pools: pools})
}

var (
	labels      = []string{"store", "pool"}
	descOpen    = prometheus.NewDesc("scalelab_db_pool_open_connections", "Open connections (in use and idle).", labels, nil)
	descInUse   = prometheus.NewDesc("scalelab_db_pool_in_use_connections", "Connections in use.", labels, nil)
	descIdle    = prometheus.NewDesc("scalelab_db_pool_idle_connections", "Idle connections.", labels, nil)
	descMax     = prometheus.NewDesc("scalelab_db_pool_max_open_connections", "Most connections the pool opens.", labels, nil)
	descWaits   = prometheus.NewDesc("scalelab_db_pool_wait_count_total", "Connection acquisitions that had to wait (no idle connection).", labels, nil)
	descWaitDur = prometheus.NewDesc("scalelab_db_pool_wait_duration_seconds_total", "Total time spent waiting for a connection.", labels, nil)
)

type poolCollector struct {
	store string
	pools []Pool
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descOpen, descInUse, descIdle, descMax, descWaits, descWaitDur} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.pools {
		s := p.Stats()
		gauge := func(d *prometheus.Desc, v int) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), c.store, p.Name)
		}
		gauge(descOpen, s.Open)
		gauge(descInUse, s.InUse)
		gauge(descIdle, s.Idle)
		gauge(descMax, s.MaxOpen)
		ch <- prometheus.MustNewConstMetric(descWaits, prometheus.CounterValue, float64(s.WaitCount), c.store, p.Name)
		ch <- prometheus.MustNewConstMetric(descWaitDur, prometheus.CounterValue, s.WaitDuration.Seconds(), c.store, p.Name)
	}
}
