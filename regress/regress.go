// Package regress is CI's throughput regression check.
//
// The regression check compares two HTTP servers started in this process,
// one after the other under the same closed-model load from the same load
// generator: the reference server's cached GET /api/users/{id}, and a bare
// handler that answers with the same bytes and headers. What they share
// (loopback TCP, net/http, the generator's own CPU) cancels out of the ratio
// of their throughputs; what is left is the server's own cost per request:
// routing, id parsing, the L1 lookup, metrics and middleware. That ratio is
// judged against a committed baseline, never absolute speed, which varies
// from machine to machine and minute to minute.
//
// Throughput is counted per CPU-second of this process (requests divided by
// the user and system time getrusage reports for the turn), not per
// wall-clock second. With the CPUs saturated, wall-clock throughput is the
// share of the machine that other processes left us divided by the CPU
// time a request costs. On a shared 2-core machine that share swings from
// one half-second to the next (the wall-clock ratios of one run's rounds
// went from 0.33 to 2.5 at a load average of 8), while the CPU time per
// request moves less, and alike for the two halves of a round (the same
// rounds' per-CPU-second ratios stayed within 0.61–1.05). Dividing by the
// CPU we were given cancels the share and leaves the throughput each
// target reaches on the same CPU.
// The wall-clock numbers are printed too. The price: a regression that
// makes the server wait without burning CPU (a sleep, a lock held across
// I/O) lowers wall-clock throughput but not this ratio.
//
// Many short rounds (20 of 500ms per target by default) that alternate
// which target goes first, and their median, are steadier than a few long
// ones: the two halves of a round see nearly the same machine, and the
// median shrugs off the rounds that a burst of other work spoiled.
package regress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"scalelab/internal/stats"

	"scalelab/reports"
)

// DefaultBaselinePath is where the committed baseline lives, relative to
// the repository's root.
const DefaultBaselinePath = "reports/baseline/regress.json"

// defaultTolerance is written into a new baseline file. On the 2-core
// machines, at load averages of 3 to 10, the medians of 22 clean runs were
// from 5.4% below to 4.6% above the baseline, and those of 15 runs with a
// planted 20% slowdown 16–28% below it: 12% sits between, leaning towards
// no false alarms.
const defaultTolerance = 0.12

// ErrUsage marks a bad configuration or a missing baseline: the check did
// not run.
var ErrUsage = errors.New("usage")

// ErrRegression marks a run whose ratio fell below the baseline's floor.
var ErrRegression = errors.New("throughput regression")

// usageError is an ErrUsage with its message alone.
type usageError struct{ msg string }

func (e *usageError) Error() string        { return e.msg }
func (e *usageError) Is(target error) bool { return target == ErrUsage }

// regressionError is an ErrRegression whose message is the verdict line.
type regressionError struct{ line string }

func (e *regressionError) Error() string        { return e.line }
func (e *regressionError) Is(target error) bool { return target == ErrRegression }

// Config is one run of the check.
type Config struct {
	// Baseline is the baseline file.
	Baseline string
	// Update writes this run's median ratio to Baseline instead of
	// judging it.
	Update bool
	// Tolerance overrides the baseline's own; 0 keeps it.
	Tolerance float64
	Rounds    int
	Round     time.Duration
	Warmup    time.Duration
	VUs       int
	Users     int
	// Plant is the fraction of throughput a planted slowdown takes from
	// the server, to show that the check catches it; 0 plants none.
	Plant float64
	// Args is the command line, recorded in a baseline written by Update.
	Args []string
}

// DefaultConfig returns the check as CI runs it.
func DefaultConfig() Config {
	return Config{Baseline: DefaultBaselinePath, Rounds: 20, Round: 500 * time.Millisecond, Warmup: time.Second, VUs: 32, Users: 10000}
}

// setup describes the measurement, so that a baseline measured another way
// is not silently compared with this one. The number of rounds is not part
// of it: more rounds make the median steadier, not different.
func (c Config) setup() string {
	return fmt.Sprintf("GET /api/users/{id} over %d users uniform, %d VUs closed model, turns of %v, requests per CPU-second",
		c.Users, c.VUs, c.Round)
}

