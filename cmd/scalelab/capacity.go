package main

import (
	"cmp"
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

func runCapacity(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		phase              int
		scenario, sloText  string
		out, logLevel, dir string
		step               time.Duration
		start              float64
		users              int
		seed               uint64
	)
	policy := lab.DefaultPolicy()
	fs := newFlagSet("capacity", stderr)
	fs.IntVar(&phase, "phase", 1, "phase whose topology to measure: 1 to 4")
	fs.StringVar(&scenario, "scenario", "read-heavy", "scenario whose mix to step ("+strings.Join(scenarios.Names(), ", ")+") or YAML file")
	fs.StringVar(&sloText, "slo", "", "latency bound of the SLO, e.g. 'p99<50ms' (default: the scenario's p99 threshold, else 50ms); errors+dropped <= 0.1% and achieved >= 95% always apply")
	fs.DurationVar(&step, "step", 10*time.Second, "how long each rate is held")
	fs.Float64Var(&start, "start", policy.Start, "first rate tried, requests/s; doubled until the SLO fails, then bisected")
	fs.IntVar(&users, "users", 0, "users to seed (default: the scenario's)")
	fs.StringVar(&out, "out", "", "report folder (default reports/runs/<time>-phase-N-capacity-NAME)")
	fs.Uint64Var(&seed, "seed", 1, "random seed of the load (key and operation choices)")
	fs.StringVar(&logLevel, "log-level", "warn", "debug, info, warn or error")
	fs.StringVar(&dir, "topology-dir", "", "folder for the topology's run folders (default .scalelab/topologies)")
	runtime := fs.String("runtime", "process", runtimeUsage)
	box := fs.Bool("box", true, "after the search, search a bare server costing what a request of the phase costs: the share of the cores this machine lets requests use, for the model (--box=false: the M/M/1 rule instead)")
	chain := fs.Bool("box-chain", false, "make the bare server a chain of processes, one per tier a request goes through (load balancer, app, cache, databases), each spending its tier's CPU, instead of one process spending it all")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	rt, err := topologies.ParseRuntime(*runtime)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	sc, err := scenarios.LoadNamed(scenario)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if err := sc.Apply(scenarios.Overrides{Users: users}); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	slo := lab.DefaultSLO(sc)
	if sloText != "" {
		if slo, err = lab.ParseSLO(sloText, slo); err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
	}
	if step <= 0 || start <= 0 {
		return &exitError{code: 2, msg: "--step and --start must be positive"}
	}
	policy.Start = start
	def, err := lab.Phase(phase)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if out == "" {
		out = filepath.Join("reports", "runs", time.Now().UTC().Format("20060102-150405")+fmt.Sprintf("-phase-%d-capacity-%s", phase, sc.Name))
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the scalelab binary: %w", err)
	}
	res, err := capacity(ctx, lab.Config{
		Definition: def, Scenario: sc, Binary: bin, TopologyDir: dir, Seed: seed,
		Argv: append([]string{"scalelab", "capacity"}, args...), Stdout: stdout, Logger: log, Runtime: rt,
	}, lab.CapacityConfig{SLO: slo, Policy: policy, Step: step, NoBox: !*box, BoxChain: *chain})
	if err != nil {
		if ctx.Err() != nil {
			// 130 is the shell's status for a run ended by Ctrl-C.
			return &exitError{code: 130, msg: "interrupted: everything the search started was stopped; no report written"}
		}
		if errors.Is(err, lab.ErrInvalid) {
			return &exitError{code: 2, msg: err.Error()}
		}
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create report folder: %w", err)
	}
	if err := res.WriteAll(out); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	printCapacity(stdout, &res)
	fmt.Fprintf(stdout, "\nreport: %s/report.md  %s/report.html  %s/result.json\n", out, out, out)
	return nil
}

// capacity brings the topology up once, seeds, warms up, searches and
// tears down, whatever happened, with a fresh context.
func capacity(ctx context.Context, c lab.Config, cc lab.CapacityConfig) (res reports.Result, err error) {
	s, err := lab.Up(ctx, c)
	if err != nil {
		return res, err
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err = errors.Join(err, s.Down(dctx))
	}()
	if err := s.Seed(ctx); err != nil {
		return res, err
	}
	if err := s.WarmUp(ctx); err != nil {
		return res, err
	}
	return s.Capacity(ctx, cc)
}

// printCapacity writes the search's headline numbers.
func printCapacity(w io.Writer, r *reports.Result) {
	c := r.Capacity
	fmt.Fprintf(w, "\nphase %d, %s: capacity %.0f req/s under %s\n", r.Phase, r.Scenario, c.MaxRate, c.SLO)
	if c.MaxRate > 0 && c.PredictedMaxRate > 0 {
		fmt.Fprintf(w, "model: %.0f req/s (bottleneck %s), error %+.1f%%\n", c.PredictedMaxRate, c.Model.Bottleneck, 100*(c.PredictedMaxRate-c.MaxRate)/c.MaxRate)
	}
	if b := c.Box; b != nil {
		fmt.Fprintf(w, "the machine's own ceiling: a bare server at %.0f µs per request met %s up to %.0f req/s, %.0f%% of the cores busy", b.WorkUS, cmp.Or(b.SLO, "the SLO"), b.MaxRate, 100*b.KneeBusy)
		if b.Utilization > 0 {
			fmt.Fprintf(w, "; the model let requests use %.0f%%", 100*b.Utilization)
		}
		if b.PhaseShare > 0 {
			fmt.Fprintf(w, "; the phase's capacity is %.0f%% of the bare server's", 100*b.PhaseShare)
		}
		fmt.Fprintln(w)
	}
	if c.DataBytesPerUser > 0 {
		fmt.Fprintf(w, "data: %.0f bytes per user\n", c.DataBytesPerUser)
	}
}
