package topologies

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// WorkersDef is the group of `scalelab worker` processes that work the job
// queue (River, in Postgres): exports, the records of deleted users, CDN
// purges that failed. The apps only insert jobs.
type WorkersDef struct {
	Count int `yaml:"count"` // default 1
	// Flags are passed to `scalelab worker`, each `--name=value` or
	// `--name`, with the ${…} variables of app flags expanded (see
	// phase-1.yaml), except that a worker has ${worker.name},
	// ${worker.dir} and ${worker.metrics_addr} where an app has
	// ${app.…}. Every flag must be one the worker defines: the definition
	// is checked against its flag set when it is loaded. --db names the
	// database the queue lives in.
	Flags []string `yaml:"flags"`

	// flagLines are the line numbers of Flags in the file, for errors.
	flagLines []int
}

// maxWorkers bounds workers.count: each is a process with its own pool.
const maxWorkers = 8

// validateWorkers checks the workers section: it needs Postgres (the
// queue's home), and each flag is checked against worker, the flag set of
// `scalelab worker`.
func (d *Definition) validateWorkers(worker *flag.FlagSet) error {
	w := d.Workers
	if w == nil {
		return nil
	}
	if worker == nil {
		return errors.New("workers: no worker flag set to check the worker flags against")
	}
	if d.Postgres == nil {
		return errors.New("workers: need a postgres section (the job queue lives in PostgreSQL)")
	}
	if w.Count < 1 || w.Count > maxWorkers {
		return fmt.Errorf("workers.count: %d, want 1 to %d", w.Count, maxWorkers)
	}
	vars := d.placeholderVars()
	for _, k := range appOnlyVars {
		delete(vars, k)
	}
	for _, k := range []string{"worker.name", "worker.dir", "worker.metrics_addr"} {
		vars[k] = []string{"x"}
	}
	hasDB := false
	for i, f := range w.Flags {
		name, err := checkFlag(f, vars, worker, "worker")
		if err != nil {
			return flagError("workers", w.flagLines, i, err.Error())
		}
		hasDB = hasDB || name == "db"
	}
	if !hasDB {
		return errors.New("workers.flags: no --db: the definition must say where the job queue lives")
	}
	return nil
}

// Worker is one `scalelab worker` process. Its metrics listener also
// answers /readyz once the worker works jobs.
type Worker struct {
	daemon
	metricsPort int
}

// MetricsURL is the base URL of the worker's metrics listener (its
// /metrics).
func (w *Worker) MetricsURL() string { return "http://" + loopback(w.metricsPort) }

func (w *Worker) info() ComponentInfo { return w.baseInfo(loopback(w.metricsPort), w.MetricsURL()) }

func newWorker(name, dir, bin string, args []string, metricsPort int, log *slog.Logger) *Worker {
	w := &Worker{metricsPort: metricsPort}
	w.daemon = daemon{
		name: name, kind: "worker", dir: dir, log: log,
		spec: procSpec{path: bin, args: args, dir: dir, logPath: filepath.Join(dir, "worker.log")},
		// The worker lets running jobs finish on SIGTERM (up to 30s).
		stopSignal: syscall.SIGTERM,
		stopGrace:  40 * time.Second,
	}
	w.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, w.MetricsURL()+"/readyz")
		return err
	}
	return w
}

// planWorkers picks each worker's metrics port and adds a step per worker
// after deps (the apps' steps: an app creates the schema in its layout).
func (b *builder) planWorkers(deps []string) error {
	w := b.def.Workers
	if w == nil {
		return nil
	}
	b.workerPorts = make([]int, w.Count)
	for i := range b.workerPorts {
		p, err := b.ports.pick()
		if err != nil {
			return err
		}
		b.workerPorts[i] = p
		b.t.WorkerMetricsURLs = append(b.t.WorkerMetricsURLs, "http://"+loopback(p))
	}
	for i := range w.Count {
		b.add(fmt.Sprintf("worker-%d", i+1), slices.Clone(deps), func(ctx context.Context) error { return b.startWorker(ctx, i) })
	}
	return nil
}

// workerVars are the variables worker i's flags expand with: the shared
// ones of the apps (through the same network links as the apps: a worker
// is an app-tier process) and its own.
func (b *builder) workerVars(name, dir string, metricsPort int) flagVars {
	v := b.vars(name, dir, "", "")
	for _, k := range appOnlyVars {
		delete(v, k)
	}
	v["worker.name"] = []string{name}
	v["worker.dir"] = []string{dir}
	v["worker.metrics_addr"] = []string{loopback(metricsPort)}
	return v
}

func (b *builder) startWorker(ctx context.Context, i int) error {
	name := fmt.Sprintf("worker-%d", i+1)
	dir, err := b.dir(name)
	if err != nil {
		return err
	}
	if err := b.appLinks(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	flags, err := args(b.def.Workers.Flags, b.workerVars(name, dir, b.workerPorts[i]))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	w := newWorker(name, dir, b.bin, append([]string{"worker"}, flags...), b.workerPorts[i], b.log)
	b.t.rt.mu.Lock()
	b.t.rt.workers = append(b.t.rt.workers, w)
	slices.SortFunc(b.t.rt.workers, func(x, y *Worker) int { return cmpName(x.name, y.name) })
	b.t.rt.mu.Unlock()
	b.daemonHooks(&w.daemon)
	b.t.rt.register(b.t, w)
	return w.start(ctx)
}

// workerJob is Prometheus' scrape job of the workers' metrics.
func (b *builder) workerJob() []promJob {
	if len(b.workerPorts) == 0 {
		return nil
	}
	job := promJob{Name: "worker"}
	for i, p := range b.workerPorts {
		job.Targets = append(job.Targets, promTarget{Addr: loopback(p), Component: fmt.Sprintf("worker-%d", i+1)})
	}
	return []promJob{job}
}

// Workers returns the running queue workers, worker-1 first; none when the
// phase has no workers section.
func (t *Topology) Workers() []*Worker {
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	return slices.Clone(t.rt.workers)
}