// Validate checks c's values.
func (c Config) Validate() error {
	var err error
	switch {
	case c.Rounds < 1:
		err = fmt.Errorf("--rounds %d: want at least 1", c.Rounds)
	case c.Round < 100*time.Millisecond:
		err = fmt.Errorf("--round %v: want at least 100ms", c.Round)
	case c.Warmup < 100*time.Millisecond:
		err = fmt.Errorf("--warmup %v: want at least 100ms (it calibrates --plant-slowdown)", c.Warmup)
	case c.VUs < 1:
		err = fmt.Errorf("--vus %d: want at least 1", c.VUs)
	case c.Users < 1:
		err = fmt.Errorf("--users %d: want at least 1", c.Users)
	case c.Plant < 0 || c.Plant >= 1:
		err = fmt.Errorf("--plant-slowdown %v: want a fraction in [0, 1)", c.Plant)
	case c.Tolerance < 0 || c.Tolerance >= 1:
		err = fmt.Errorf("--tolerance %v: want a fraction in [0, 1)", c.Tolerance)
	case c.Update && c.Plant > 0:
		err = errors.New("--update-baseline with --plant-slowdown would commit a slowed-down baseline")
	}
	if err != nil {
		return &usageError{msg: err.Error()}
	}
	return nil
}

// Run runs the check and writes what it measures to w. A run below the
// baseline's floor returns an error matching ErrRegression; a bad
// configuration or a missing baseline one matching ErrUsage.
func Run(ctx context.Context, c Config, w io.Writer) error {
	if err := c.Validate(); err != nil {
		return err
	}
	var base *Baseline
	if !c.Update {
		b, err := ReadBaseline(c.Baseline)
		if err != nil {
			return &usageError{msg: fmt.Sprintf("%v (write one with --update-baseline)", err)}
		}
		base = b
		if c.Tolerance > 0 {
			base.Tolerance = c.Tolerance
		}
	}

	start := time.Now()
	machine := reports.DetectMachine(ctx)
	fmt.Fprintln(w, "regress: throughput of the server's cached GET /api/users/{id} as a ratio to a bare handler that writes the same bytes,")
	fmt.Fprintln(w, "  both served from this process on 127.0.0.1 and driven in turn by the load generator; counted per CPU-second")
	fmt.Fprintf(w, "  machine: %s, %d cores, %s; load average %s (other work on the machine adds noise)\n",
		machine.CPU, machine.Cores, machine.GoVersion, loadAverage())
	fmt.Fprintf(w, "  setup: %s; %d rounds after a %v warm-up of each target\n", c.setup(), c.Rounds, c.Warmup)

	lab, err := startLab(ctx, c.Users)
	if err != nil {
		return err
	}
	defer lab.close()
	fmt.Fprintf(w, "  the server: app.New as `scalelab server --api users` wires it (L1 on, defaults), on SQLite in a temporary directory with %d seeded users, all in L1;\n", c.Users)
	fmt.Fprintf(w, "  the bare handler answers %d bytes with %s\n", len(lab.body), headerList(lab.header))

	// Warm-up: connections, the Go runtime and the scheduler settle. The
	// server's warm-up also tells what a request costs in CPU, which a
	// planted slowdown's first guess starts from.
	wServer, err := lab.drive(ctx, lab.server.url, c.VUs, c.Warmup, 1)
	if err != nil {
		return err
	}
	wBare, err := lab.drive(ctx, lab.bare.url, c.VUs, c.Warmup, 2)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  warm-up: server %.0f req/s, %.1f µs CPU per request; bare %.0f req/s, %.1f µs (generator, TCP and net/http included)\n",
		wServer.rate(), micros(wServer.cpuPerRequest()), wBare.rate(), micros(wBare.cpuPerRequest()))

	if c.Plant > 0 {
		if err := lab.plant(ctx, c, wServer.cpuPerRequest(), w); err != nil {
			return err
		}
	}

	rounds, err := lab.rounds(ctx, c, w)
	if err != nil {
		return err
	}
	ratios, wall := make([]float64, len(rounds)), make([]float64, len(rounds))
	for i, r := range rounds {
		ratios[i], wall[i] = r.ratio(), r.wallRatio()
	}
	s, wc := summarize(ratios), summarize(wall)
	fmt.Fprintf(w, "median ratio %.3f (per CPU-second; rounds %.3f–%.3f, middle half %.3f–%.3f); wall-clock ratio %.3f (rounds %.3f–%.3f; not judged)\n",
		s.median, s.min, s.max, s.q1, s.q3, wc.median, wc.min, wc.max)
	fmt.Fprintf(w, "  took %.0fs; load average now %s\n", time.Since(start).Seconds(), loadAverage())

	if c.Update {
		tol := c.Tolerance
		if tol == 0 {
			tol = defaultTolerance
			if old, err := ReadBaseline(c.Baseline); err == nil {
				tol = old.Tolerance
			}
		}
		nb := &Baseline{
			Ratio:     round3(s.median),
			Tolerance: tol,
			MeasuredOn: fmt.Sprintf("%s, %d cores, %s, commit %s, %s, load average %s",
				machine.CPU, machine.Cores, machine.GoVersion, orNone(machine.GitCommit),
				start.UTC().Format(time.RFC3339), loadAverage()),
			Command: reports.CommandLine(append([]string{"scalelab", "regress"}, c.Args...)),
			Setup:   c.setup(),
		}
		for _, x := range ratios {
			nb.Rounds = append(nb.Rounds, round3(x))
		}
		if err := WriteBaseline(c.Baseline, nb); err != nil {
			return err
		}
		fmt.Fprintf(w, "baseline written to %s: ratio %.3f, tolerance %.2f\n", c.Baseline, nb.Ratio, nb.Tolerance)
		return nil
	}

	if base.Setup != "" && base.Setup != c.setup() {
		fmt.Fprintf(w, "warning: the baseline was measured as %q, this run as %q: the ratios may not compare\n", base.Setup, c.setup())
	}
	v := judge(s.median, base)
	if c.Plant > 0 {
		fmt.Fprintf(w, "note: a %.0f%% slowdown was planted in the server, so a regression is the expected verdict\n", 100*c.Plant)
	}
	fmt.Fprintln(w, v.line)
	if !v.pass {
		return &regressionError{line: v.line}
	}
	return nil
}

