package topologies

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"scalelab/internal/dockerd"
	"scalelab/internal/redisserver"
)

// Ports inside the containers; each container has its own address on the
// run's network, so they never clash.
const (
	pgPort        = 5432
	pgbouncerPort = 6432
	redisPort     = 6379
	redisBusPort  = 16379
	appPort       = 8080
	haproxyPort   = 8080
	statsPort     = 8404
	varnishPort   = 6081
	promPort      = 9090
)

// varnishWorkDir is varnishd's -n directory inside its container.
const varnishWorkDir = "/var/lib/varnish/scalelab"

// Labels on every container and network of a docker run: Down (in this
// or another process) removes everything carrying the run's label.
const (
	labelRun       = "scalelab.run"
	labelComponent = "scalelab.component"
)

// dockerRun is what a docker bring-up keeps besides the members.
type dockerRun struct {
	pool    *dockertest.Pool
	network *dockertest.Network
	subnet  string
	runID   string
}

// upDocker is Up for RuntimeDocker: the same components as containers on
// a bridge network of the run's own, configured from the same definition.
func upDocker(ctx context.Context, def *Definition, opts Options) (t *Topology, err error) {
	start := time.Now()
	log := opts.Logger
	if log == nil {
		log = discardLogger()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute // container starts are slower than processes' on a loaded machine
	}
	if p := cmpOr(opts.Network, def.Network); p != NetworkNone {
		// The links of the other profiles are toxiproxy proxies on the
		// host, between components that all listen on 127.0.0.1.
		return nil, fmt.Errorf("topology: the docker runtime runs the %q network profile only, not %q: use the process runtime for it", NetworkNone, p)
	}
	bin, err := filepath.Abs(opts.Binary)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if opts.Binary == "" || err != nil {
		return nil, fmt.Errorf("topology: the scalelab binary %q: %v (build it with `make build`)", opts.Binary, err)
	}
	host := opts.DockerHost
	if host == "" {
		if host, err = dockerd.Find(ctx, os.Getenv); err != nil {
			return nil, fmt.Errorf("topology: %w (as root, `make dockerd` starts one)", err)
		}
	}
	pool, err := dockertest.NewPool(host)
	if err != nil {
		return nil, fmt.Errorf("topology: docker: %w", err)
	}
	if err := pool.Client.Ping(); err != nil {
		return nil, fmt.Errorf("topology: no Docker daemon answers at %q: %w", host, err)
	}
	for _, img := range []string{cmpOr(opts.InfraImage, DefaultInfraImage), cmpOr(opts.AppImage, DefaultAppImage)} {
		if _, err := pool.Client.InspectImage(img); err != nil {
			return nil, fmt.Errorf("topology: image %s is missing (build it with `make images`): %w", img, err)
		}
	}
	dir, err := runDir(opts, def)
	if err != nil {
		return nil, err
	}
	runID := filepath.Base(dir)
	t = &Topology{
		Phase: def.Phase, RunID: runID, Dir: dir, API: def.API, StartedAt: start.UTC(),
		Runtime: string(RuntimeDocker), DockerHost: pool.Client.Endpoint(), Network: NetworkNone,
		rt: &runtime{log: log.With("run", runID)},
	}
	log = t.rt.log
	log.Info("topology up (docker): starting", "phase", def.Phase, "dir", dir)

	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	defer func() {
		r := recover()
		if err == nil && r == nil {
			return
		}
		dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer dcancel()
		log.Warn("topology up failed; removing what was started", "err", err, "panic", r)
		if derr := t.Down(dctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("removing after the failure: %w", derr))
		}
		if r != nil {
			panic(r)
		}
		t = nil
	}()

	// The teardown is in place before the network exists, so that every
	// path out of here (and Down from another process) removes it.
	dr := &dockerRun{pool: pool, runID: runID}
	t.rt.teardown = dr.teardown
	net, err := pool.CreateNetwork(containerName(runID, "net"), func(o *dc.CreateNetworkOptions) {
		o.Driver = "bridge"
		o.Labels = map[string]string{labelRun: runID}
		o.Context = ctx
	})
	if err != nil {
		return t, fmt.Errorf("topology: create network: %w", err)
	}
	dr.network = net
	if info, err := pool.Client.NetworkInfo(net.Network.ID); err == nil && len(info.IPAM.Config) > 0 {
		dr.subnet = info.IPAM.Config[0].Subnet
	}
	t.DockerNetwork = net.Network.Name
	if err := t.save(); err != nil {
		return t, err
	}

	b := &builder{t: t, def: def, opts: opts, bin: bin, ports: newPortPicker(), log: log}
	db := &dockerBuilder{builder: b, run: dr, infra: cmpOr(opts.InfraImage, DefaultInfraImage), app: cmpOr(opts.AppImage, DefaultAppImage)}
	if err := db.plan(ctx); err != nil {
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
	log.Info("topology up (docker)", "phase", def.Phase, "entry", t.EntryURL, "took", time.Since(start).Round(time.Millisecond),
		"json", filepath.Join(dir, "topology.json"))
	return t, nil
}

