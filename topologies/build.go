package topologies

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// builder holds what one bring-up needs between its steps.
type builder struct {
	t     *Topology
	def   *Definition
	opts  Options
	bin   string
	ports *portPicker
	log   *slog.Logger
	steps []step

	appPorts                              []int
	metricsPorts                          []int // each app's --metrics-addr port
	workerPorts                           []int // each worker's --metrics-addr port
	haproxyPort, statsPort, varnishPort   int
	varnishAdmin, promPort, pgbouncerPort int
	exporters                             []exporterPlan // see exporters.go
	// secret is shared by every instance of the run (${run.secret}), e.g.
	// to sign tokens that any instance behind the load balancer accepts.
	secret string
	// net proxies the links between tiers (links.go); under the none
	// profile it makes no proxy and every address stays as it is.
	net *network
}

type step struct {
	name string
	deps []string
	run  func(ctx context.Context) error
}

func (b *builder) dir(name string) (string, error) {
	d := filepath.Join(b.t.Dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("%s dir: %w", name, err)
	}
	return d, nil
}

// plan picks the ports that other components' configs name and lists the
// steps with their dependencies.
func (b *builder) plan() error {
	def, t := b.def, b.t
	pick := func(p *int) error {
		v, err := b.ports.pick()
		*p = v
		return err
	}
	b.appPorts = make([]int, def.Apps.Count)
	b.metricsPorts = make([]int, def.Apps.Count)
	for i := range b.appPorts {
		if err := pick(&b.appPorts[i]); err != nil {
			return err
		}
		if err := pick(&b.metricsPorts[i]); err != nil {
			return err
		}
	}
	for _, p := range []struct {
		want bool
		port *int
	}{
		{def.HAProxy != nil, &b.haproxyPort}, {def.HAProxy != nil, &b.statsPort},
		{def.Varnish != nil, &b.varnishPort}, {def.Varnish != nil, &b.varnishAdmin},
		{def.Prometheus != nil, &b.promPort}, {def.PgBouncer != nil, &b.pgbouncerPort},
	} {
		if p.want {
			if err := pick(p.port); err != nil {
				return err
			}
		}
	}

	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return fmt.Errorf("topology secret: %w", err)
	}
	b.secret = "hex:" + hex.EncodeToString(secret[:])

	for i := range def.Apps.Count {
		t.AppURLs = append(t.AppURLs, "http://"+loopback(b.appPorts[i]))
		t.AppMetricsURLs = append(t.AppMetricsURLs, "http://"+loopback(b.metricsPorts[i]))
	}
	switch def.Entry {
	case "varnish":
		t.EntryURL = "http://" + loopback(b.varnishPort)
	case "haproxy":
		t.EntryURL = "http://" + loopback(b.haproxyPort)
	default:
		t.EntryURL = t.AppURLs[0]
	}

	// Every step that hands out an address of another component waits
	// for the proxy that may carry the link (links.go).
	var netDeps []string
	if b.net.on() {
		b.add("toxiproxy", nil, b.startToxiproxy)
		netDeps = []string{"toxiproxy"}
	}
	var dataDeps []string
	if def.Prometheus != nil {
		b.add("prometheus", nil, b.startPrometheus)
	}
	if def.Postgres != nil {
		b.add("primary", nil, b.startPrimary)
		dataDeps = append(dataDeps, "primary")
		for i := range def.Postgres.Replicas {
			name := fmt.Sprintf("replica-%d", i+1)
			b.add(name, append([]string{"primary"}, netDeps...), func(ctx context.Context) error { return b.startReplica(ctx, name) })
			dataDeps = append(dataDeps, name)
		}
	}
	if def.PgBouncer != nil {
		b.add("pgbouncer", []string{"primary"}, b.startPgBouncer)
		dataDeps = append(dataDeps, "pgbouncer")
	}
	if def.Redis != nil {
		b.add("redis", nil, b.startRedis)
		dataDeps = append(dataDeps, "redis")
	}
	if def.RedisCluster != nil {
		b.add("redis-cluster", nil, b.startCluster)
		dataDeps = append(dataDeps, "redis-cluster")
	}
	var apps []string
	for i := range def.Apps.Count {
		name := fmt.Sprintf("app-%d", i+1)
		b.add(name, append(slices.Clone(dataDeps), netDeps...), func(ctx context.Context) error { return b.startApp(ctx, i) })
		apps = append(apps, name)
	}
	// Workers after the apps: an app creates the schema, in the layout its
	// flags ask for (--partitions); a worker takes the one it finds.
	if err := b.planWorkers(append(slices.Clone(apps), netDeps...)); err != nil {
		return err
	}
	front := apps
	if def.HAProxy != nil {
		b.add("haproxy", append(slices.Clone(apps), netDeps...), b.startHAProxy)
		front = []string{"haproxy"}
	}
	if def.Varnish != nil {
		b.add("varnish", append(slices.Clone(front), netDeps...), b.startVarnish)
	}
	if b.net.on() {
		entry := map[string]string{"varnish": "varnish", "haproxy": "haproxy", "app": "app-1"}[def.Entry]
		b.add("client-link", []string{entry, "toxiproxy"}, b.clientLink)
	}
	if err := b.planExporters(); err != nil {
		return err
	}
	if def.Prometheus != nil {
		var all []string
		for _, s := range b.steps {
			all = append(all, s.name)
		}
		b.add("prometheus-targets", all, func(ctx context.Context) error {
			return poll(ctx, t.rt.prom.TargetsUp)
		})
	}
	return nil
}

