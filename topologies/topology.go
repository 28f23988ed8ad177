package topologies

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"scalelab/internal/pgserver"
)

// Options configures one bring-up.
type Options struct {
	// Binary is the scalelab executable the app instances run
	// (`<Binary> server --addr … <flags>`). Required.
	Binary string
	// Dir is the folder that holds run folders; default
	// ".scalelab/topologies". Postgres runs as the postgres user when the
	// runner is root, so Dir's parents must be searchable by that user.
	Dir string
	// RunID names the run's folder inside Dir; default
	// "<yyyymmdd-hhmmss>-phase-N-<random>".
	RunID string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// Timeout bounds the whole bring-up; default 2 minutes.
	Timeout time.Duration
	// FastPostgres runs Postgres without fsync (initdb --no-sync, fsync =
	// off): quicker for tests, wrong for measuring durable writes.
	FastPostgres bool
}

// Component is one process (or process group) of a running topology,
// addressed by name for fault injection.
type Component interface {
	Name() string
	// PID is the main process ID, 0 while the component is stopped.
	PID() int
	// Stop stops it gracefully (its own stop command or SIGTERM, then
	// SIGKILL) and waits until it is gone.
	Stop(ctx context.Context) error
	// Kill sends SIGKILL to its process group and waits until it is gone.
	Kill(ctx context.Context) error
	// Pause sends SIGSTOP to its process group; Resume sends SIGCONT.
	Pause() error
	Resume() error
	// Restart stops it if it runs, starts it again on the same port with
	// the same data, and waits until it is ready.
	Restart(ctx context.Context) error
}

// member is what the runner keeps of each component.
type member interface {
	Component
	info() ComponentInfo
}

// ComponentInfo describes one component in topology.json.
type ComponentInfo struct {
	Name string `json:"name"` // app-1, primary, replica-1, redis, redis-master-0, haproxy, …
	Kind string `json:"kind"` // app, worker, postgres, pgbouncer, redis, haproxy, varnish, prometheus
	PID  int    `json:"pid"`  // 0 when not running
	// StartTicks is the process's start time (/proc/<pid>/stat field 22):
	// `scalelab down` signals a PID only while it still names this process.
	StartTicks uint64 `json:"start_ticks,omitempty"`
	Addr       string `json:"addr,omitempty"` // host:port clients use
	URL        string `json:"url,omitempty"`  // HTTP or postgres:// URL
	Dir        string `json:"dir"`            // data, config and log
	Log        string `json:"log,omitempty"`
}

// Topology is a running set of components. Its exported fields are the
// endpoints, also written to Dir/topology.json so that a person (or
// `scalelab down` in another process) can find them.
type Topology struct {
	Phase     int       `json:"phase"`
	RunID     string    `json:"run_id"`
	Dir       string    `json:"dir"`
	API       string    `json:"api"` // path prefix of the user API
	StartedAt time.Time `json:"started_at"`
	// UpSeconds is how long the bring-up took, readiness checks included.
	UpSeconds float64 `json:"up_s"`
	// Steps is each bring-up step's duration; steps run concurrently
	// where they do not depend on each other.
	Steps []StepTiming `json:"steps,omitempty"`

	EntryURL          string   `json:"entry_url"` // where clients go: varnish, haproxy or app-1
	AppURLs           []string `json:"app_urls"`
	PrimaryURL        string   `json:"primary_url,omitempty"`
	ReplicaURLs       []string `json:"replica_urls,omitempty"`
	PgBouncerURL      string   `json:"pgbouncer_url,omitempty"`
	RedisAddr         string   `json:"redis_addr,omitempty"`
	RedisClusterAddrs []string `json:"redis_cluster_addrs,omitempty"`
	HAProxyURL        string   `json:"haproxy_url,omitempty"`
	HAProxyStatsURL   string   `json:"haproxy_stats_url,omitempty"` // /stats, /metrics
	VarnishURL        string   `json:"varnish_url,omitempty"`
	VarnishWorkDir    string   `json:"varnish_workdir,omitempty"` // varnishstat -n
	PrometheusURL     string   `json:"prometheus_url,omitempty"`
	// Skipped says what the definition asks for that this run left out
	// (flags or commands the server binary does not have yet).
	Skipped []string `json:"skipped,omitempty"`

	rt *runtime
}

