package topologies

import (
	"math"
	"strings"
	"testing"
)

// exposition is what an app's /metrics shows of its pools (server/internal/
// dbmetrics), with a family around them that the parser must skip.
const exposition = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 286
# HELP scalelab_db_pool_in_use_connections Connections in use.
# TYPE scalelab_db_pool_in_use_connections gauge
scalelab_db_pool_in_use_connections{pool="primary",store="postgres"} IN
# HELP scalelab_db_pool_max_open_connections Most connections the pool opens.
# TYPE scalelab_db_pool_max_open_connections gauge
scalelab_db_pool_max_open_connections{pool="primary",store="postgres"} 4
# HELP scalelab_db_pool_wait_count_total Acquisitions that found no idle connection.
# TYPE scalelab_db_pool_wait_count_total counter
scalelab_db_pool_wait_count_total{pool="primary",store="postgres"} WAITS
# HELP scalelab_db_pool_wait_duration_seconds_total Time spent waiting.
# TYPE scalelab_db_pool_wait_duration_seconds_total counter
scalelab_db_pool_wait_duration_seconds_total{pool="primary",store="postgres"} SECONDS
`

// readingOf parses the exposition with these values, as app-1's.
func readingOf(t *testing.T, inUse, waits, seconds string) poolReadings {
	t.Helper()
	body := strings.NewReplacer("IN", inUse, "WAITS", waits, "SECONDS", seconds).Replace(exposition)
	families, err := parseExposition([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	p := poolReadings{}
	poolMetrics("app-1", families, p)
	return p
}

// TestDBPoolsOverARun takes the waits from the first reading to the last
// and the connections in use over every reading after the first.
func TestDBPoolsOverARun(t *testing.T) {
	base := readingOf(t, "0", "100", "2.5")
	mid := []poolReadings{readingOf(t, "4", "150", "3"), readingOf(t, "2", "180", "3.25")}
	final := readingOf(t, "3", "200", "3.5")
	got := dbPools(base, mid, final)
	if len(got) != 1 {
		t.Fatalf("dbPools = %+v, want one pool", got)
	}
	p := got[0]
	if p.Component != "app-1" || p.Store != "postgres" || p.Pool != "primary" || p.MaxOpen != 4 {
		t.Errorf("pool %+v, want app-1's postgres primary pool of 4", p)
	}
	if p.Waits != 100 || math.Abs(p.WaitS-1) > 1e-9 {
		t.Errorf("waits %d for %.3f s, want 100 for 1 s", p.Waits, p.WaitS)
	}
	if p.Samples != 3 || p.InUseMean != 3 || p.InUseMax != 4 {
		t.Errorf("in use: %d samples, mean %v, max %v; want 3, 3, 4 (the baseline left out)", p.Samples, p.InUseMean, p.InUseMax)
	}
}

// TestDBPoolsAfterARestart counts a counter that went down (the instance
// restarted) from zero, as the cache counters do.
func TestDBPoolsAfterARestart(t *testing.T) {
	got := dbPools(readingOf(t, "1", "500", "9"), nil, readingOf(t, "1", "20", "0.5"))
	if len(got) != 1 || got[0].Waits != 20 || got[0].WaitS != 0.5 {
		t.Errorf("dbPools = %+v, want 20 waits for 0.5 s", got)
	}
}

func TestParseExpositionRejectsGarbage(t *testing.T) {
	if _, err := parseExposition([]byte("scalelab_db_pool_wait_count_total{pool=\"primary\" 1\n")); err == nil {
		t.Error("parseExposition took a malformed exposition")
	}
}