// set changes the topology's fields under the lock that save reads them with.
func (b *builder) set(fn func(t *Topology)) {
	b.t.rt.mu.Lock()
	defer b.t.rt.mu.Unlock()
	fn(b.t)
}

func (b *builder) add(name string, deps []string, run func(context.Context) error) {
	b.steps = append(b.steps, step{name: name, deps: deps, run: run})
}

// run runs the steps, each as soon as its dependencies are done. The first
// failure cancels the rest.
func (b *builder) run(ctx context.Context) error {
	done := map[string]chan struct{}{}
	for _, s := range b.steps {
		done[s.name] = make(chan struct{})
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, s := range b.steps {
		g.Go(func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = fmt.Errorf("%s: panic: %v", s.name, r)
				}
			}()
			for _, d := range s.deps {
				select {
				case <-done[d]:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
			start := time.Now()
			if err := s.run(gctx); err != nil {
				if gctx.Err() != nil && ctx.Err() == nil {
					return gctx.Err() // another step failed first
				}
				return err
			}
			took := time.Since(start)
			b.log.Info("ready", "step", s.name, "took", took.Round(time.Millisecond))
			b.set(func(t *Topology) { t.Steps = append(t.Steps, StepTiming{Step: s.name, Seconds: took.Seconds()}) })
			close(done[s.name])
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("topology up (phase %d): %w", b.def.Phase, err)
	}
	return nil
}

// register records a component as soon as it may have a process, so that
// Down (and every failure path) stops it, and rewrites topology.json.
func (rt *runtime) register(t *Topology, m member) {
	rt.mu.Lock()
	rt.members = append(rt.members, m)
	rt.mu.Unlock()
	if err := t.save(); err != nil {
		rt.log.Warn("write topology.json", "err", err)
	}
}

func (b *builder) daemonHooks(d *daemon) {
	d.spec.dieWithParent = b.opts.DieWithParent
	d.onStart = func() {
		if err := b.t.save(); err != nil {
			b.log.Warn("write topology.json", "err", err)
		}
	}
}

func (b *builder) startPrometheus(ctx context.Context) error {
	dir, err := b.dir("prometheus")
	if err != nil {
		return err
	}
	app := promJob{Name: "app"}
	// The apps serve /metrics on a listener of their own (the phase files
	// pass --metrics-addr=${app.metrics_addr}), not on the API port.
	for i, p := range b.metricsPorts {
		app.Targets = append(app.Targets, promTarget{Addr: loopback(p), Component: fmt.Sprintf("app-%d", i+1)})
	}
	jobs := []promJob{app}
	if b.def.HAProxy != nil {
		jobs = append(jobs, promJob{Name: "haproxy", Targets: []promTarget{{Addr: loopback(b.statsPort), Component: "haproxy"}}})
	}
	jobs = append(jobs, b.workerJob()...)
	jobs = append(jobs, b.exporterJobs()...)
	p, err := newPrometheus(dir, b.def.Prometheus, b.promPort, jobs, b.log)
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.PrometheusURL, t.rt.prom = p.URL(), p })
	b.daemonHooks(&p.daemon)
	b.t.rt.register(b.t, p)
	return p.start(ctx)
}