var nameUnsafe = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// containerName is the Docker name of a run's component, which is also
// its host name on the run's network.
func containerName(runID, component string) string {
	return "scalelab-" + nameUnsafe.ReplaceAllString(runID, "-") + "-" + component
}

// teardown removes every container and the network of the run, found by
// label, whatever state they are in. It runs after Down stopped the
// members gracefully, and on every failure path of upDocker.
func (dr *dockerRun) teardown(ctx context.Context) error {
	return removeRun(ctx, dr.pool, dr.runID)
}

// removeBudget is how long removing a run's containers and network may
// take, whatever the graceful stop before it used of the caller's time:
// the removal is what leaves nothing behind. Generous: on a loaded machine
// a forced removal takes tens of seconds.
const removeBudget = 3 * time.Minute

func removeRun(ctx context.Context, pool *dockertest.Pool, runID string) error {
	// Its own budget, whatever the graceful stop before it used.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), removeBudget)
	defer cancel()
	var errs []error
	filter := map[string][]string{"label": {labelRun + "=" + runID}}
	cs, err := pool.Client.ListContainers(dc.ListContainersOptions{All: true, Filters: filter, Context: ctx})
	if err != nil {
		return fmt.Errorf("list containers of run %s: %w", runID, err)
	}
	for _, c := range cs {
		err := pool.Client.RemoveContainer(dc.RemoveContainerOptions{ID: c.ID, Force: true, RemoveVolumes: true, Context: ctx})
		var nsc *dc.NoSuchContainer
		if err != nil && !errors.As(err, &nsc) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", strings.Join(c.Names, ","), err))
		}
	}
	nets, err := pool.Client.FilteredListNetworks(dc.NetworkFilterOpts{"label": {labelRun + "=" + runID: true}})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("list networks of run %s: %w", runID, err))...)
	}
	for _, n := range nets {
		if err := pool.Client.RemoveNetwork(n.ID); err != nil {
			var nsn *dc.NoSuchNetwork
			if !errors.As(err, &nsn) {
				errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// dockerBuilder plans a docker bring-up on top of builder's step runner.
type dockerBuilder struct {
	*builder
	run        *dockerRun
	infra, app string

	portsMu   sync.Mutex     // steps run concurrently
	hostPorts map[string]int // published 127.0.0.1 ports by "component/port"
}

func (b *dockerBuilder) name(component string) string { return containerName(b.run.runID, component) }

// hostPort picks (once) the 127.0.0.1 port that publishes component's port.
func (b *dockerBuilder) hostPort(component string, port int) (int, error) {
	key := fmt.Sprintf("%s/%d", component, port)
	b.portsMu.Lock()
	defer b.portsMu.Unlock()
	if p, ok := b.hostPorts[key]; ok {
		return p, nil
	}
	p, err := b.ports.pick()
	if err != nil {
		return 0, err
	}
	b.hostPorts[key] = p
	return p, nil
}

func (b *dockerBuilder) plan(ctx context.Context) error {
	def, t := b.def, b.t
	b.hostPorts = map[string]int{}
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return fmt.Errorf("topology secret: %w", err)
	}
	b.secret = "hex:" + hex.EncodeToString(secret[:])
	for i := range def.Apps.Count {
		name := fmt.Sprintf("app-%d", i+1)
		p, err := b.hostPort(name, appPort)
		if err != nil {
			return err
		}
		m, err := b.hostPort(name, appMetricsPort)
		if err != nil {
			return err
		}
		t.AppURLs = append(t.AppURLs, "http://"+loopback(p))
		t.AppMetricsURLs = append(t.AppMetricsURLs, "http://"+loopback(m))
	}
	switch def.Entry {
	case "varnish":
		p, err := b.hostPort("varnish", varnishPort)
		if err != nil {
			return err
		}
		t.EntryURL = "http://" + loopback(p)
	case "haproxy":
		p, err := b.hostPort("haproxy", haproxyPort)
		if err != nil {
			return err
		}
		t.EntryURL = "http://" + loopback(p)
	default:
		t.EntryURL = t.AppURLs[0]
	}

	var dataDeps []string
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
	if c := def.RedisCluster; c != nil {
		var nodes []string
		for _, n := range clusterNodeNames(c) {
			b.add(n, nil, func(ctx context.Context) error { return b.startClusterNode(ctx, n) })
			nodes = append(nodes, n)
		}
		b.add("redis-cluster", nodes, b.joinCluster)
		dataDeps = append(dataDeps, "redis-cluster")
	}
	var apps []string
	for i := range def.Apps.Count {
		name := fmt.Sprintf("app-%d", i+1)
		b.add(name, dataDeps, func(ctx context.Context) error { return b.startApp(ctx, name) })
		apps = append(apps, name)
	}
	all := slices.Clone(apps)
	if w := def.Workers; w != nil {
		for i := range w.Count {
			name := fmt.Sprintf("worker-%d", i+1)
			m, err := b.hostPort(name, appMetricsPort)
			if err != nil {
				return err
			}
			t.WorkerMetricsURLs = append(t.WorkerMetricsURLs, "http://"+loopback(m))
			// After the apps: an app creates the schema in the layout its
			// flags ask for (--partitions); a worker takes the one it finds.
			b.add(name, apps, func(ctx context.Context) error { return b.startWorker(ctx, name) })
			all = append(all, name)
		}
	}
	front := apps
	if def.HAProxy != nil {
		b.add("haproxy", apps, b.startHAProxy)
		all = append(all, "haproxy")
		front = []string{"haproxy"}
	}
	if def.Varnish != nil {
		b.add("varnish", front, b.startVarnish)
		all = append(all, "varnish")
	}
	if def.Prometheus != nil {
		// Started last: its targets resolve by name once they exist.
		b.add("prometheus", all, b.startPrometheus)
		b.add("prometheus-targets", []string{"prometheus"}, func(ctx context.Context) error {
			return poll(ctx, t.rt.prom.TargetsUp)
		})
	}
	return nil
}

// runSpec is one container to start.
type runSpec struct {
	name, kind string
	image      string
	cmd        []string
	env        []string
	user       string
	mounts     []string // host:container[:ro]
	ports      []int    // container ports to publish on 127.0.0.1
	dir        string
	ready      func(ctx context.Context) error
	stopGrace  time.Duration
	// stopSignal asks for a graceful stop; default SIGTERM. Postgres gets
	// SIGINT (fast shutdown: SIGTERM would wait for every client).
	stopSignal dc.Signal
}

// start runs spec's container on the run's network, registers it as a
// member at once (so that every failure removes it) and waits until it
// is ready.
func (b *dockerBuilder) start(ctx context.Context, spec runSpec) (*container, error) {
	if spec.dir == "" {
		d, err := b.dir(spec.name)
		if err != nil {
			return nil, err
		}
		spec.dir = d
	}
	repo, tag, _ := strings.Cut(spec.image, ":")
	bindings := map[dc.Port][]dc.PortBinding{}
	var exposed []string
	addrs := map[int]string{}
	for _, p := range spec.ports {
		hp, err := b.hostPort(spec.name, p)
		if err != nil {
			return nil, err
		}
		port := dc.Port(fmt.Sprintf("%d/tcp", p))
		exposed = append(exposed, string(port))
		bindings[port] = []dc.PortBinding{{HostIP: "127.0.0.1", HostPort: strconv.Itoa(hp)}}
		addrs[p] = loopback(hp)
	}
	limit := b.def.limitFor(spec.name, spec.kind)
	mem, _ := parseMemory(limit.Memory) // validated with the definition
	res, err := b.run.pool.RunWithOptions(&dockertest.RunOptions{
		Name:         b.name(spec.name),
		Hostname:     spec.name,
		Repository:   repo,
		Tag:          tag,
		Cmd:          spec.cmd,
		Env:          spec.env,
		User:         spec.user,
		Mounts:       spec.mounts,
		NetworkID:    b.run.network.Network.ID,
		ExposedPorts: exposed,
		PortBindings: bindings,
		Labels:       map[string]string{labelRun: b.run.runID, labelComponent: spec.name},
	}, func(hc *dc.HostConfig) {
		hc.PublishAllPorts = false // only what bindings say, on 127.0.0.1
		hc.AutoRemove = false
		hc.RestartPolicy = dc.RestartPolicy{}
		if limit.CPUs > 0 {
			hc.CPUPeriod = 100000
			hc.CPUQuota = int64(limit.CPUs * 100000)
		}
		if mem > 0 {
			hc.Memory = mem
			hc.MemorySwap = mem
		}
	})
	if err != nil {
		// A container may exist although starting it failed: the run's
		// teardown removes it by label.
		return nil, fmt.Errorf("%s: run container: %w", spec.name, err)
	}
	c := &container{
		name: spec.name, kind: spec.kind, dir: spec.dir, id: res.Container.ID, cname: res.Container.Name,
		ip:     res.GetIPInNetwork(b.run.network),
		client: b.run.pool.Client, addrs: addrs, ready: spec.ready, stopGrace: cmpOr(spec.stopGrace, 10*time.Second),
		stopSignal: cmpOr(spec.stopSignal, dc.SIGTERM), log: b.log,
	}
	b.t.rt.register(b.t, c)
	if err := c.waitReady(ctx); err != nil {
		return c, err
	}
	return c, nil
}

func (b *dockerBuilder) startPrimary(ctx context.Context) error {
	db := b.def.Postgres.Database
	hp, err := b.hostPort("primary", pgPort)
	if err != nil {
		return err
	}
	hostURL := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", loopback(hp))
	_, err = b.start(ctx, runSpec{
		name: "primary", kind: "postgres", image: b.infra, ports: []int{pgPort}, stopSignal: dc.SIGINT,
		cmd:   postgresCmd(b.def, "primary", "primary", db, b.opts.FastPostgres),
		ready: func(ctx context.Context) error { return pgQuery(ctx, hostURL, "SELECT 1", nil) },
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) {
		t.PrimaryURL = fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", loopback(hp), db)
		t.DatabaseURL = t.PrimaryURL
		t.rt.pgPrimary = &pgNode{name: "primary", url: hostURL}
	})
	return b.t.save()
}

func (b *dockerBuilder) startReplica(ctx context.Context, name string) error {
	hp, err := b.hostPort(name, pgPort)
	if err != nil {
		return err
	}
	hostURL := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", loopback(hp))
	_, err = b.start(ctx, runSpec{
		name: name, kind: "postgres", image: b.infra, ports: []int{pgPort}, stopSignal: dc.SIGINT,
		cmd: postgresCmd(b.def, "replica", name, b.name("primary"), b.opts.FastPostgres),
		ready: func(ctx context.Context) error {
			var status string
			if err := pgQuery(ctx, hostURL, "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'no wal receiver')", &status); err != nil {
				return err
			}
			if status != "streaming" {
				return fmt.Errorf("wal receiver: %s", status)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) {
		t.ReplicaURLs = append(t.ReplicaURLs, fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", loopback(hp), b.def.Postgres.Database))
		slices.Sort(t.ReplicaURLs)
		t.rt.pgReplicas = append(t.rt.pgReplicas, pgNode{name: name, slot: slotName(name), url: hostURL})
		slices.SortFunc(t.rt.pgReplicas, func(a, c pgNode) int { return cmpName(a.name, c.name) })
	})
	return nil
}

func (b *dockerBuilder) startRedis(ctx context.Context) error {
	hp, err := b.hostPort("redis", redisPort)
	if err != nil {
		return err
	}
	_, err = b.start(ctx, runSpec{
		name: "redis", kind: "redis", image: b.infra, ports: []int{redisPort}, cmd: redisCmd(b.def),
		ready: func(ctx context.Context) error {
			pong, err := redisDo(ctx, loopback(hp), "PING")
			if err == nil && pong != "PONG" {
				err = fmt.Errorf("PING answered %q", pong)
			}
			return err
		},
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.RedisAddr = loopback(hp) })
	return nil
}

// appArgs are an instance's server arguments.
func (b *dockerBuilder) appArgs(name string) ([]string, error) {
	return appCmd(b.def, name, containerVars(b.def, b.name, b.secret), b.run.subnet)
}

// appMetricsPort is where /metrics listens when the server has a
// listener of its own for it (--metrics-addr).
const appMetricsPort = 9100

// appUID is the app image's unprivileged user and group (app.Dockerfile).
const appUID = 10001

// sqliteHostPath rewrites an app's --db=sqlite:/data/… flags to the host
// folder mounted at /data, for databaseURL.
func sqliteHostPath(args []string, dir string) []string {
	out := make([]string, 0, len(args))
	for _, a := range args {
		if p, ok := strings.CutPrefix(a, "--db=sqlite:/data/"); ok {
			a = "--db=sqlite:" + filepath.Join(dir, p)
		}
		out = append(out, a)
	}
	return out
}

func (b *dockerBuilder) startApp(ctx context.Context, name string) error {
	args, err := b.appArgs(name)
	if err != nil {
		return err
	}
	dir, err := b.dir(name)
	if err != nil {
		return err
	}
	var mounts []string
	if b.def.Postgres == nil {
		// Each app keeps its data in /data (${app.dir}), here a folder of
		// the run on the host, so that the runner seeds the same SQLite
		// file the app serves (one kernel: WAL locking works across the
		// container's boundary).
		if err := os.Chown(dir, appUID, appUID); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		mounts = append(mounts, dir+":/data")
		if name == "app-1" {
			b.set(func(t *Topology) { t.DatabaseURL = databaseURL(sqliteHostPath(args, dir), dir) })
		}
	}
	hp, err := b.hostPort(name, appPort)
	if err != nil {
		return err
	}
	return b.startScalelab(ctx, name, "app", dir, args, mounts, []int{appPort, appMetricsPort}, "http://"+loopback(hp)+"/readyz")
}

// startWorker starts queue worker name: `scalelab worker` in a container
// of the app image, ready when its metrics listener's /readyz answers.
func (b *dockerBuilder) startWorker(ctx context.Context, name string) error {
	args, err := workerCmd(b.def, name, containerVars(b.def, b.name, b.secret))
	if err != nil {
		return err
	}
	dir, err := b.dir(name)
	if err != nil {
		return err
	}
	mp, err := b.hostPort(name, appMetricsPort)
	if err != nil {
		return err
	}
	return b.startScalelab(ctx, name, "worker", dir, args, nil, []int{appMetricsPort}, "http://"+loopback(mp)+"/readyz")
}

// startScalelab starts a container of the app image running `scalelab
// args…` (a server, or any other command of the binary, such as a queue
// worker) as the image's unprivileged user, ready when readyURL answers
// 200. It runs the binary that runs this topology, bind-mounted over the
// one baked into the image at `make images` time: both are built for
// bookworm's glibc, so a rebuild needs no new image.
func (b *dockerBuilder) startScalelab(ctx context.Context, name, kind, dir string, args, mounts []string, ports []int, readyURL string) error {
	_, err := b.start(ctx, runSpec{
		name: name, kind: kind, image: b.app, ports: ports, dir: dir,
		mounts: append([]string{b.bin + ":/usr/local/bin/scalelab:ro"}, mounts...),
		cmd:    args, user: fmt.Sprintf("%d:%d", appUID, appUID), stopGrace: 20 * time.Second,
		ready: func(ctx context.Context) error {
			_, err := httpGet(ctx, readyURL)
			return err
		},
	})
	return err
}

func (b *dockerBuilder) startHAProxy(ctx context.Context) error {
	dir, err := b.dir("haproxy")
	if err != nil {
		return err
	}
	var servers []haproxyServer
	var names []string
	for i := range b.def.Apps.Count {
		name := fmt.Sprintf("app-%d", i+1)
		servers = append(servers, haproxyServer{Name: name, Addr: fmt.Sprintf("%s:%d", b.name(name), appPort)})
		names = append(names, name)
	}
	if err := writeTemplate("haproxy.cfg", filepath.Join(dir, "haproxy.cfg"), haproxyData(b.def.HAProxy, servers)); err != nil {
		return err
	}
	hp, err := b.hostPort("haproxy", haproxyPort)
	if err != nil {
		return err
	}
	sp, err := b.hostPort("haproxy", statsPort)
	if err != nil {
		return err
	}
	h := &HAProxy{port: hp, statsPort: sp, servers: names}
	_, err = b.start(ctx, runSpec{
		name: "haproxy", kind: "haproxy", image: b.infra, dir: dir, ports: []int{haproxyPort, statsPort},
		mounts: []string{dir + ":/etc/scalelab:ro"},
		cmd:    []string{"haproxy", "-db", "-f", "/etc/scalelab/haproxy.cfg"},
		ready: func(ctx context.Context) error {
			states, err := h.ServerStates(ctx)
			if err != nil {
				return err
			}
			for _, s := range names {
				if st := states[s]; st.Status != "UP" || !strings.HasPrefix(st.Check, "L7OK") {
					return fmt.Errorf("backend server %s: status %q, check %q", s, st.Status, st.Check)
				}
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) {
		t.HAProxyURL, t.HAProxyStatsURL, t.rt.haproxy = h.URL(), "http://"+h.StatsAddr()+"/stats", h
	})
	return nil
}

func (b *dockerBuilder) startPrometheus(ctx context.Context) error {
	dir, err := b.dir("prometheus")
	if err != nil {
		return err
	}
	jobs := promJobs(b.def, b.name)
	p := &Prometheus{}
	for _, j := range jobs {
		p.targets += len(j.Targets)
	}
	interval := promDuration(b.def.Prometheus.ScrapeInterval)
	if err := writeTemplate("prometheus.yml", filepath.Join(dir, "prometheus.yml"), promConfig{Interval: interval, Jobs: jobs}); err != nil {
		return err
	}
	if p.port, err = b.hostPort("prometheus", promPort); err != nil {
		return err
	}
	_, err = b.start(ctx, runSpec{
		name: "prometheus", kind: "prometheus", image: b.infra, dir: dir, ports: []int{promPort},
		mounts: []string{dir + ":/etc/scalelab:ro"},
		cmd:    promCmd(),
		ready: func(ctx context.Context) error {
			_, err := httpGet(ctx, p.URL()+"/-/ready")
			return err
		},
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.PrometheusURL, t.rt.prom = p.URL(), p })
	return nil
}

func (b *dockerBuilder) startPgBouncer(ctx context.Context) error {
	dir, err := b.dir("pgbouncer")
	if err != nil {
		return err
	}
	ini, err := pgbouncerConfig(b.def, b.name("primary"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "pgbouncer.ini"), ini, 0o644); err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(pgbouncerUsers), 0o644); err != nil {
		return fmt.Errorf("pgbouncer: %w", err)
	}
	hp, err := b.hostPort("pgbouncer", pgbouncerPort)
	if err != nil {
		return err
	}
	db := b.def.Postgres.Database
	_, err = b.start(ctx, runSpec{
		name: "pgbouncer", kind: "pgbouncer", image: b.infra, dir: dir, ports: []int{pgbouncerPort},
		mounts: []string{dir + ":/etc/scalelab:ro"},
		// pgbouncer refuses to run as root.
		user: "postgres", cmd: pgbouncerCmd(), stopGrace: 5 * time.Second,
		ready: func(ctx context.Context) error { return pgbouncerReady(ctx, loopback(hp), db) },
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) {
		t.PgBouncerURL = fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&default_query_exec_mode=cache_describe", loopback(hp), db)
	})
	return nil
}

// startClusterNode starts one Redis Cluster node, not yet joined.
func (b *dockerBuilder) startClusterNode(ctx context.Context, name string) error {
	hp, err := b.hostPort(name, redisPort)
	if err != nil {
		return err
	}
	_, err = b.start(ctx, runSpec{
		name: name, kind: "redis", image: b.infra, ports: []int{redisPort}, cmd: redisClusterCmd(b.def),
		ready: func(ctx context.Context) error {
			pong, err := redisDo(ctx, loopback(hp), "PING")
			if err == nil && pong != "PONG" {
				err = fmt.Errorf("PING answered %q", pong)
			}
			return err
		},
	})
	return err
}

// joinCluster joins the started nodes into one cluster as the process
// runtime does (redisserver.Join: slots, epochs, MEET, REPLICATE), sending
// the commands to the published ports; the nodes MEET one another at
// their addresses on the run's network, which is where they announce
// themselves to the apps (only the apps talk to the cluster).
func (b *dockerBuilder) joinCluster(ctx context.Context) error {
	node := func(name string) (redisserver.Node, error) {
		c, err := b.member(name)
		if err != nil {
			return redisserver.Node{}, err
		}
		hp, err := b.hostPort(name, redisPort)
		if err != nil {
			return redisserver.Node{}, err
		}
		if c.ip == "" {
			return redisserver.Node{}, fmt.Errorf("%s has no address on the run's network", name)
		}
		return redisserver.Node{Name: name, Port: hp, MeetIP: c.ip, MeetPort: redisPort, MeetClusterPort: redisBusPort}, nil
	}
	var masters, replicas []redisserver.Node
	var addrs []string
	for _, name := range clusterNodeNames(b.def.RedisCluster) {
		n, err := node(name)
		if err != nil {
			return fmt.Errorf("redis cluster: %w", err)
		}
		if strings.HasPrefix(name, "redis-master-") {
			masters = append(masters, n)
		} else {
			replicas = append(replicas, n)
		}
		addrs = append(addrs, n.Addr())
	}
	if err := redisserver.Join(ctx, masters, replicas); err != nil {
		return fmt.Errorf("redis cluster: %w", err)
	}
	if err := poll(ctx, func(ctx context.Context) error { return redisserver.ClusterReady(ctx, masters, replicas) }); err != nil {
		return fmt.Errorf("redis cluster not ok: %w", err)
	}
	b.set(func(t *Topology) { t.RedisClusterAddrs = addrs })
	return b.t.save()
}

// member returns the started container called name.
func (b *dockerBuilder) member(name string) (*container, error) {
	b.t.rt.mu.Lock()
	defer b.t.rt.mu.Unlock()
	for _, m := range b.t.rt.members {
		if c, ok := m.(*container); ok && c.name == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no container %s", name)
}

func (b *dockerBuilder) startVarnish(ctx context.Context) error {
	dir, err := b.dir("varnish")
	if err != nil {
		return err
	}
	backend := b.name("app-1")
	if b.def.HAProxy != nil {
		backend = b.name("haproxy")
	}
	// The apps PURGE from their addresses on the run's network.
	vcl, err := varnishConfig(backend, cmpOr(b.run.subnet, "172.16.0.0/12"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "default.vcl"), vcl, 0o644); err != nil {
		return fmt.Errorf("varnish: %w", err)
	}
	hp, err := b.hostPort("varnish", varnishPort)
	if err != nil {
		return err
	}
	url := "http://" + loopback(hp)
	c, err := b.start(ctx, runSpec{
		name: "varnish", kind: "varnish", image: b.infra, dir: dir, ports: []int{varnishPort},
		mounts: []string{dir + ":/etc/scalelab:ro"},
		cmd:    varnishCmd(b.def), stopGrace: 5 * time.Second,
		// Ready when a request goes all the way through to an app.
		ready: func(ctx context.Context) error {
			_, err := httpGet(ctx, url+"/healthz")
			return err
		},
	})
	if err != nil {
		return err
	}
	b.set(func(t *Topology) {
		t.VarnishURL, t.VarnishWorkDir = url, varnishWorkDir
		t.rt.varnishStats = c.varnishStats
	})
	return nil
}

// varnishStats runs varnishstat in the Varnish container.
func (c *container) varnishStats(ctx context.Context) (map[string]uint64, error) {
	out, err := c.exec(ctx, "varnishstat", "-1", "-j", "-n", varnishWorkDir, "-f", "MAIN.*")
	if err != nil {
		return nil, err
	}
	return parseVarnishStats(out)
}

// exec runs cmd in the container and returns its standard output; a
// non-zero exit is an error carrying its standard error.
func (c *container) exec(ctx context.Context, cmd ...string) ([]byte, error) {
	ex, err := c.client.CreateExec(dc.CreateExecOptions{Container: c.id, Cmd: cmd, AttachStdout: true, AttachStderr: true, Context: ctx})
	if err != nil {
		return nil, fmt.Errorf("%s: exec %s: %w", c.name, cmd[0], err)
	}
	var stdout, stderr bytes.Buffer
	if err := c.client.StartExec(ex.ID, dc.StartExecOptions{OutputStream: &stdout, ErrorStream: &stderr, Context: ctx}); err != nil {
		return nil, fmt.Errorf("%s: exec %s: %w", c.name, cmd[0], err)
	}
	st, err := c.client.InspectExec(ex.ID)
	if err != nil {
		return nil, fmt.Errorf("%s: exec %s: %w", c.name, cmd[0], err)
	}
	if st.ExitCode != 0 {
		return nil, fmt.Errorf("%s: %s exited %d: %s", c.name, cmd[0], st.ExitCode, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// pgQuery runs query once on a new connection to url, scanning one value
// into dest unless dest is nil.
func pgQuery(ctx context.Context, url, query string, dest any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if dest == nil {
		var discard any
		dest = &discard
	}
	return conn.QueryRow(ctx, query).Scan(dest)
}

// ---------------------------------------------------------------- container

// container is one component of a docker run. Its PID is the container's
// main process as the host sees it, so the Sampler's CPU accounting (the
// process and its descendants in /proc) covers the whole container.
type container struct {
	name, kind, dir string
	id, cname       string
	ip              string // on the run's network, when it was started here
	client          *dc.Client
	addrs           map[int]string // container port → published 127.0.0.1 address
	ready           func(ctx context.Context) error
	stopGrace       time.Duration
	stopSignal      dc.Signal
	log             interface {
		Debug(msg string, args ...any)
	}

	mu sync.Mutex
}

func (c *container) Name() string { return c.name }

func (c *container) inspect(ctx context.Context) (*dc.Container, error) {
	return c.client.InspectContainerWithContext(c.id, ctx)
}

// PID is the container's main process ID on the host, 0 when it is not
// running (or no longer exists).
func (c *container) PID() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.inspect(ctx)
	if err != nil || !st.State.Running {
		return 0
	}
	return st.State.Pid
}

func (c *container) info() ComponentInfo {
	ci := ComponentInfo{Name: c.name, Kind: c.kind, Dir: c.dir, Container: strings.TrimPrefix(c.cname, "/")}
	if pid := c.PID(); pid != 0 {
		ci.PID = pid
		if st, err := readProcStat(pid); err == nil {
			ci.StartTicks = st.startTicks
		}
	}
	ports := slices.Sorted(maps.Keys(c.addrs))
	if len(ports) > 0 {
		ci.Addr = c.addrs[ports[0]]
		switch c.kind {
		case "app", "haproxy", "prometheus", "varnish":
			ci.URL = "http://" + ci.Addr
		case "postgres":
			ci.URL = "postgres://postgres@" + ci.Addr + "/postgres?sslmode=disable"
		}
	}
	return ci
}

func (c *container) waitReady(ctx context.Context) error {
	if c.ready == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last := c.ready(pctx)
		cancel()
		if last == nil {
			return nil
		}
		if st, err := c.inspect(ctx); err == nil && !st.State.Running && !st.State.Paused {
			return fmt.Errorf("%s exited (status %d) before it was ready:\n%s", c.name, st.State.ExitCode, c.logTail(ctx, 15))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (last check: %v): %w\n%s", c.name, last, ctx.Err(), c.logTail(context.WithoutCancel(ctx), 15))
		case <-t.C:
		}
	}
}

// logTail is the end of the container's output, for error messages.
func (c *container) logTail(ctx context.Context, n int) string {
	var out strings.Builder
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err := c.client.Logs(dc.LogsOptions{Context: ctx, Container: c.id, OutputStream: &out, ErrorStream: &out,
		Stdout: true, Stderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return "  (no log: " + err.Error() + ")"
	}
	return "  " + strings.ReplaceAll(strings.TrimRight(out.String(), "\n"), "\n", "\n  ")
}

// waitStopped polls until the container no longer runs.
func (c *container) waitStopped(ctx context.Context) error {
	for {
		st, err := c.inspect(ctx)
		var nsc *dc.NoSuchContainer
		if errors.As(err, &nsc) || (err == nil && !st.State.Running) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still running: %w", c.name, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop sends SIGTERM (the server drains, Postgres shuts down fast), then
// SIGKILL after the grace period. The container stays, with its data, for
// Restart; Down removes it.
func (c *container) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.client.UnpauseContainer(c.id)
	if err := c.client.KillContainer(dc.KillContainerOptions{ID: c.id, Signal: cmpOr(c.stopSignal, dc.SIGTERM), Context: ctx}); err != nil {
		if c.PID() == 0 {
			return nil
		}
		return fmt.Errorf("stop %s: %w", c.name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, c.stopGrace)
	err := c.waitStopped(wctx)
	cancel()
	if err == nil {
		return nil
	}
	c.log.Debug("no stop after SIGTERM; killing", "component", c.name)
	return c.kill(ctx)
}

// Kill sends SIGKILL and waits until the container has stopped.
func (c *container) Kill(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.kill(ctx)
}

func (c *container) kill(ctx context.Context) error {
	if err := c.client.KillContainer(dc.KillContainerOptions{ID: c.id, Signal: dc.SIGKILL, Context: ctx}); err != nil && c.PID() != 0 {
		return fmt.Errorf("kill %s: %w", c.name, err)
	}
	if err := c.waitStopped(ctx); err != nil {
		return fmt.Errorf("kill %s: %w", c.name, err)
	}
	return nil
}

// Pause freezes the container (the cgroup freezer): it keeps its sockets
// but answers nothing.
func (c *container) Pause() error {
	if err := c.client.PauseContainer(c.id); err != nil {
		return fmt.Errorf("pause %s: %w", c.name, err)
	}
	return nil
}

// Resume thaws a paused container.
func (c *container) Resume() error {
	if err := c.client.UnpauseContainer(c.id); err != nil {
		return fmt.Errorf("resume %s: %w", c.name, err)
	}
	return nil
}

// Restart stops the container if it runs and starts it again, with its
// data and on the same published ports, and waits until it is ready.
func (c *container) Restart(ctx context.Context) error {
	if err := c.Stop(ctx); err != nil {
		return err
	}
	if err := c.client.StartContainerWithContext(c.id, nil, ctx); err != nil {
		return fmt.Errorf("restart %s: %w", c.name, err)
	}
	return c.waitReady(ctx)
}

// ContainerCPU returns the CPU seconds each container of a docker run has
// used since it started, read from its cgroup (cpuacct.usage under cgroup
// v1, cpu.stat under v2) by component name. A container that is not
// running is left out.
func (t *Topology) ContainerCPU() (map[string]float64, error) {
	if t.Runtime != string(RuntimeDocker) {
		return nil, fmt.Errorf("topology %s: ContainerCPU needs the docker runtime", t.RunID)
	}
	out := map[string]float64{}
	t.rt.mu.Lock()
	members := slices.Clone(t.rt.members)
	t.rt.mu.Unlock()
	for _, m := range members {
		c, ok := m.(*container)
		if !ok {
			continue
		}
		secs, err := cgroupCPU(c.id)
		if err != nil {
			if c.PID() == 0 {
				continue
			}
			return nil, fmt.Errorf("cpu of %s: %w", c.name, err)
		}
		out[c.name] = secs
	}
	return out, nil
}

// dockerProxyName is the pseudo-component that accounts for Docker's
// userland proxy in a docker run's CPU figures.
const dockerProxyName = "docker-proxy"

// dockerProxies lists the docker-proxy processes that forward the run's
// published ports: Docker's userland proxy, one process per published
// port, children of dockerd and outside every container's cgroup. Every
// request the load generator sends through a published port passes one,
// so their CPU is part of what running in containers costs. ours caches,
// by PID and start time, whether a process is one of them.
func (t *Topology) dockerProxies(stats []procStat, ours map[[2]uint64]bool) []procStat {
	ports := map[string]bool{}
	t.rt.mu.Lock()
	for _, m := range t.rt.members {
		if c, ok := m.(*container); ok {
			for _, addr := range c.addrs {
				if _, p, ok := strings.Cut(addr, ":"); ok {
					ports[p] = true
				}
			}
		}
	}
	t.rt.mu.Unlock()
	var out []procStat
	for _, st := range stats {
		key := [2]uint64{uint64(st.pid), st.startTicks}
		is, seen := ours[key]
		if !seen {
			is = isProxyFor(st.pid, ports)
			ours[key] = is
		}
		if is {
			out = append(out, st)
		}
	}
	return out
}

// isProxyFor reports whether pid is a docker-proxy forwarding one of
// ports on 127.0.0.1.
func isProxyFor(pid int, ports map[string]bool) bool {
	comm, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil || strings.TrimSpace(string(comm)) != dockerProxyName {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(b), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-host-port" && ports[args[i+1]] {
			return true
		}
	}
	return false
}

// cgroupCPU reads a container's CPU time from its cgroup (cgroupfs driver,
// parent "docker", as Debian's dockerd sets it up).
func cgroupCPU(id string) (float64, error) {
	v1 := []string{"/sys/fs/cgroup/cpu,cpuacct/docker/" + id + "/cpuacct.usage", "/sys/fs/cgroup/cpuacct/docker/" + id + "/cpuacct.usage"}
	for _, p := range v1 {
		if b, err := os.ReadFile(p); err == nil {
			ns, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse %s: %w", p, err)
			}
			return float64(ns) / 1e9, nil
		}
	}
	for _, p := range []string{"/sys/fs/cgroup/docker/" + id + "/cpu.stat", "/sys/fs/cgroup/system.slice/docker-" + id + ".scope/cpu.stat"} {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
				us, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return 0, fmt.Errorf("parse %s: %w", p, err)
				}
				return float64(us) / 1e6, nil
			}
		}
	}
	return 0, fmt.Errorf("no cgroup CPU accounting found for container %.12s", id)
}

// openDocker rebuilds a docker run from its topology.json, for Down and
// fault injection from another process.
func openDocker(t *Topology, comps []ComponentInfo, log *slog.Logger) (*Topology, error) {
	pool, err := dockertest.NewPool(t.DockerHost)
	if err != nil {
		return nil, fmt.Errorf("open topology %s: docker: %w", t.RunID, err)
	}
	for _, ci := range comps {
		c := &container{name: ci.Name, kind: ci.Kind, dir: ci.Dir, id: ci.Container, cname: ci.Container,
			client: pool.Client, addrs: map[int]string{}, stopGrace: 10 * time.Second, stopSignal: dc.SIGTERM, log: log}
		if ci.Kind == "postgres" {
			c.stopSignal = dc.SIGINT
		}
		if ci.Addr != "" {
			c.addrs[0] = ci.Addr
		}
		t.rt.members = append(t.rt.members, c)
	}
	runID := t.RunID
	t.rt.teardown = func(ctx context.Context) error { return removeRun(ctx, pool, runID) }
	return t, nil
}
