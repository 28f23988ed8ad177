package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"scalelab/plan"
)

// defaultPlanFrom is where plan reads measured runs when --from is not
// given: the checked-in reference runs.
const defaultPlanFrom = "reports/published"

// pathList is a flag that may be given several times.
type pathList []string

func (l *pathList) String() string { return strings.Join(*l, " ") }

func (l *pathList) Set(v string) error {
	if v == "" {
		return fmt.Errorf("empty path")
	}
	*l = append(*l, v)
	return nil
}

// runPlan turns measured runs into instances per tier for a workload and
// names the smallest phase that serves it.
func runPlan(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("plan", stderr)
	w := plan.Workload{}
	fs.Int64Var(&w.Users, "users", 1_000_000, "registered users")
	fs.Float64Var(&w.DailyActive, "daily-active", 0.2, "fraction of users active on a day")
	fs.Float64Var(&w.RequestsPerUser, "requests-per-user", 50, "requests per active user per day")
	fs.Float64Var(&w.PeakFactor, "peak-factor", 3, "peak rate over the day's average")
	fs.Float64Var(&w.WriteShare, "write-share", 0.05, "fraction of requests that write")
	fs.IntVar(&w.CoresPerMachine, "cores-per-machine", 8, "cores of each machine planned")
	fs.Float64Var(&w.TargetUtilization, "target-utilization", 0.6, "how busy a machine may be at the peak")
	var from pathList
	fs.Var(&from, "from", "result.json, run folder or folder of runs to take measurements from; repeat for several (default "+defaultPlanFrom+")")
	out := fs.String("out", ".", "folder to write "+plan.File+" into")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scalelab plan --users N [--from DIR]... [--out DIR] [flags]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if len(from) == 0 {
		from = pathList{defaultPlanFrom}
	}
	if err := w.Validate(); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	measured, skipped, err := plan.Load(from)
	if err != nil {
		return err
	}
	p, err := plan.Make(w, measured)
	if err != nil {
		return err
	}
	p.Skipped = skipped
	if err := p.WriteTable(stdout); err != nil {
		return fmt.Errorf("print plan: %w", err)
	}
	if err := p.Write(*out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", filepath.Join(*out, plan.File))
	return nil
}