// rounds runs c.Rounds rounds, each driving the server and the bare
// handler for c.Round, and prints each round's numbers.
func (l *lab) rounds(ctx context.Context, c Config, w io.Writer) ([]round, error) {
	fmt.Fprintf(w, "%5s  %-6s  %12s  %10s  %14s  %11s  %10s  %6s\n",
		"round", "first", "server req/s", "bare req/s", "server µs CPU", "bare µs CPU", "wall ratio", "ratio")
	rounds := make([]round, 0, c.Rounds)
	for i := range c.Rounds {
		// Alternate which target goes first, so that a drift of the
		// machine's speed during the run favours neither.
		serverFirst := i%2 == 0
		var r round
		for j := range 2 {
			isServer := (j == 0) == serverFirst
			url := l.bare.url
			if isServer {
				url = l.server.url
			}
			seg, err := l.drive(ctx, url, c.VUs, c.Round, uint64(10+2*i+j))
			if err != nil {
				return nil, err
			}
			if isServer {
				r.server = seg
			} else {
				r.bare = seg
			}
		}
		rounds = append(rounds, r)
		first := "bare"
		if serverFirst {
			first = "server"
		}
		fmt.Fprintf(w, "%5d  %-6s  %12.0f  %10.0f  %14.2f  %11.2f  %10.3f  %6.3f\n", i+1, first,
			r.server.rate(), r.bare.rate(), micros(r.server.cpuPerRequest()), micros(r.bare.cpuPerRequest()), r.wallRatio(), r.ratio())
	}
	return rounds, nil
}

// round is one round: what each target did in its turn.
type round struct {
	server, bare segment
}

// ratio is the server's throughput per CPU-second over the bare handler's,
// which is the bare handler's CPU time per request over the server's.
func (r round) ratio() float64 { return safeDiv(r.server.perCPU(), r.bare.perCPU()) }

// wallRatio is the same per wall-clock second.
func (r round) wallRatio() float64 { return safeDiv(r.server.rate(), r.bare.rate()) }

// segment is what one target did in one turn.
type segment struct {
	requests int64
	wall     time.Duration // how long requests were being started
	cpu      time.Duration // the process's user and system time meanwhile
}

func (s segment) rate() float64 { return safeDiv(float64(s.requests), s.wall.Seconds()) }

func (s segment) perCPU() float64 { return safeDiv(float64(s.requests), s.cpu.Seconds()) }

func (s segment) cpuPerRequest() time.Duration {
	if s.requests <= 0 {
		return 0
	}
	return s.cpu / time.Duration(s.requests)
}

func safeDiv(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// summary is the spread of per-round ratios.
type summary struct {
	median, min, max, q1, q3 float64
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return summary{median: stats.Quantile(s, 0.5), min: s[0], max: s[len(s)-1], q1: stats.Quantile(s, 0.25), q3: stats.Quantile(s, 0.75)}
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
