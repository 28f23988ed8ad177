package topologies

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPhasesLoad(t *testing.T) {
	tests := []struct {
		phase    int
		entry    string
		apps     int
		replicas int
		programs []string
	}{
		{1, "app", 1, 0, nil},
		{2, "app", 1, 0, []string{"initdb", "pg_ctl", "postgres", "prometheus"}},
		{3, "haproxy", 3, 2, []string{"initdb", "pg_ctl", "postgres", "pg_basebackup", "redis-server", "haproxy", "prometheus", "prometheus-postgres-exporter", "prometheus-redis-exporter"}},
		{4, "varnish", 3, 2, []string{"initdb", "pg_ctl", "postgres", "pg_basebackup", "pgbouncer", "redis-server", "haproxy", "varnishd", "varnishstat", "prometheus", "prometheus-postgres-exporter", "prometheus-redis-exporter", "prometheus-varnish-exporter"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("phase-%d", tt.phase), func(t *testing.T) {
			def, err := Phase(tt.phase, commandFlags())
			if err != nil {
				t.Fatal(err)
			}
			if def.Phase != tt.phase || def.Entry != tt.entry || def.Apps.Count != tt.apps {
				t.Errorf("Phase(%d) = phase %d, entry %q, %d apps; want %d, %q, %d", tt.phase, def.Phase, def.Entry, def.Apps.Count, tt.phase, tt.entry, tt.apps)
			}
			replicas := 0
			if def.Postgres != nil {
				replicas = def.Postgres.Replicas
			}
			if replicas != tt.replicas {
				t.Errorf("Phase(%d) has %d replicas, want %d", tt.phase, replicas, tt.replicas)
			}
			if diff := cmp.Diff(tt.programs, def.programs()); diff != "" {
				t.Errorf("Phase(%d).programs() mismatch (-want +got):\n%s", tt.phase, diff)
			}
		})
	}
	if _, err := Phase(9, commandFlags()); err == nil {
		t.Errorf("Phase(9) succeeded, want an error")
	}
}

func TestPhase4Defaults(t *testing.T) {
	def, err := Phase(4, commandFlags())
	if err != nil {
		t.Fatal(err)
	}
	if got := def.PgBouncer.PoolMode; got != "transaction" {
		t.Errorf("pgbouncer pool_mode = %q, want transaction", got)
	}
	if c := def.RedisCluster; c.Masters != 3 || c.ReplicasPerMaster != 1 || c.NodeTimeout != 2*time.Second {
		t.Errorf("redis_cluster = %+v, want 3 masters, 1 replica each, 2s node timeout", c)
	}
	if w := def.Workers; w == nil || w.Count != 1 {
		t.Errorf("workers = %+v, want one worker", w)
	}
}

// TestWorkersNeedWorkerFlags: a definition with workers cannot be checked
// without the worker's flag set, and says so.
func TestWorkersNeedWorkerFlags(t *testing.T) {
	flags := commandFlags()
	flags.Worker = nil
	if _, err := Phase(4, flags); err == nil || !strings.Contains(err.Error(), "no worker flag set") {
		t.Errorf("Phase(4) without the worker's flags = %v, want an error saying so", err)
	}
	if _, err := Phase(3, flags); err != nil {
		t.Errorf("Phase(3) without the worker's flags = %v, want no error (it has no workers)", err)
	}
}

// Each testdata/*.bad.yaml must fail with an error containing the text
// given here.
func TestBadDefinitions(t *testing.T) {
	want := map[string]string{
		"unknown-field":                      "testdata/unknown-field.bad.yaml:3: field postgress not found",
		"misspelt-flag":                      `testdata/misspelt-flag.bad.yaml:6: apps.flags[1]: "--cache-tl=0": scalelab server has no flag --cache-tl`,
		"addr-flag":                          `testdata/addr-flag.bad.yaml:5: apps.flags[1]: "--addr=127.0.0.1:8080": the runner sets --addr`,
		"flag-without-value":                 `testdata/flag-without-value.bad.yaml:5: apps.flags[1]: "--cache-ttl": --cache-ttl needs a value`,
		"no-db":                              "testdata/no-db.bad.yaml: apps.flags: no --db",
		"worker-command":                     "testdata/worker-command.bad.yaml:7: field command not found",
		"worker-misspelt-flag":               `testdata/worker-misspelt-flag.bad.yaml:10: workers.flags[1]: "--concurency=2": scalelab worker has no flag --concurency`,
		"worker-without-postgres":            "workers: need a postgres section",
		"worker-app-variable":                "testdata/worker-app-variable.bad.yaml:10: workers.flags[1]: unknown variable ${app.name}",
		"no-apps":                            "apps: every topology runs at least one app instance",
		"entry-without-component":            "entry: varnish, but there is no varnish section",
		"pgbouncer-without-postgres":         "pgbouncer: needs a postgres section",
		"variable-without-component":         "unknown variable ${postgres.url}",
		"replicas-variable-without-replicas": "unknown variable ${replicas.url}",
		"unknown-variable":                   "testdata/unknown-variable.bad.yaml:3: apps.flags[0]: unknown variable ${sqlite.path}",
		"malformed-flag":                     `testdata/malformed-flag.bad.yaml:3: apps.flags[0]: "-db=sqlite:x.db", want --name or --name=value`,
		"small-cluster":                      "Redis Cluster needs at least 3",
		"haproxy-maxconn":                    "haproxy.maxconn: 20000, want 1 to 9000",
		"bad-duration":                       "testdata/bad-duration.bad.yaml:3: cannot unmarshal",
		"too-many-apps":                      "apps.count: 100",
		"no-phase":                           "phase: must be a positive number",
		"bad-pool-mode":                      `pgbouncer.pool_mode: "connection"`,
		"exporter-interval":                  "prometheus.exporter_interval: 10ms, want at least 100ms",
	}
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(want) {
		t.Errorf("%d testdata/*.bad.yaml files, %d expectations", len(files), len(want))
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".bad.yaml")
		t.Run(name, func(t *testing.T) {
			_, err := LoadFile(f, commandFlags())
			if err == nil {
				t.Fatalf("LoadFile(%q) succeeded, want an error", f)
			}
			if !strings.Contains(err.Error(), want[name]) || want[name] == "" {
				t.Errorf("LoadFile(%q) = %v, want an error containing %q", f, err, want[name])
			}
		})
	}
}