func (b *builder) startPrimary(ctx context.Context) error {
	dir := filepath.Join(b.t.Dir, "primary")
	p, err := startPrimary(ctx, dir, b.def.Postgres, b.opts.FastPostgres, b.log, func(p *Postgres) {
		b.set(func(t *Topology) { t.rt.primary = p })
		b.t.rt.register(b.t, p)
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.PrimaryURL, t.DatabaseURL = p.URL(), p.URL() })
	return b.t.save()
}

func (b *builder) startReplica(ctx context.Context, name string) error {
	dir := filepath.Join(b.t.Dir, name)
	r, err := startReplica(ctx, b.t.rt.primary, name, dir, b.opts.FastPostgres, b.log, func(p *Postgres) {
		b.set(func(t *Topology) {
			t.rt.replicas = append(t.rt.replicas, p)
			slices.SortFunc(t.rt.replicas, func(a, c *Postgres) int { return cmpName(a.name, c.name) })
			t.ReplicaURLs = nil
			for _, r := range t.rt.replicas {
				t.ReplicaURLs = append(t.ReplicaURLs, r.URL())
			}
		})
		b.t.rt.register(b.t, p)
	})
	if err != nil || !b.net.on() {
		return err
	}
	return b.replicationLink(ctx, r)
}

func (b *builder) startPgBouncer(ctx context.Context) error {
	dir, err := b.dir("pgbouncer")
	if err != nil {
		return err
	}
	pb, err := newPgBouncer(dir, b.def.PgBouncer, b.pgbouncerPort, b.t.rt.primary.Port(), b.def.Postgres.Database, b.log)
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.PgBouncerURL, t.rt.pgbouncer = pb.URL(), pb })
	b.daemonHooks(&pb.daemon)
	b.t.rt.register(b.t, pb)
	return pb.start(ctx)
}

func (b *builder) startRedis(ctx context.Context) error {
	dir, err := b.dir("redis")
	if err != nil {
		return err
	}
	r, err := newRedis(dir, RedisOptions{Name: "redis", Settings: b.def.Redis.Settings, Logger: b.log}, b.ports)
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.RedisAddr, t.rt.redis = r.Addr(), r })
	b.daemonHooks(&r.daemon)
	b.t.rt.register(b.t, r)
	return r.start(ctx)
}

func (b *builder) startCluster(ctx context.Context) error {
	dir, err := b.dir("redis-cluster")
	if err != nil {
		return err
	}
	def := b.def.RedisCluster
	c, err := startRedisCluster(ctx, dir, RedisClusterOptions{
		Masters: def.Masters, ReplicasPerMaster: def.ReplicasPerMaster, NodeTimeout: def.NodeTimeout,
		Settings: def.Settings, Logger: b.log, DieWithParent: b.opts.DieWithParent,
	}, b.ports, func(r *Redis) {
		b.daemonHooks(&r.daemon)
		b.t.rt.register(b.t, r)
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.RedisClusterAddrs, t.rt.cluster = c.Addrs(), c })
	return b.t.save()
}

