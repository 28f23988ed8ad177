package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/server/app"
	"scalelab/topologies"
)

// thresholdsFailed is the exit status of a run whose thresholds failed.
const thresholdsFailed = 99

// maxSignIns bounds the distinct clients that sign in before a run; more
// workers share their tokens (each sign-in is an argon2id verification of
// about 40 ms of CPU on this kind of machine).
const maxSignIns = 64

type runConfig struct {
	phase    int
	scenario string
	duration time.Duration
	rate     float64
	users    int
	out      string
	seed     uint64
	logLevel string
	topoDir  string
}

func runRun(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c runConfig
	fs := newFlagSet("run", stderr)
	fs.IntVar(&c.phase, "phase", 1, "phase whose topology to run: 1 to 4")
	fs.StringVar(&c.scenario, "scenario", "read-heavy", "scenario name ("+strings.Join(scenarios.Names(), ", ")+") or YAML file")
	fs.DurationVar(&c.duration, "duration", 0, "measured duration (default: the scenario's)")
	fs.Float64Var(&c.rate, "rate", 0, "arrival rate in operations/s (default: the scenario's)")
	fs.IntVar(&c.users, "users", 0, "users to seed (default: the scenario's)")
	fs.StringVar(&c.out, "out", "", "report folder (default reports/runs/<time>-phase-N-NAME)")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed of the load (key and operation choices)")
	fs.StringVar(&c.logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.StringVar(&c.topoDir, "topology-dir", "", "folder for the topology's run folders (default .scalelab/topologies)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	sc, err := scenarios.LoadNamed(c.scenario)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if err := sc.Apply(scenarios.Overrides{Duration: c.duration, Rate: c.rate, Users: c.users}); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	def, err := topologies.Phase(c.phase)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if c.out == "" {
		c.out = filepath.Join("reports", "runs", time.Now().UTC().Format("20060102-150405")+fmt.Sprintf("-phase-%d-%s", c.phase, sc.Name))
	}
	res, err := runScenario(ctx, c, sc, def, append([]string{"scalelab", "run"}, args...), stdout, log)
	if err != nil {
		if ctx.Err() != nil {
			// 130 is the shell's status for a run ended by Ctrl-C.
			return &exitError{code: 130, msg: "interrupted: everything the run started was stopped; no report written"}
		}
		return err
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return fmt.Errorf("create report folder: %w", err)
	}
	if err := res.WriteAll(c.out); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	printSummary(stdout, res)
	fmt.Fprintf(stdout, "\nreport: %s/report.md  %s/report.html  %s/result.json\n", c.out, c.out, c.out)
	var failed []string
	for _, t := range res.Thresholds {
		if !t.Pass {
			failed = append(failed, t.Threshold)
		}
	}
	if len(failed) > 0 {
		for _, t := range failed {
			fmt.Fprintf(stderr, "threshold failed: %s\n", t)
		}
		return &exitError{code: thresholdsFailed, msg: fmt.Sprintf("%d of %d thresholds failed", len(failed), len(res.Thresholds))}
	}
	return nil
}

// runScenario brings the phase up, seeds, warms up, runs the scenario while
// sampling the topology, tears everything down, and returns the result.
func runScenario(ctx context.Context, c runConfig, sc *scenarios.Scenario, def *topologies.Definition, argv []string, stdout io.Writer, log *slog.Logger) (res *reports.Result, err error) {
	bin, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the scalelab binary: %w", err)
	}
	fmt.Fprintf(stdout, "phase %d: %s\n", def.Phase, def.Description)
	top, err := topologies.Up(ctx, def, topologies.Options{Binary: bin, Dir: c.topoDir, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("bring phase %d up: %w", def.Phase, err)
	}
	// Down runs on every way out, Ctrl-C and panics included, with a fresh
	// context: the run's own may be cancelled already.
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		if derr := top.Down(dctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("tear phase %d down: %w", def.Phase, derr))
		}
		fmt.Fprintf(stdout, "topology down in %.1fs\n", time.Since(start).Seconds())
	}()
	fmt.Fprintf(stdout, "topology up in %.1fs: entry %s (folder %s)\n", top.UpSeconds, top.EntryURL, top.Dir)
	// A fault naming a component this phase lacks fails now, not after
	// seeding and warming up.
	faults, err := checkFaults(top, sc.Faults)
	if err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}

	if err := seedTopology(ctx, top, sc.Users, stdout, log); err != nil {
		return nil, err
	}
	api := top.API
	if !strings.HasSuffix(api, "/users") {
		api = strings.TrimSuffix(api, "/") + "/users"
	}
	runTag := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffffff)
	drv := newDriver(sc, api, sc.Users, runTag)
	ops, err := drv.ops(sc)
	if err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}

	if drv.auth {
		start := time.Now()
		if err := drv.signIn(ctx, top.EntryURL, min(sc.MaxWorkers, maxSignIns)); err != nil {
			return nil, err
		}
		fmt.Fprintf(stdout, "signed in %d simulated clients in %.1fs\n", len(drv.tokens), time.Since(start).Seconds())
	}
	if sc.Warmup > 0 {
		fmt.Fprintf(stdout, "warming up for %s\n", sc.Warmup)
		wcfg := loadConfig(top.EntryURL, ops, drv, c.seed+1, warmupExecutor(sc))
		wcfg.GracefulStop = time.Second
		if _, err := loadgen.Run(ctx, wcfg); err != nil {
			return nil, fmt.Errorf("warm up: %w", err)
		}
	}

	sampler, err := topologies.StartSampler(ctx, top, topologies.SamplerOptions{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("start sampling the topology: %w", err)
	}
	fmt.Fprintf(stdout, "running %s for %s: %s\n", sc.Name, sc.Duration, sc.Executor)
	progress := loadgen.NewProgress(stdout)
	cfg := loadConfig(top.EntryURL, ops, drv, c.seed, mainExecutor(sc))
	cfg.Observer = progress
	faultCtx, stopFaults := context.WithCancel(ctx)
	faultLog := make(chan []string, 1)
	go func() { faultLog <- injectFaults(faultCtx, top, faults, time.Now(), stdout) }()
	lres, runErr := loadgen.Run(ctx, cfg)
	stopFaults()
	injected := <-faultLog
	progress.Stop()
	meas, serr := sampler.Stop(context.Background())
	if runErr != nil {
		return nil, fmt.Errorf("run %s: %w", sc.Name, runErr)
	}
	if serr != nil {
		log.Warn("sampling the topology failed; the report has no topology measurements", "err", serr)
		meas = nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run %s: interrupted: %w", sc.Name, err)
	}
	res = buildResult(ctx, resultInput{
		phase: def.Phase, topology: def.Description, scenario: sc, argv: argv,
		load: lres, measurements: meas, top: top,
	})
	res.Notes = append(res.Notes, injected...)
	return res, nil
}