// StepTiming is one bring-up step.
type StepTiming struct {
	Step    string  `json:"step"`
	Seconds float64 `json:"s"`
}

// runtime is the live state behind a Topology.
type runtime struct {
	log *slog.Logger

	mu      sync.Mutex
	members []member

	primary   *Postgres
	replicas  []*Postgres
	pgbouncer *PgBouncer
	redis     *Redis
	cluster   *RedisCluster
	apps      []*App
	workers   []*App
	haproxy   *HAProxy
	varnish   *Varnish
	prom      *Prometheus
	stoppedAt *time.Time

	downMu sync.Mutex // serializes Down
}

// topologyFile is topology.json.
type topologyFile struct {
	Topology
	Components []ComponentInfo `json:"components"`
	StoppedAt  *time.Time      `json:"stopped_at,omitempty"`
}

// Up brings the topology up: every component on free 127.0.0.1 ports in
// its own folder under opts.Dir/<run-id>/, started in dependency order
// (independent ones concurrently), each waited on until it really serves.
// It returns once Prometheus, if any, has scraped every target.
//
// On any failure, ctx cancellation or panic it stops everything it started
// before returning. The caller stops a returned topology with Down.
func Up(ctx context.Context, def *Definition, opts Options) (t *Topology, err error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = discardLogger()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 2 * time.Minute
	}
	if err := CheckBinaries(def); err != nil {
		return nil, err
	}
	if def.Postgres != nil {
		if err := pgserver.CheckBinaries(); err != nil {
			return nil, err
		}
	}
	bin, err := filepath.Abs(opts.Binary)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if opts.Binary == "" || err != nil {
		return nil, fmt.Errorf("topology: the scalelab binary %q: %v (build it with `make build`)", opts.Binary, err)
	}
	dir, err := runDir(opts, def)
	if err != nil {
		return nil, err
	}
	t = &Topology{
		Phase: def.Phase, RunID: filepath.Base(dir), Dir: dir, API: def.API, StartedAt: start.UTC(),
		rt: &runtime{log: log.With("run", filepath.Base(dir))},
	}
	log = t.rt.log
	log.Info("topology up: starting", "phase", def.Phase, "dir", dir)

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	defer func() {
		r := recover()
		if err == nil && r == nil {
			return
		}
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer dcancel()
		log.Warn("topology up failed; stopping what was started", "err", err, "panic", r)
		if derr := t.Down(dctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("stopping after the failure: %w", derr))
		}
		if r != nil {
			panic(r)
		}
		t = nil
	}()

	b := &builder{t: t, def: def, opts: opts, bin: bin, ports: newPortPicker(), log: log}
	if err := b.plan(ctx); err != nil {
		return t, err
	}
	if err := b.run(ctx); err != nil {
		return t, err
	}
	t.rt.mu.Lock()
	t.UpSeconds = time.Since(start).Seconds()
	t.rt.mu.Unlock()
	if err := t.save(); err != nil {
		return t, err
	}
	log.Info("topology up", "phase", def.Phase, "entry", t.EntryURL, "took", time.Since(start).Round(time.Millisecond),
		"json", filepath.Join(dir, "topology.json"))
	return t, nil
}