// vars are the values app flags may use.
func (b *builder) vars(name, dir, addr, metricsAddr string) flagVars {
	rt := b.t.rt
	v := flagVars{"app.name": {name}, "app.dir": {dir}, "app.addr": {addr}, "app.url": {"http://" + addr}, "run.secret": {b.secret}}
	if metricsAddr != "" {
		v["app.metrics_addr"] = []string{metricsAddr}
	}
	if rt.primary != nil {
		v["postgres.url"] = []string{rt.primary.URL()}
	}
	if len(rt.replicas) > 0 {
		var urls []string
		for _, r := range rt.replicas {
			urls = append(urls, r.URL())
		}
		v["replicas.url"] = urls
		v["replicas.urls"] = []string{strings.Join(urls, ",")}
	}
	if rt.pgbouncer != nil {
		v["pgbouncer.url"] = []string{rt.pgbouncer.URL()}
	}
	if rt.redis != nil {
		v["redis.addr"] = []string{rt.redis.Addr()}
	}
	if rt.cluster != nil {
		v["redis_cluster.addrs"] = []string{strings.Join(rt.cluster.Addrs(), ",")}
	}
	if b.haproxyPort != 0 {
		v["haproxy.url"] = []string{"http://" + loopback(b.haproxyPort)}
	}
	if b.varnishPort != 0 {
		v["varnish.url"] = []string{"http://" + loopback(b.varnishPort)}
	}
	if b.promPort != 0 {
		v["prometheus.url"] = []string{"http://" + loopback(b.promPort)}
	}
	for _, k := range []string{"postgres.url", "replicas.url", "replicas.urls", "pgbouncer.url", "redis.addr"} {
		for i, s := range v[k] {
			v[k][i] = b.net.rewrite("app", s)
		}
	}
	return v
}

// args expands flags; Parse checked them against the server's flag set.
func args(flags []string, vars flagVars) ([]string, error) {
	var out []string
	for _, f := range flags {
		exp, err := expandFlag(f, vars)
		if err != nil {
			return nil, err
		}
		out = append(out, exp...)
	}
	return out, nil
}

