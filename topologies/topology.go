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
	"slices"
	"strings"
	"sync"
	"time"

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
	// Network overrides the definition's network profile (none,
	// datacenter or internet) when not empty.
	Network string
	// DieWithParent has the kernel kill the components this process
	// starts directly (all but Postgres, which pg_ctl detaches) when this
	// process dies, for tests. Leave it off for `scalelab up`.
	DieWithParent bool

	// Runtime is where the components run: RuntimeProcess (""; the
	// default) or RuntimeDocker.
	Runtime Runtime
	// DockerHost is the Docker endpoint for RuntimeDocker; "" means
	// DOCKER_HOST or the default socket (package internal/dockerd finds or
	// starts a daemon).
	DockerHost string
	// InfraImage and AppImage override DefaultInfraImage and
	// DefaultAppImage for RuntimeDocker.
	InfraImage, AppImage string
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
	// Container is the Docker container's name under the docker runtime.
	Container string `json:"container,omitempty"`
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

	EntryURL string   `json:"entry_url"` // where clients go: varnish, haproxy or app-1
	AppURLs  []string `json:"app_urls"`
	// AppMetricsURLs are the apps' metrics listeners (their /metrics),
	// in the order of AppURLs.
	AppMetricsURLs []string `json:"app_metrics_urls,omitempty"`
	// WorkerMetricsURLs are the queue workers' metrics listeners (their
	// /metrics and /readyz), worker-1 first.
	WorkerMetricsURLs []string `json:"worker_metrics_urls,omitempty"`
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
	// Network is the profile the links run under; Links are the proxied
	// links (none under the none profile), each with its shape.
	Network string `json:"network"`
	Links   []Link `json:"links,omitempty"`
	// DatabaseURL is where the apps' data lives, for seeding: the
	// primary's URL, or without Postgres the --db of app-1 (sqlite:PATH,
	// the path absolute).
	DatabaseURL string `json:"database_url,omitempty"`
	// Runtime is "docker" for a run of containers ("" or "process" for
	// local processes); DockerHost and DockerNetwork say where they run.
	Runtime       string `json:"runtime,omitempty"`
	DockerHost    string `json:"docker_host,omitempty"`
	DockerNetwork string `json:"docker_network,omitempty"`

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
	workers   []*Worker
	haproxy   *HAProxy
	varnish   *Varnish
	prom      *Prometheus
	net       *network
	stoppedAt *time.Time
	// teardown, when set, runs in Down after the members stopped: the
	// docker runtime removes the run's containers and network there.
	teardown func(ctx context.Context) error
	// Set by the docker runtime, whose Postgres and Varnish are not the
	// process runtime's handles: where the Sampler reaches each Postgres
	// server, and how it reads Varnish's counters (in its container).
	pgPrimary    *pgNode
	pgReplicas   []pgNode
	varnishStats func(ctx context.Context) (map[string]uint64, error)

	downMu sync.Mutex // serializes Down
	// saveMu serializes writing topology.json, from the snapshot to the
	// rename: without it a save that took its snapshot before Down set
	// stoppedAt could rename its file over Down's (seen: a failed Up's
	// topology.json without stopped_at).
	saveMu sync.Mutex
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
	if opts.Runtime == RuntimeDocker {
		return upDocker(ctx, def, opts)
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

	profile := cmpOr(opts.Network, def.Network)
	if err := checkNetwork(profile); err != nil {
		return nil, fmt.Errorf("topology: %w", err)
	}
	ports := newPortPicker()
	t.Network = profile
	t.rt.net = &network{profile: profile, settings: def.Links, ports: ports}
	b := &builder{t: t, def: def, opts: opts, bin: bin, ports: ports, log: log, net: t.rt.net}
	if err := b.plan(); err != nil {
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

// save writes topology.json (atomically: a reader never sees half a file).
func (t *Topology) save() error {
	t.rt.saveMu.Lock()
	defer t.rt.saveMu.Unlock()
	comps := t.Components()
	t.rt.mu.Lock()
	f := topologyFile{Topology: *t, Components: comps, StoppedAt: t.rt.stoppedAt}
	f.Steps = slices.Clone(t.Steps)
	f.AppURLs = slices.Clone(t.AppURLs)
	f.AppMetricsURLs = slices.Clone(t.AppMetricsURLs)
	f.ReplicaURLs = slices.Clone(t.ReplicaURLs)
	f.RedisClusterAddrs = slices.Clone(t.RedisClusterAddrs)
	t.Links = t.rt.net.Links()
	f.Links = slices.Clone(t.Links)
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

func (t *Topology) HAProxy() *HAProxy { return t.rt.haproxy }

// Varnish is nil if the phase has none.
func (t *Topology) Varnish() *Varnish { return t.rt.varnish }

// Prometheus is nil if the phase has none.
func (t *Topology) Prometheus() *Prometheus { return t.rt.prom }
