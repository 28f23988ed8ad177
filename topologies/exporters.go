package topologies

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Debian's Prometheus exporters for the data tiers, started when the
// phase file asks for them (prometheus.exporters) so that the dashboard
// can watch Postgres, Redis and Varnish live. Each is a daemon
// like any other component: `scalelab down` and every failure path stop
// it, and the sampler counts its CPU time (the price of watching).

// Exporter is one Prometheus exporter process.
type Exporter struct {
	daemon
	port int
}

// Addr is the exporter's host:port; it serves /metrics.
func (e *Exporter) Addr() string { return loopback(e.port) }

func (e *Exporter) info() ComponentInfo {
	return e.baseInfo(e.Addr(), "http://"+e.Addr()+"/metrics")
}

// exporterPlan is one exporter to start once the component it watches is
// ready.
type exporterPlan struct {
	name  string // postgres-exporter, …: its component name and job
	after string // the step it watches
	port  int
	// command returns the program and its arguments and environment, from
	// the running topology.
	command func(b *builder, port int, dir string) (path string, args, env []string, err error)
}

// The exporters' own programs (Debian package names).
const (
	postgresExporterBin = "prometheus-postgres-exporter"
	redisExporterBin    = "prometheus-redis-exporter"
	varnishExporterBin  = "prometheus-varnish-exporter"
)

// replayLagQueries adds pg_replication_replay_lag_seconds: Postgres' own
// replay_lag per replica, the time from a commit's flush on the primary to
// its replay on the replica, i.e. write-to-visible as the database sees it
// (0 when the replica is idle and caught up: Postgres then reports NULL).
const replayLagQueries = `pg_replication_replay:
  query: "SELECT application_name, COALESCE(EXTRACT(EPOCH FROM replay_lag), 0)::float8 AS lag_seconds FROM pg_stat_replication"
  metrics:
    - application_name:
        usage: "LABEL"
        description: "Replica (its application_name)"
    - lag_seconds:
        usage: "GAUGE"
        description: "Seconds from a commit's flush on the primary to its replay on the replica"
`

// planExporters picks the exporters' ports and adds their steps. Call it
// from plan before the step that waits for Prometheus' targets.
func (b *builder) planExporters() error {
	def := b.def
	if def.Prometheus == nil || !def.Prometheus.Exporters {
		return nil
	}
	if def.Postgres != nil {
		b.exporters = append(b.exporters, exporterPlan{name: "postgres-exporter", after: "primary", command: postgresExporter})
	}
	if def.Redis != nil {
		b.exporters = append(b.exporters, exporterPlan{name: "redis-exporter", after: "redis", command: redisExporter})
	}
	if def.RedisCluster != nil {
		b.exporters = append(b.exporters, exporterPlan{name: "redis-cluster-exporter", after: "redis-cluster", command: redisExporter})
	}
	if def.Varnish != nil {
		b.exporters = append(b.exporters, exporterPlan{name: "varnish-exporter", after: "varnish", command: varnishExporter})
	}
	// No pgbouncer exporter: Debian's prometheus-pgbouncer-exporter 1.7
	// fails at start against Debian's pgbouncer 1.18 (KeyError
	// 'total_requests': the counter was renamed in pgbouncer 1.14). The
	// apps' scalelab_db_pool_* metrics show the waits for a connection.
	for i := range b.exporters {
		e := &b.exporters[i]
		port, err := b.ports.pick()
		if err != nil {
			return err
		}
		e.port = port
		b.add(e.name, []string{e.after}, func(ctx context.Context) error { return b.startExporter(ctx, *e) })
	}
	return nil
}

// exporterJobs are the scrape jobs of the planned exporters.
func (b *builder) exporterJobs() []promJob {
	var jobs []promJob
	for _, e := range b.exporters {
		jobs = append(jobs, promJob{Name: e.name, Interval: promDuration(b.def.Prometheus.ExporterInterval),
			Targets: []promTarget{{Addr: loopback(e.port), Component: e.name}}})
	}
	return jobs
}

func (b *builder) startExporter(ctx context.Context, e exporterPlan) error {
	dir, err := b.dir(e.name)
	if err != nil {
		return err
	}
	addr := loopback(e.port)
	path, args, env, err := e.command(b, e.port, dir)
	if err != nil {
		return fmt.Errorf("%s: %w", e.name, err)
	}
	x := &Exporter{port: e.port}
	x.daemon = daemon{
		name: e.name, kind: "exporter", dir: dir, log: b.log,
		spec:       procSpec{path: path, args: args, env: env, dir: dir, logPath: filepath.Join(dir, e.name+".log")},
		stopSignal: syscall.SIGTERM,
		stopGrace:  5 * time.Second,
	}
	x.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, "http://"+addr+"/metrics")
		return err
	}
	b.daemonHooks(&x.daemon)
	b.t.rt.register(b.t, x)
	return x.start(ctx)
}

func postgresExporter(b *builder, port int, dir string) (string, []string, []string, error) {
	bin, err := lookBinary(postgresExporterBin)
	if err != nil {
		return "", nil, nil, err
	}
	queries := filepath.Join(dir, "queries.yaml")
	if err := os.WriteFile(queries, []byte(replayLagQueries), 0o644); err != nil {
		return "", nil, nil, fmt.Errorf("write queries: %w", err)
	}
	// The primary: pg_stat_replication there describes every replica.
	dsn := b.t.rt.primary.Server().URL("postgres")
	return bin, []string{"--web.listen-address=" + loopback(port), "--extend.query-path=" + queries, "--log.level=warn"},
		[]string{"DATA_SOURCE_NAME=" + dsn}, nil
}

func redisExporter(b *builder, port int, _ string) (string, []string, []string, error) {
	bin, err := lookBinary(redisExporterBin)
	if err != nil {
		return "", nil, nil, err
	}
	target := b.t.RedisAddr
	if c := b.t.rt.cluster; c != nil && len(c.Masters) > 0 {
		// One exporter on the first master: its INFO and CLUSTER INFO
		// (cluster state, known nodes); the other nodes are not scraped.
		target = c.Masters[0].Addr()
	}
	return bin, []string{"-redis.addr=redis://" + target, "-web.listen-address=" + loopback(port)}, nil, nil
}

func varnishExporter(b *builder, port int, _ string) (string, []string, []string, error) {
	bin, err := lookBinary(varnishExporterBin)
	if err != nil {
		return "", nil, nil, err
	}
	stat, err := lookBinary("varnishstat")
	if err != nil {
		return "", nil, nil, err
	}
	return bin, []string{"-n", b.t.VarnishWorkDir, "-varnishstat-path", stat, "-web.listen-address", loopback(port)}, nil, nil
}

// exporterPrograms are the exporters d starts (each program is also its
// Debian package's name).
func (d *Definition) exporterPrograms() []string {
	if d.Prometheus == nil || !d.Prometheus.Exporters {
		return nil
	}
	var p []string
	if d.Postgres != nil {
		p = append(p, postgresExporterBin)
	}
	if d.Redis != nil || d.RedisCluster != nil {
		p = append(p, redisExporterBin)
	}
	if d.Varnish != nil {
		p = append(p, varnishExporterBin)
	}
	return p
}
