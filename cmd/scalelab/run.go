package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"scalelab/lab"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

// thresholdsFailed is the exit status of a run whose thresholds failed.
const thresholdsFailed = 99

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
	baseline string
	network  string
	profile  bool
	keepData bool
	runtime  string
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
	fs.StringVar(&c.baseline, "baseline", "", "result.json (or its folder) that the report compares this run with (default under reports/published/: the previous phase's run)")
	fs.StringVar(&c.network, "network", "", "distance between tiers: "+strings.Join(topologies.NetworkProfiles(), ", ")+" (default: the phase file's)")
	fs.StringVar(&c.runtime, "runtime", "process", runtimeUsage)
	fs.BoolVar(&c.profile, "profile", false, "save CPU profiles of each app instance and of the load generator (pprof) into the report folder")
	fs.BoolVar(&c.keepData, "keep-data", false, "keep the components' data (databases, Prometheus' samples) in the run folder after a run that went well; without it only their configuration and logs stay")
	t := targetFlags(fs)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	if t.used() {
		return runTarget(ctx, fs, &c, t, args, stdout, stderr, log)
	}
	sc, err := scenarios.LoadNamed(c.scenario)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if err := sc.Apply(scenarios.Overrides{Duration: c.duration, Rate: c.rate, Users: c.users}); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	rt, err := topologies.ParseRuntime(c.runtime)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	def, err := lab.Phase(c.phase)
	if err == nil {
		err = def.SetNetwork(c.network)
	}
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	var baseline *reports.Result
	if c.baseline != "" {
		// Read now: a wrong path must not cost a whole run.
		if baseline, err = reports.Read(c.baseline); err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
	}
	if c.out == "" {
		c.out = filepath.Join("reports", "runs", time.Now().UTC().Format("20060102-150405")+fmt.Sprintf("-phase-%d-%s", c.phase, sc.Name))
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the scalelab binary: %w", err)
	}
	profileDir := ""
	if c.profile {
		profileDir = c.out
	}
	res, err := lab.Run(ctx, lab.Config{
		Definition: def, Scenario: sc, Binary: bin, TopologyDir: c.topoDir, Seed: c.seed,
		Argv: append([]string{"scalelab", "run"}, args...), Stdout: stdout, Logger: log,
		ProfileDir: profileDir, Runtime: rt, KeepData: c.keepData,
	})
	if err != nil {
		if ctx.Err() != nil {
			// 130 is the shell's status for a run ended by Ctrl-C.
			return &exitError{code: 130, msg: "interrupted: everything the run started was stopped; no report written"}
		}
		if errors.Is(err, lab.ErrInvalid) {
			return &exitError{code: 2, msg: err.Error()}
		}
		return err
	}
	return writeRun(&res, c.out, c.baseline, baseline, stdout, stderr)
}

// writeRun writes a run's result.json and reports into out, prints its
// summary, and fails with thresholdsFailed when a threshold failed.
func writeRun(res *reports.Result, out, baselinePath string, baseline *reports.Result, stdout, stderr io.Writer) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create report folder: %w", err)
	}
	opts, err := reportOptions(out, baselinePath, baseline)
	if err != nil {
		return err
	}
	if err := res.WriteAll(out, opts...); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	printSummary(stdout, res)
	fmt.Fprintf(stdout, "\nreport: %s/report.md  %s/report.html  %s/result.json\n", out, out, out)
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

// reportOptions shapes the reports written into out: a run written under
// reports/published/ gets the published runs' baseline and links (see
// reports.PublishedOptions); a baseline read from baselinePath (may be nil)
// is compared with, and linked to when its report.html is there.
func reportOptions(out, baselinePath string, baseline *reports.Result) ([]reports.Option, error) {
	var opts []reports.Option
	abs, err := filepath.Abs(out)
	if err != nil {
		return nil, fmt.Errorf("report options: %w", err)
	}
	if parent := filepath.Dir(abs); filepath.Base(parent) == "published" && filepath.Base(filepath.Dir(parent)) == "reports" {
		if opts, err = reports.PublishedOptions(abs); err != nil {
			return nil, err
		}
	}
	if baseline == nil {
		return opts, nil
	}
	dir := baselinePath
	if filepath.Base(dir) == reports.ResultFile {
		dir = filepath.Dir(dir)
	}
	href := ""
	if _, err := os.Stat(filepath.Join(dir, reports.HTMLFile)); err == nil {
		bdir, err1 := filepath.Abs(dir)
		rel, err2 := filepath.Rel(abs, filepath.Join(bdir, reports.HTMLFile))
		if err1 == nil && err2 == nil {
			href = filepath.ToSlash(rel)
		}
	}
	return append(opts, reports.WithBaseline(baseline, href)), nil
}

// printSummary writes the run's headline numbers.
func printSummary(w io.Writer, r *reports.Result) {
	where := fmt.Sprintf("phase %d", r.Phase)
	if r.Target != "" {
		where = r.Target
	}
	fmt.Fprintf(w, "\n%s, %s: %d requests in %.1fs = %.0f req/s (operations offered: %.0f/s), errors %d, throttled %d, dropped %d\n",
		where, r.Scenario, r.Totals.Requests, r.DurationS, r.Totals.Rate, r.Totals.OfferedRate,
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