func TestExpandFlag(t *testing.T) {
	vars := flagVars{
		"app.dir":      {"/run/app-1"},
		"replicas.url": {"postgres://r1", "postgres://r2"},
	}
	tests := []struct {
		flag string
		want []string
	}{
		{"--db=sqlite:${app.dir}/x.db", []string{"--db=sqlite:/run/app-1/x.db"}},
		{"--replica=${replicas.url}", []string{"--replica=postgres://r1", "--replica=postgres://r2"}},
		{"--cache-ttl=5m", []string{"--cache-ttl=5m"}},
	}
	for _, tt := range tests {
		got, err := expandFlag(tt.flag, vars)
		if err != nil {
			t.Errorf("expandFlag(%q): %v", tt.flag, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("expandFlag(%q) mismatch (-want +got):\n%s", tt.flag, diff)
		}
	}
	if _, err := expandFlag("--x=${nope}", vars); err == nil {
		t.Errorf("expandFlag with an unknown variable succeeded")
	}
}

func TestParseProcStat(t *testing.T) {
	// A command name with spaces and parentheses, as postgres' are.
	line := "4242 (postgres: a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 123456 1000 10 18446744073709551615\n"
	st, err := parseProcStat(4242, []byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{pid: 4242, state: 'S', ppid: 1, pgrp: 4242, session: 4242, utime: 7, stime: 3, cutime: 2, cstime: 1, startTicks: 123456}
	if st != want {
		t.Errorf("parseProcStat = %+v, want %+v", st, want)
	}
}

func TestParseHAProxyCSV(t *testing.T) {
	csv := "# pxname,svname,qcur,status,stot,check_status\n" +
		"fe_app,FRONTEND,,OPEN,10,\n" +
		"app,app-1,0,UP,6,L7OK\n" +
		"app,app-2,0,DOWN,4,L4CON\n" +
		"app,BACKEND,0,UP,10,\n"
	got, err := parseHAProxyCSV([]byte(csv))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]ServerState{
		"app-1": {Status: "UP", Check: "L7OK", Sessions: 6},
		"app-2": {Status: "DOWN", Check: "L4CON", Sessions: 4},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseHAProxyCSV mismatch (-want +got):\n%s", diff)
	}
}

func TestParseCacheCounters(t *testing.T) {
	body := `# HELP scalelab_cache_hits_total Cache hits by tier.
# TYPE scalelab_cache_hits_total counter
scalelab_cache_hits_total{tier="l1"} 42
scalelab_cache_hits_total{tier="l2"} 7
scalelab_cache_misses_total{tier="l1"} 8
scalelab_cache_evictions_total{tier="l1"} 3
`
	families, err := parseExposition([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	got := cacheCounters(families)
	want := map[string]float64{"l1/hits": 42, "l2/hits": 7, "l1/misses": 8}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cacheCounters mismatch (-want +got):\n%s", diff)
	}
}

func TestCacheStats(t *testing.T) {
	base := counters{cache: map[string]float64{"app-1/l1/hits": 10, "app-1/l1/misses": 5, "app-2/l1/hits": 100}}
	final := counters{cache: map[string]float64{
		"app-1/l1/hits": 30, "app-1/l1/misses": 10,
		"app-2/l1/hits": 4, // app-2 restarted: its counter started over
		"app-1/l2/hits": 3, "app-1/l2/misses": 1,
	}}
	got := cacheStats(base, final)
	want := CacheStats{L1: &CacheTier{Hits: 24, Misses: 5}, L2: &CacheTier{Hits: 3, Misses: 1}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("cacheStats mismatch (-want +got):\n%s", diff)
	}
	if r, ok := got.L2.HitRate(); !ok || r != 0.75 {
		t.Errorf("L2.HitRate() = %v, %v; want 0.75, true", r, ok)
	}
	if _, ok := got.L3.HitRate(); ok {
		t.Errorf("nil L3.HitRate() ok = true, want false")
	}
}

func TestPercentile(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	for _, tt := range []struct{ p, want float64 }{{50, 3}, {100, 5}, {0, 1}} {
		if got := percentile(xs, tt.p); got != tt.want {
			t.Errorf("percentile(%v, %v) = %v, want %v", xs, tt.p, got, tt.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("percentile(nil, 50) = %v, want 0", got)
	}
}

func TestMissingBinariesMessage(t *testing.T) {
	err := &MissingBinariesError{Programs: []string{"redis-server", "varnishd", "varnishstat", "pg_basebackup"}}
	want := "missing programs: redis-server, varnishd, varnishstat, pg_basebackup; install them with `make deps` (apt-get install redis-server varnish postgresql-15)"
	if got := err.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if err := checkPrograms([]string{"no-such-program-scalelab"}); err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Errorf("checkPrograms(missing) = %v, want a MissingBinariesError", err)
	}
}
