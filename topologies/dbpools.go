package topologies

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// DBPool is one database connection pool of one app instance over a run,
// from the instance's scalelab_db_pool_* metrics (server/internal/dbmetrics):
// how full it was, and how long requests waited for a connection.
type DBPool struct {
	Component string // app-1, …
	Store     string // "sqlite" or "postgres"
	// Pool is SQLite's "writer" or "reader", PostgreSQL's "primary" or a
	// replica's pool.
	Pool string
	// MaxOpen is the most connections the pool opens.
	MaxOpen float64
	// InUseMean and InUseMax are the connections in use over the Samples
	// read at each sampling interval and at the end.
	InUseMean float64
	InUseMax  float64
	Samples   int
	// Waits is how many acquisitions found no idle connection over the
	// run, and WaitS their time waiting for one, in seconds.
	Waits uint64
	WaitS float64
}

// dbPoolQuery selects the pool metrics the sampler reads from Prometheus.
const dbPoolQuery = `{__name__=~"scalelab_db_pool_(wait_count_total|wait_duration_seconds_total|in_use_connections|max_open_connections)"}`

// poolKey names one pool of one instance.
type poolKey struct{ component, store, pool string }

// poolReading is one reading of a pool's metrics: the counters as they
// stood, and the gauges.
type poolReading struct {
	waits, waitS   float64
	inUse, maxOpen float64
	haveInUse      bool
}

// set records metric name's value v.
func (r *poolReading) set(name string, v float64) {
	switch name {
	case "scalelab_db_pool_wait_count_total":
		r.waits = v
	case "scalelab_db_pool_wait_duration_seconds_total":
		r.waitS = v
	case "scalelab_db_pool_in_use_connections":
		r.inUse, r.haveInUse = v, true
	case "scalelab_db_pool_max_open_connections":
		r.maxOpen = v
	}
}

// poolReadings are one reading of every pool.
type poolReadings map[poolKey]*poolReading

func (p poolReadings) get(k poolKey) *poolReading {
	r := p[k]
	if r == nil {
		r = &poolReading{}
		p[k] = r
	}
	return r
}

// readPoolsPrometheus reads every instance's pools from Prometheus at base
// into p.
func readPoolsPrometheus(ctx context.Context, base string, p poolReadings) error {
	vec, err := promQuery(ctx, base, dbPoolQuery)
	if err != nil {
		return fmt.Errorf("db pools from prometheus: %w", err)
	}
	for _, v := range vec {
		p.get(poolKey{v.labels["component"], v.labels["store"], v.labels["pool"]}).set(v.labels["__name__"], v.value)
	}
	return nil
}

// poolMetrics reads component's pools from its exposition's families
// (parseExposition) into p.
func poolMetrics(component string, families map[string]*dto.MetricFamily, p poolReadings) {
	for name, f := range families {
		if !strings.HasPrefix(name, "scalelab_db_pool_") {
			continue
		}
		for _, m := range f.GetMetric() {
			k := poolKey{component: component, store: labelValue(m, "store"), pool: labelValue(m, "pool")}
			p.get(k).set(name, sampleValue(f, m))
		}
	}
}

// dbPools sums up the readings of a run: the counters from base to final,
// the connections in use over every reading after base (the sampling
// intervals' and final). Pools are in order of component, store and pool.
func dbPools(base poolReadings, readings []poolReadings, final poolReadings) []DBPool {
	keys := slices.SortedFunc(maps.Keys(final), func(a, b poolKey) int {
		return cmp.Or(cmp.Compare(a.component, b.component), cmp.Compare(a.store, b.store), cmp.Compare(a.pool, b.pool))
	})
	all := append(slices.Clip(readings), final)
	var out []DBPool
	for _, k := range keys {
		f := final[k]
		p := DBPool{Component: k.component, Store: k.store, Pool: k.pool, MaxOpen: f.maxOpen}
		var b poolReading
		if r := base[k]; r != nil {
			b = *r
		}
		p.Waits = uint64(math.Round(counterDelta(b.waits, f.waits)))
		p.WaitS = counterDelta(b.waitS, f.waitS)
		var sum float64
		for _, rs := range all {
			if r := rs[k]; r != nil && r.haveInUse {
				sum += r.inUse
				p.InUseMax = max(p.InUseMax, r.inUse)
				p.Samples++
			}
		}
		if p.Samples > 0 {
			p.InUseMean = sum / float64(p.Samples)
		}
		out = append(out, p)
	}
	return out
}