// runDir creates the run's folder, searchable by the postgres user.
func runDir(opts Options, def *Definition) (string, error) {
	base := opts.Dir
	if base == "" {
		base = filepath.Join(".scalelab", "topologies")
	}
	id := opts.RunID
	if id == "" {
		var rnd [3]byte
		_, _ = rand.Read(rnd[:])
		id = fmt.Sprintf("%s-phase-%d-%s", time.Now().Format("20060102-150405"), def.Phase, hex.EncodeToString(rnd[:]))
	}
	dir, err := filepath.Abs(filepath.Join(base, id))
	if err != nil {
		return "", fmt.Errorf("topology dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("topology dir: %w", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) > 0 {
		return "", fmt.Errorf("topology dir %s is not empty", dir)
	}
	// MkdirAll honours the umask; Postgres, pgbouncer and Varnish's
	// worker run as other users and must reach their folders.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("topology dir: %w", err)
	}
	if os.Geteuid() == 0 {
		for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
			if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
				return "", fmt.Errorf("topology dir %s: %s is not searchable by other users (postgres, varnish); use a folder whose parents are (mode o+x), not one under t.TempDir()", dir, d)
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return dir, nil
}

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
	haproxyPort, statsPort, varnishPort   int
	varnishAdmin, promPort, pgbouncerPort int
	serverFlags, workerFlags              map[string]bool
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

// plan picks the ports that other components' configs name, probes the
// server binary's flags, and lists the steps with their dependencies.
func (b *builder) plan(ctx context.Context) error {
	def, t := b.def, b.t
	pick := func(p *int) error {
		v, err := b.ports.pick()
		*p = v
		return err
	}
	b.appPorts = make([]int, def.Apps.Count)
	for i := range b.appPorts {
		if err := pick(&b.appPorts[i]); err != nil {
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

	b.serverFlags = probeFlags(ctx, b.bin, "server")
	if !b.serverFlags["addr"] {
		return fmt.Errorf("topology: %s server -h lists no --addr flag; is it the scalelab binary?", b.bin)
	}
	if w := def.Workers; w != nil && w.Count > 0 {
		b.workerFlags = probeFlags(ctx, b.bin, w.Command)
		if len(b.workerFlags) == 0 {
			t.Skipped = append(t.Skipped, fmt.Sprintf("workers: %s has no %q command yet", filepath.Base(b.bin), w.Command))
		}
	}

	for i := range def.Apps.Count {
		t.AppURLs = append(t.AppURLs, "http://"+loopback(b.appPorts[i]))
	}
	switch def.Entry {
	case "varnish":
		t.EntryURL = "http://" + loopback(b.varnishPort)
	case "haproxy":
		t.EntryURL = "http://" + loopback(b.haproxyPort)
	default:
		t.EntryURL = t.AppURLs[0]
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
			b.add(name, []string{"primary"}, func(ctx context.Context) error { return b.startReplica(ctx, name) })
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
		b.add(name, dataDeps, func(ctx context.Context) error { return b.startApp(ctx, i) })
		apps = append(apps, name)
	}
	if w := def.Workers; w != nil && len(b.workerFlags) > 0 {
		for i := range w.Count {
			name := fmt.Sprintf("worker-%d", i+1)
			b.add(name, dataDeps, func(ctx context.Context) error { return b.startWorker(ctx, name) })
		}
	}
	front := apps
	if def.HAProxy != nil {
		b.add("haproxy", apps, b.startHAProxy)
		front = []string{"haproxy"}
	}
	if def.Varnish != nil {
		b.add("varnish", front, b.startVarnish)
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
	for i, p := range b.appPorts {
		app.Targets = append(app.Targets, promTarget{Addr: loopback(p), Component: fmt.Sprintf("app-%d", i+1)})
	}
	jobs := []promJob{app}
	if b.def.HAProxy != nil {
		jobs = append(jobs, promJob{Name: "haproxy", Targets: []promTarget{{Addr: loopback(b.statsPort), Component: "haproxy"}}})
	}
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
	b.set(func(t *Topology) { t.PrimaryURL = p.URL() })
	return b.t.save()
}

func (b *builder) startReplica(ctx context.Context, name string) error {
	dir := filepath.Join(b.t.Dir, name)
	_, err := startReplica(ctx, b.t.rt.primary, name, dir, b.opts.FastPostgres, b.log, func(p *Postgres) {
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
	return err
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
		Settings: def.Settings, Logger: b.log,
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

// vars are the values app and worker flags may use.
func (b *builder) vars(name, dir, addr string) flagVars {
	rt := b.t.rt
	v := flagVars{"app.name": {name}, "app.dir": {dir}, "app.addr": {addr}, "app.url": {"http://" + addr}}
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
	return v
}

// args expands flags and drops those the binary does not define.
func (b *builder) args(flags []string, supported map[string]bool, vars flagVars, what string) ([]string, error) {
	var out []string
	for _, f := range flags {
		name, _, _ := strings.Cut(strings.TrimPrefix(f, "--"), "=")
		if !supported[name] {
			b.noteSkipped(fmt.Sprintf("%s: %s does not have --%s yet", what, filepath.Base(b.bin), name))
			continue
		}
		exp, err := expandFlag(f, vars)
		if err != nil {
			return nil, err
		}
		out = append(out, exp...)
	}
	return out, nil
}

func (b *builder) noteSkipped(msg string) {
	b.t.rt.mu.Lock()
	defer b.t.rt.mu.Unlock()
	if !slices.Contains(b.t.Skipped, msg) {
		b.t.Skipped = append(b.t.Skipped, msg)
		b.log.Warn("skipped", "what", msg)
	}
}

func (b *builder) startApp(ctx context.Context, i int) error {
	name := fmt.Sprintf("app-%d", i+1)
	dir, err := b.dir(name)
	if err != nil {
		return err
	}
	addr := loopback(b.appPorts[i])
	flags, err := b.args(b.def.Apps.Flags, b.serverFlags, b.vars(name, dir, addr), "apps")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	args := append([]string{"server", "--addr=" + addr}, flags...)
	a := newApp(name, "app", dir, b.bin, args, b.appPorts[i], b.log)
	b.t.rt.mu.Lock()
	b.t.rt.apps = append(b.t.rt.apps, a)
	slices.SortFunc(b.t.rt.apps, func(x, y *App) int { return cmpName(x.name, y.name) })
	b.t.rt.mu.Unlock()
	b.daemonHooks(&a.daemon)
	b.t.rt.register(b.t, a)
	return a.start(ctx)
}

func (b *builder) startWorker(ctx context.Context, name string) error {
	dir, err := b.dir(name)
	if err != nil {
		return err
	}
	port := 0
	var args []string
	if b.workerFlags["addr"] {
		if port, err = b.ports.pick(); err != nil {
			return err
		}
		args = append(args, "--addr="+loopback(port))
	}
	flags, err := b.args(b.def.Workers.Flags, b.workerFlags, b.vars(name, dir, loopback(port)), "workers")
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	args = append(append([]string{b.def.Workers.Command}, args...), flags...)
	w := newApp(name, "worker", dir, b.bin, args, port, b.log)
	b.t.rt.mu.Lock()
	b.t.rt.workers = append(b.t.rt.workers, w)
	b.t.rt.mu.Unlock()
	b.daemonHooks(&w.daemon)
	b.t.rt.register(b.t, w)
	return w.start(ctx)
}

func (b *builder) startHAProxy(ctx context.Context) error {
	dir, err := b.dir("haproxy")
	if err != nil {
		return err
	}
	var servers []haproxyServer
	for i, p := range b.appPorts {
		servers = append(servers, haproxyServer{Name: fmt.Sprintf("app-%d", i+1), Addr: loopback(p)})
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
	backend := b.appPorts[0]
	if b.def.HAProxy != nil {
		backend = b.haproxyPort
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

// cmpName orders app-2 before app-10.
func cmpName(a, b string) int {
	ai, _ := strconv.Atoi(a[strings.LastIndexByte(a, '-')+1:])
	bi, _ := strconv.Atoi(b[strings.LastIndexByte(b, '-')+1:])
	if c := strings.Compare(a[:strings.LastIndexByte(a, '-')+1], b[:strings.LastIndexByte(b, '-')+1]); c != 0 {
		return c
	}
	return ai - bi
}

// save writes topology.json (atomically: a reader never sees half a file).
func (t *Topology) save() error {
	comps := t.Components()
	t.rt.mu.Lock()
	f := topologyFile{Topology: *t, Components: comps, StoppedAt: t.rt.stoppedAt}
	f.Skipped = slices.Clone(t.Skipped)
	f.Steps = slices.Clone(t.Steps)
	f.AppURLs = slices.Clone(t.AppURLs)
	f.ReplicaURLs = slices.Clone(t.ReplicaURLs)
	f.RedisClusterAddrs = slices.Clone(t.RedisClusterAddrs)
	t.rt.mu.Unlock()
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode topology.json: %w", err)
	}
	tmp, err := os.CreateTemp(t.Dir, ".topology-*.json")
	if err != nil {
		return fmt.Errorf("write topology.json: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write topology.json: %w", err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write topology.json: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("write topology.json: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(t.Dir, "topology.json")); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write topology.json: %w", err)
	}
	return nil
}

// Components describes every component, in start order.
func (t *Topology) Components() []ComponentInfo {
	t.rt.mu.Lock()
	members := slices.Clone(t.rt.members)
	t.rt.mu.Unlock()
	out := make([]ComponentInfo, 0, len(members))
	for _, m := range members {
		out = append(out, m.info())
	}
	return out
}

// Component returns the component called name (app-2, replica-1, primary,
// redis, redis-master-0, haproxy, varnish, pgbouncer, prometheus, …).
func (t *Topology) Component(name string) (Component, error) {
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	var names []string
	for _, m := range t.rt.members {
		if m.Name() == name {
			return m, nil
		}
		names = append(names, m.Name())
	}
	return nil, fmt.Errorf("topology has no component %q (it has %s)", name, strings.Join(names, ", "))
}

// Primary is the Postgres primary, nil if the phase has none.
func (t *Topology) Primary() *Postgres { return t.rt.primary }

// Replicas are the streaming replicas, replica-1 first.
func (t *Topology) Replicas() []*Postgres {
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	return slices.Clone(t.rt.replicas)
}

// PgBouncer is nil if the phase has none.
func (t *Topology) PgBouncer() *PgBouncer { return t.rt.pgbouncer }

// Redis is the standalone Redis, nil if the phase has none.
func (t *Topology) Redis() *Redis { return t.rt.redis }

// RedisCluster is nil if the phase has none.
func (t *Topology) RedisCluster() *RedisCluster { return t.rt.cluster }

// Apps are the app instances, app-1 first.
func (t *Topology) Apps() []*App {
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	return slices.Clone(t.rt.apps)
}

// Workers are the queue workers (none until the server has them).
func (t *Topology) Workers() []*App {
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	return slices.Clone(t.rt.workers)
}

// HAProxy is nil if the phase has none.
func (t *Topology) HAProxy() *HAProxy { return t.rt.haproxy }

// Varnish is nil if the phase has none.
func (t *Topology) Varnish() *Varnish { return t.rt.varnish }

// Prometheus is nil if the phase has none.
func (t *Topology) Prometheus() *Prometheus { return t.rt.prom }

// stopRank orders Down: entry tiers first, the primary last. Components of
// one rank stop concurrently.
func stopRank(c ComponentInfo) int {
	switch c.Kind {
	case "varnish", "prometheus":
		return 0
	case "haproxy":
		return 1
	case "app", "worker":
		return 2
	case "pgbouncer", "redis":
		return 3
	case "postgres":
		if c.Name == "primary" {
			return 5
		}
		return 4
	}
	return 2
}

// Down stops every component, in reverse dependency order, by PID or its
// own stop command (pg_ctl stop, SHUTDOWN NOSAVE), logs what it stopped,
// and marks topology.json as stopped. A second Down does nothing. The
// run's folder (data, configs, logs) is left for inspection.
func (t *Topology) Down(ctx context.Context) error {
	if t == nil || t.rt == nil {
		return nil
	}
	rt := t.rt
	rt.downMu.Lock()
	defer rt.downMu.Unlock()
	rt.mu.Lock()
	if rt.stoppedAt != nil {
		rt.mu.Unlock()
		rt.log.Info("topology already down", "dir", t.Dir)
		return nil
	}
	members := slices.Clone(rt.members)
	rt.mu.Unlock()

	start := time.Now()
	// A paused component cannot act on a stop request; neither can a
	// paused primary serve its replicas' last requests.
	for _, m := range members {
		_ = m.Resume()
	}
	byRank := map[int][]member{}
	for _, m := range members {
		r := stopRank(m.info())
		byRank[r] = append(byRank[r], m)
	}
	var errs []error
	stopped := 0
	for rank := range 6 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, m := range byRank[rank] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pid, s := m.PID(), time.Now()
				if pid == 0 {
					return
				}
				err := m.Stop(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					rt.log.Error("stop failed", "component", m.Name(), "pid", pid, "err", err)
					return
				}
				stopped++
				rt.log.Info("stopped", "component", m.Name(), "pid", pid, "took", time.Since(s).Round(time.Millisecond))
			}()
		}
		wg.Wait()
	}
	if err := errors.Join(errs...); err != nil {
		_ = t.save()
		return fmt.Errorf("topology down %s: %w", t.Dir, err)
	}
	now := time.Now().UTC()
	rt.mu.Lock()
	rt.stoppedAt = &now
	rt.mu.Unlock()
	rt.log.Info("topology down", "dir", t.Dir, "stopped", stopped, "took", time.Since(start).Round(time.Millisecond))
	return t.save()
}

// Open returns the topology described by dir/topology.json, written by Up
// in this or another process, so that it can be stopped (Down) or
// disturbed (Stop, Kill, Pause, Resume of a component). Components are
// signalled only while their PID still names the process Up started.
// Restart needs the topology from Up.
func Open(dir string, log *slog.Logger) (*Topology, error) {
	if log == nil {
		log = discardLogger()
	}
	b, err := os.ReadFile(filepath.Join(dir, "topology.json"))
	if err != nil {
		return nil, fmt.Errorf("open topology: %w", err)
	}
	var f topologyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("open topology %s: %w", dir, err)
	}
	t := &f.Topology
	t.rt = &runtime{log: log.With("run", t.RunID), stoppedAt: f.StoppedAt}
	for _, c := range f.Components {
		m, err := adoptMember(c, log)
		if err != nil {
			return nil, err
		}
		t.rt.members = append(t.rt.members, m)
	}
	return t, nil
}

// adoptMember rebuilds a component from its topology.json entry.
func adoptMember(c ComponentInfo, log *slog.Logger) (member, error) {
	if c.Kind == "postgres" {
		srv, err := pgserver.Open(pgserver.Options{Dir: c.Dir, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", c.Name, err)
		}
		return &Postgres{name: c.Name, replica: c.Name != "primary", srv: srv, log: log}, nil
	}
	a := &adopted{addr: c.Addr, url: c.URL}
	d := &a.daemon
	d.name, d.kind, d.dir, d.log, d.spec = c.Name, c.Kind, c.Dir, log, procSpec{logPath: c.Log}
	if c.PID > 0 {
		d.proc = adoptProcess(c.PID, c.StartTicks, true)
	}
	switch c.Kind {
	case "redis":
		addr := c.Addr
		d.shutdown = func(ctx context.Context) error {
			_, err := redisDo(ctx, addr, "SHUTDOWN", "NOSAVE", "NOW")
			if err != nil && !isConnClosed(err) {
				return err
			}
			return nil
		}
	case "pgbouncer":
		d.stopGrace = 5 * time.Second
	case "app", "worker":
		d.stopGrace = 20 * time.Second
	}
	return a, nil
}

// adopted is a component of a topology opened from topology.json.
type adopted struct {
	daemon
	addr, url string
}

func (a *adopted) Restart(context.Context) error {
	return fmt.Errorf("restart %s: only the process that brought the topology up can restart it", a.name)
}

func (a *adopted) info() ComponentInfo { return a.baseInfo(a.addr, a.url) }

func (d *daemon) baseInfo(addr, url string) ComponentInfo {
	c := ComponentInfo{Name: d.name, Kind: d.kind, Dir: d.dir, Log: d.spec.logPath, Addr: addr, URL: url}
	if p := d.current(); p.alive() {
		c.PID, c.StartTicks = p.pid, p.startTicks
	}
	return c
}

func (a *App) info() ComponentInfo {
	if a.port == 0 {
		return a.baseInfo("", "")
	}
	return a.baseInfo(a.Addr(), a.URL())
}
func (r *Redis) info() ComponentInfo      { return r.baseInfo(r.Addr(), "") }
func (h *HAProxy) info() ComponentInfo    { return h.baseInfo(h.Addr(), h.URL()) }
func (v *Varnish) info() ComponentInfo    { return v.baseInfo(v.Addr(), v.URL()) }
func (b *PgBouncer) info() ComponentInfo  { return b.baseInfo(b.Addr(), b.URL()) }
func (p *Prometheus) info() ComponentInfo { return p.baseInfo(p.Addr(), p.URL()) }

func (p *Postgres) info() ComponentInfo {
	c := ComponentInfo{Name: p.name, Kind: "postgres", Dir: p.srv.Dir(), Log: p.srv.LogFile(),
		Addr: loopback(p.srv.Port()), URL: p.URL()}
	if pid := p.srv.PID(); pid != 0 {
		c.PID = pid
		if st, err := readProcStat(pid); err == nil {
			c.StartTicks = st.startTicks
		}
	}
	return c
}

// ListRuns returns the run folders under base (default
// ".scalelab/topologies") whose topology.json is not marked stopped,
// oldest first: what `scalelab down` has to stop.
func ListRuns(base string) ([]string, error) {
	if base == "" {
		base = filepath.Join(".scalelab", "topologies")
	}
	ents, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list topologies: %w", err)
	}
	var out []string
	for _, e := range ents {
		dir := filepath.Join(base, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "topology.json"))
		if err != nil {
			continue
		}
		var f struct {
			StoppedAt *time.Time `json:"stopped_at"`
		}
		if json.Unmarshal(b, &f) == nil && f.StoppedAt == nil {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return nil, err
			}
			out = append(out, abs)
		}
	}
	return out, nil
}

var loopbackPortRe = regexp.MustCompile(`127\.0\.0\.1:(\d+)`)

// Ports lists every TCP port the topology's components listen on, for
// checks that nothing is left behind.
func (t *Topology) Ports() []int {
	var ports []int
	add := func(s string) {
		if m := loopbackPortRe.FindStringSubmatch(s); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && !slices.Contains(ports, n) {
				ports = append(ports, n)
			}
		}
	}
	for _, c := range t.Components() {
		add(c.Addr)
	}
	add(t.HAProxyStatsURL)
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	if t.rt.cluster != nil {
		for _, n := range t.rt.cluster.Nodes() {
			ports = append(ports, n.ClusterPort())
		}
	}
	if t.rt.varnish != nil {
		ports = append(ports, t.rt.varnish.adminPort)
	}
	return ports
}