// scheduledFault is a scenario fault whose component exists.
type scheduledFault struct {
	scenarios.Fault
	action topologies.Fault
}

// checkFaults resolves the scenario's faults against the running topology
// before the run starts, so that a misnamed component fails at once.
func checkFaults(top *topologies.Topology, faults []scenarios.Fault) ([]scheduledFault, error) {
	var out []scheduledFault
	for _, f := range faults {
		if _, err := top.Component(f.Component); err != nil {
			return nil, fmt.Errorf("fault %s: %w", f, err)
		}
		action, err := topologies.ParseFault(string(f.Action))
		if err != nil {
			return nil, fmt.Errorf("fault %s: %w", f, err)
		}
		out = append(out, scheduledFault{Fault: f, action: action})
	}
	return out, nil
}

// injectFaults applies each fault at its time after start, until ctx ends,
// and returns a line per fault for the report's notes.
func injectFaults(ctx context.Context, top *topologies.Topology, faults []scheduledFault, start time.Time, stdout io.Writer) []string {
	var lines []string
	for _, f := range faults {
		t := time.NewTimer(time.Until(start.Add(f.At)))
		select {
		case <-ctx.Done():
			t.Stop()
			return append(lines, fmt.Sprintf("Fault %s: not injected, the run ended first.", f.Fault))
		case <-t.C:
		}
		at := time.Since(start)
		err := top.Inject(ctx, f.Component, f.action)
		line := fmt.Sprintf("Fault %s: injected at %.2fs, took %s.", f.Fault, at.Seconds(), time.Since(start.Add(at)).Round(time.Millisecond))
		if err != nil {
			line = fmt.Sprintf("Fault %s: failed at %.2fs: %v.", f.Fault, at.Seconds(), err)
		}
		fmt.Fprintf(stdout, "\n%s\n", line)
		lines = append(lines, line)
	}
	return lines
}

// seedTopology bulk-loads the scenario's users into the phase's database:
// the primary in phases 2–4, app-1's SQLite file in phase 1 (see
// topologies/phase-1.yaml).
func seedTopology(ctx context.Context, top *topologies.Topology, users int, stdout io.Writer, log *slog.Logger) error {
	dsn := top.PrimaryURL
	if dsn == "" {
		for _, ci := range top.Components() {
			if ci.Name == "app-1" {
				dsn = "sqlite:" + filepath.Join(ci.Dir, "scalelab.db")
			}
		}
	}
	if dsn == "" {
		return errors.New("seed: the topology has neither a primary nor app-1")
	}
	store, err := app.OpenStore(ctx, app.StoreOptions{DSN: dsn, Logger: log})
	if err != nil {
		return err
	}
	defer store.Close()
	d, err := seed(ctx, store, users, stdout, log)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seeded %d users in %.1fs\n", users, d.Seconds())
	return nil
}

