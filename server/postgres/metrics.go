package postgres

import (
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server/internal/dbmetrics"
)

// routeMetrics are the routing metrics, on top of dbmetrics' query
// durations (whose role label says primary or replica) and pool stats:
//
//	scalelab_db_queries_total{store, role, replica}             counter: operations by who served them
//	scalelab_db_replica_fallbacks_total{store, reason}          counter: reads a replica could have served that went to the primary
//	scalelab_db_replica_position_checks_total{store, replica, result} counter: re-checks of a replica's replay position
//	scalelab_db_replica_lag_seconds{store, replica}             gauge: the lag the router last saw
//	scalelab_db_replica_lag_bytes{store, replica}               gauge
//	scalelab_db_replica_healthy{store, replica}                 gauge: 1 healthy, 0 not
//	scalelab_db_replica_usable{store, replica}                  gauge: 1 when plain reads may go to it
//
// Counters exist (unregistered) when there is no registerer, so the hot
// path never checks.
type routeMetrics struct {
	queries   *prometheus.CounterVec
	fallbacks *prometheus.CounterVec
	checks    *prometheus.CounterVec
}

func newRouteMetrics() *routeMetrics {
	return &routeMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_db_queries_total",
			Help: "Store operations by the database that served them: role primary or replica, and which replica.",
		}, []string{"store", "role", "replica"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_db_replica_fallbacks_total",
			Help: "Reads that went to the primary although replicas are configured, by reason: forced, unhealthy, lag, position, replica_error.",
		}, []string{"store", "reason"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scalelab_db_replica_position_checks_total",
			Help: "Re-checks of a replica's replay position for a read that must see a newer position than the router sampled, by result: caught_up, behind, error.",
		}, []string{"store", "replica", "result"}),
	}
}

var (
	replicaLabels   = []string{"store", "replica"}
	descLagSeconds  = prometheus.NewDesc("scalelab_db_replica_lag_seconds", "How long ago the primary was at the position the replica has replayed, as the router last saw it.", replicaLabels, nil)
	descLagBytes    = prometheus.NewDesc("scalelab_db_replica_lag_bytes", "Bytes of WAL the replica is behind the primary, as the router last saw it.", replicaLabels, nil)
	descHealthy     = prometheus.NewDesc("scalelab_db_replica_healthy", "1 when the replica's last probe answered and no read failed on it since.", replicaLabels, nil)
	descUsable      = prometheus.NewDesc("scalelab_db_replica_usable", "1 when plain reads may go to the replica: healthy and within the lag bounds.", replicaLabels, nil)
	descReplayPause = prometheus.NewDesc("scalelab_db_replica_replay_paused", "1 when the replica's WAL replay is paused.", replicaLabels, nil)
)

// replicaCollector reports each replica's state as the router last saw it,
// at scrape time.
type replicaCollector struct{ db *DB }

func (c replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLagSeconds, descLagBytes, descHealthy, descUsable, descReplayPause} {
		ch <- d
	}
}

func (c replicaCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.db.Replicas() {
		gauge := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, "postgres", s.Name)
		}
		gauge(descLagSeconds, s.Lag.Seconds())
		gauge(descLagBytes, float64(s.LagBytes))
		gauge(descHealthy, b2f(s.Healthy))
		gauge(descUsable, b2f(s.Usable))
		gauge(descReplayPause, b2f(s.Paused))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// newQueryDurations returns dbmetrics' query duration histogram bound to
// role "primary" and to role "replica". dbmetrics.NewQueries fixes the role
// of the histogram it registers, and one registry takes a metric name only
// once; so each call registers into a capture, and one collector exports
// both halves as the one family they are (the role values never collide).
// Both are nil when reg is nil.
func newQueryDurations(reg prometheus.Registerer) (primary, replica *dbmetrics.Queries, err error) {
	if reg == nil {
		return nil, nil, nil
	}
	var p, r capture
	if primary, err = dbmetrics.NewQueries(&p, "postgres", "primary", ops); err != nil {
		return nil, nil, err
	}
	if replica, err = dbmetrics.NewQueries(&r, "postgres", "replica", ops); err != nil {
		return nil, nil, err
	}
	if err := reg.Register(merged{p.c, r.c}); err != nil {
		return nil, nil, err
	}
	return primary, replica, nil
}

// capture is a Registerer that keeps the one collector registered on it.
type capture struct{ c prometheus.Collector }

func (c *capture) Register(col prometheus.Collector) error { c.c = col; return nil }
func (c *capture) MustRegister(cols ...prometheus.Collector) {
	for _, col := range cols {
		c.c = col
	}
}
func (c *capture) Unregister(prometheus.Collector) bool { return false }

// merged exports two collectors of one metric family (same name, help and
// label names) as one.
type merged [2]prometheus.Collector

func (m merged) Describe(ch chan<- *prometheus.Desc) { m[0].Describe(ch) }
func (m merged) Collect(ch chan<- prometheus.Metric) {
	m[0].Collect(ch)
	m[1].Collect(ch)
}