func (b *builder) startApp(ctx context.Context, i int) error {
	name := fmt.Sprintf("app-%d", i+1)
	dir, err := b.dir(name)
	if err != nil {
		return err
	}
	addr := loopback(b.appPorts[i])
	if err := b.appLinks(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	flags, err := args(b.def.Apps.Flags, b.vars(name, dir, addr, loopback(b.metricsPorts[i])))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if b.def.Postgres == nil && i == 0 {
		// Without Postgres each app keeps its own data: the topology's
		// database is app-1's --db (a relative SQLite path is relative to
		// the app's folder, where it runs).
		b.set(func(t *Topology) { t.DatabaseURL = databaseURL(flags, dir) })
	}
	args := append([]string{"server", "--addr=" + addr}, flags...)
	a := newApp(name, "app", dir, b.bin, args, b.appPorts[i], b.log)
	a.spec.env = appEnv(len(b.appPorts), goruntime.NumCPU(), os.Getenv("GOMAXPROCS"))
	a.metricsPort = b.metricsPorts[i]
	b.t.rt.mu.Lock()
	b.t.rt.apps = append(b.t.rt.apps, a)
	slices.SortFunc(b.t.rt.apps, func(x, y *App) int { return cmpName(x.name, y.name) })
	b.t.rt.mu.Unlock()
	b.daemonHooks(&a.daemon)
	b.t.rt.register(b.t, a)
	return a.start(ctx)
}

// appEnv is the environment an app instance adds to the runner's, for n
// instances on a machine of cores cores: GOMAXPROCS at their share of the
// cores, at least 1, unless the runner's environment sets GOMAXPROCS
// (given as set) or the share is every core. The instances of a topology
// share one machine with its databases and proxies; each would otherwise
// run a scheduler thread per core, and the Ps that find no work spin and
// wake each other (futex calls) on every request. Measured on phase 3
// (three apps, two cores), read-heavy at 1,000/s, two rounds each way
// interleaved: the apps' CPU per request fell from 528 and 570 µs to 426
// and 445, the whole topology's from 979 and 1,055 to 890 and 916, and
// p50 from 0.87 and 0.98 ms to 0.78 and 0.83. On machines of their own,
// the instances take every core: the Compose files set nothing.
//
// The share changes scheduling only. The server's admission limit
// defaults to 8 × GOMAXPROCS (scalelab server --max-inflight), so the
// instance is given the limit it had with every core, through the flag's
// environment variable (a --max-inflight in the phase file still wins):
// at half of it, with a quarter kept for reads, writes hung on a paused
// primary left two slots for reads, and one anonymous read in 1,260 was
// shed during primary-pause.
func appEnv(n, cores int, set string) []string {
	share := max(1, cores/max(n, 1))
	if set != "" || share >= cores {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(share), "SCALELAB_MAX_INFLIGHT=" + strconv.Itoa(serverInFlightPerCore*cores)}
}

// serverInFlightPerCore is scalelab server's default --max-inflight per
// GOMAXPROCS (server/app; the runner runs the server as a program and
// does not import it).
const serverInFlightPerCore = 8

func (b *builder) startHAProxy(ctx context.Context) error {
	dir, err := b.dir("haproxy")
	if err != nil {
		return err
	}
	var servers []haproxyServer
	for i, p := range b.appPorts {
		name := fmt.Sprintf("app-%d", i+1)
		addr, err := b.net.link("haproxy", name, loopback(p))
		if err != nil {
			return err
		}
		servers = append(servers, haproxyServer{Name: name, Addr: addr})
	}
	h, err := newHAProxy(dir, b.def.HAProxy, b.haproxyPort, b.statsPort, servers, b.log)
	if err != nil {
		return err
	}
	b.set(func(t *Topology) {
		t.HAProxyURL, t.HAProxyStatsURL, t.rt.haproxy = h.URL(), "http://"+h.StatsAddr()+"/stats", h
	})
	b.daemonHooks(&h.daemon)
	b.t.rt.register(b.t, h)
	return h.start(ctx)
}

func (b *builder) startVarnish(ctx context.Context) error {
	dir, err := b.dir("varnish")
	if err != nil {
		return err
	}
	backend, origin := b.appPorts[0], "app-1"
	if b.def.HAProxy != nil {
		backend, origin = b.haproxyPort, "haproxy"
	}
	if backend, err = b.linkPort("varnish", origin, backend); err != nil {
		return err
	}
	v, err := newVarnish(dir, b.def.Varnish, b.varnishPort, b.varnishAdmin, backend, b.log)
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.VarnishURL, t.VarnishWorkDir, t.rt.varnish = v.URL(), v.WorkDir(), v })
	b.daemonHooks(&v.daemon)
	b.t.rt.register(b.t, v)
	return v.start(ctx)
}

// databaseURL is the --db among an app's expanded flags, a relative
// SQLite path made absolute against dir (the app's working directory).
func databaseURL(flags []string, dir string) string {
	var db string
	for _, f := range flags {
		if v, ok := strings.CutPrefix(f, "--db="); ok {
			db = v // the last one wins, as in the flag package
		}
	}
	if path, ok := strings.CutPrefix(db, "sqlite:"); ok && !filepath.IsAbs(path) {
		return "sqlite:" + filepath.Join(dir, path)
	}
	return db
}

// cmpName orders app-2 before app-10.
func cmpName(a, b string) int {
	ai, _ := strconv.Atoi(a[strings.LastIndexByte(a, '-')+1:])
	bi, _ := strconv.Atoi(b[strings.LastIndexByte(b, '-')+1:])
	if c := strings.Compare(a[:strings.LastIndexByte(a, '-')+1], b[:strings.LastIndexByte(b, '-')+1]); c != 0 {
		return c
	}
	return ai - bi
}
