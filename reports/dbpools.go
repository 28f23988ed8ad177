package reports

import (
	"fmt"
	"strconv"
)

// DBPool is one database connection pool of one app instance over a run
// (`db_pools[]` in result.json): how full it was and how long requests
// waited for a connection. A pool whose connections are all in use makes
// the next request wait while the cores may be idle: a bottleneck of its
// own, which a model of the CPU alone does not see.
type DBPool struct {
	// Component is the app instance (app-1, …), Store "sqlite" or
	// "postgres", Pool the pool: SQLite's "writer" or "reader",
	// PostgreSQL's "primary", or a replica's.
	Component string `json:"component"`
	Store     string `json:"store"`
	Pool      string `json:"pool"`
	// MaxOpen is the most connections the pool opens.
	MaxOpen float64 `json:"max_open"`
	// InUseMean and InUseMax are the connections in use, read once a
	// sampling interval (each second) and at the end.
	InUseMean float64 `json:"in_use_mean"`
	InUseMax  float64 `json:"in_use_max"`
	// Waits is how many acquisitions found no idle connection, WaitS
	// their time waiting in seconds, WaitsPerS the waits per second of
	// the run, and WaitMSMean the mean wait of one of them.
	Waits      int64   `json:"waits"`
	WaitS      float64 `json:"wait_s"`
	WaitsPerS  float64 `json:"waits_per_s"`
	WaitMSMean float64 `json:"wait_ms_mean"`
	// WaitUSPerRequest is WaitS over every request of the run, in
	// microseconds: what waiting for this pool added to the mean request.
	WaitUSPerRequest float64 `json:"wait_us_per_request"`
}

func dbPoolsSection(r *Result) section {
	tb := &table{
		head: []string{"instance", "pool", "connections", "in use mean", "in use max", "waits/s", "mean wait ms", "wait µs per request"},
		num:  []bool{false, false, true, true, true, true, true, true},
	}
	for _, p := range r.DBPools {
		mean := "—"
		if p.Waits > 0 {
			mean = fmtMS(p.WaitMSMean)
		}
		tb.rows = append(tb.rows, []cell{c(p.Component), c(p.Store + " " + p.Pool), c(strconv.FormatFloat(p.MaxOpen, 'f', -1, 64)),
			c(fmt.Sprintf("%.1f", p.InUseMean)), c(strconv.FormatFloat(p.InUseMax, 'f', -1, 64)),
			c(fmt.Sprintf("%.0f", p.WaitsPerS)), c(mean), c(fmt.Sprintf("%.1f", p.WaitUSPerRequest))})
	}
	return section{
		title: "Database pools",
		text: "Each app instance's connection pools: the connections they may open, how many were in use (read each second), " +
			"and the acquisitions that found none idle and had to wait. A request waiting for a connection may wait while cores are idle: " +
			"a full pool is a bottleneck of its own. Per request is the pool's waiting time over every request of the run.",
		table: tb,
	}
}
