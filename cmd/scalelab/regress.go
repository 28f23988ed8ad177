package main

import (
	"context"
	"errors"
	"io"

	"scalelab/regress"
)

// regressExitCode is the status of a failed check, as for a run's failed
// thresholds.
const regressExitCode = 99

// runRegress is `scalelab regress`: CI's throughput check (package
// regress).
func runRegress(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := regress.DefaultConfig()
	fs := newFlagSet("regress", stderr)
	fs.StringVar(&c.Baseline, "baseline", c.Baseline, "baseline file (JSON: ratio, tolerance, measured_on, command)")
	fs.BoolVar(&c.Update, "update-baseline", false, "write this run's median ratio to the baseline file instead of judging it")
	fs.Float64Var(&c.Tolerance, "tolerance", 0, "allowed drop below the baseline ratio, as a fraction; 0 = the baseline's own (with --update-baseline: the one written, 0.12 for a new file)")
	fs.IntVar(&c.Rounds, "rounds", c.Rounds, "measured rounds; each drives the server and the bare handler once")
	fs.DurationVar(&c.Round, "round", c.Round, "how long each target is driven in a round")
	fs.DurationVar(&c.Warmup, "warmup", c.Warmup, "warm-up of each target before the rounds")
	fs.IntVar(&c.VUs, "vus", c.VUs, "virtual users (one connection each) of the closed model")
	fs.IntVar(&c.Users, "users", c.Users, "seeded users the GETs are spread over, all cached in L1")
	fs.Float64Var(&c.Plant, "plant-slowdown", 0, "burn CPU in the server under test so that its throughput drops by this fraction (0.2 = 20%), to show that the check catches it")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	c.Args = args
	err := regress.Run(ctx, c, stdout)
	switch {
	case errors.Is(err, regress.ErrUsage):
		return &exitError{code: 2, msg: "regress: " + err.Error()}
	case errors.Is(err, regress.ErrRegression):
		return &exitError{code: regressExitCode, msg: err.Error()}
	}
	return err
}