// loadConfig is the load generator's configuration for one run.
func loadConfig(target string, ops []loadgen.Op, drv *driver, seed uint64, ex loadgen.Executor) loadgen.Config {
	return loadgen.Config{
		Target:   target,
		Ops:      ops,
		Executor: ex,
		Seed:     seed,
		Timeout:  10 * time.Second,
		Setup:    drv.setup,
	}
}

func pool(sc *scenarios.Scenario) loadgen.Pool {
	return loadgen.Pool{MaxWorkers: sc.MaxWorkers}
}

// mainExecutor maps the scenario's executor to the load generator's.
func mainExecutor(sc *scenarios.Scenario) loadgen.Executor {
	switch sc.Executor.Kind {
	case scenarios.RampingArrivalRate:
		stages := make([]loadgen.Stage, len(sc.Executor.Stages))
		for i, s := range sc.Executor.Stages {
			stages[i] = loadgen.Stage{Target: s.Target, Duration: s.Duration}
		}
		return loadgen.RampingArrivalRate{StartRate: sc.Executor.StartRate, Stages: stages, Pool: pool(sc)}
	case scenarios.ConstantVUs:
		return loadgen.ConstantVUs{VUs: sc.Executor.VUs, Duration: sc.Duration}
	}
	return loadgen.ConstantArrivalRate{Rate: sc.Executor.Rate, Duration: sc.Duration, Pool: pool(sc)}
}

// warmupExecutor runs the warm-up at the scenario's starting load.
func warmupExecutor(sc *scenarios.Scenario) loadgen.Executor {
	switch sc.Executor.Kind {
	case scenarios.RampingArrivalRate:
		return loadgen.ConstantArrivalRate{Rate: sc.Executor.StartRate, Duration: sc.Warmup, Pool: pool(sc)}
	case scenarios.ConstantVUs:
		return loadgen.ConstantVUs{VUs: sc.Executor.VUs, Duration: sc.Warmup}
	}
	return loadgen.ConstantArrivalRate{Rate: sc.Executor.Rate, Duration: sc.Warmup, Pool: pool(sc)}
}

// printSummary writes the run's headline numbers.
func printSummary(w io.Writer, r *reports.Result) {
	fmt.Fprintf(w, "\nphase %d, %s: %d requests in %.1fs = %.0f req/s (operations offered: %.0f/s), errors %d, throttled %d, dropped %d\n",
		r.Phase, r.Scenario, r.Totals.Requests, r.DurationS, r.Totals.Rate, r.Totals.OfferedRate,
		r.Totals.Errors, r.Totals.Throttled, r.Totals.Dropped)
	fmt.Fprintf(w, "%-34s %9s %9s %8s %8s %8s %9s %8s\n", "operation", "count", "rate/s", "p50 ms", "p99 ms", "p99.9", "max ms", "errors")
	for _, op := range r.Operations {
		fmt.Fprintf(w, "%-34s %9d %9.0f %8.2f %8.2f %8.2f %9.2f %8d\n", op.Name, op.Count, op.Rate,
			op.LatencyMS.P50, op.LatencyMS.P99, op.LatencyMS.P999, op.LatencyMS.Max, op.Errors)
	}
	if c := r.Cache; c.L1HitRate != nil || c.L2HitRate != nil || c.L3HitRate != nil {
		fmt.Fprintf(w, "cache hit rate: L1 %s  L2 %s  L3 %s\n", pct(c.L1HitRate), pct(c.L2HitRate), pct(c.L3HitRate))
	}
	for _, rep := range r.Replicas {
		fmt.Fprintf(w, "%s lag: p50 %.3fs max %.3fs\n", rep.Name, rep.LagSP50, rep.LagSMax)
	}
	for k, v := range r.Counters {
		fmt.Fprintf(w, "%s: %d\n", k, v)
	}
	for _, t := range r.Thresholds {
		verdict := "PASS"
		if !t.Pass {
			verdict = "FAIL"
		}
		obs := "no data"
		if t.Observed != nil {
			obs = fmt.Sprintf("%.3g %s", *t.Observed, t.Unit)
		}
		fmt.Fprintf(w, "threshold %s: %s (observed %s)\n", t.Threshold, verdict, obs)
	}
}

func pct(f *float64) string {
	if f == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", *f*100)
}
