package postgres

import (
	"github.com/prometheus/client_golang/prometheus"
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
