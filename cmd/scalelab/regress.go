package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/server"
	"scalelab/server/auth"
	"scalelab/server/cache"
	"scalelab/server/httpapi"
	"scalelab/server/sqlite"
)

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

const (
	defaultBaselinePath = "reports/baseline/regress.json"
	// defaultTolerance is written into a new baseline file. On the 2-core
	// machines, at load averages of 3 to 10, the medians of 22 clean runs
	// were from 5.4% below to 4.6% above the baseline, and those of 15 runs
	// with a planted 20% slowdown 16–28% below it: 12% sits between,
	// leaning towards no false alarms.
	defaultTolerance = 0.12
	// regressExitCode is the status of a failed check, as for a run's
	// failed thresholds.
	regressExitCode = 99
)

type regressConfig struct {
	baseline  string
	update    bool
	tolerance float64 // 0: the baseline's own
	rounds    int
	round     time.Duration
	warmup    time.Duration
	vus       int
	users     int
	plant     float64
}

// setup describes the measurement, so that a baseline measured another way
// is not silently compared with this one. The number of rounds is not part
// of it: more rounds make the median steadier, not different.
func (c regressConfig) setup() string {
	return fmt.Sprintf("GET /api/users/{id} over %d users uniform, %d VUs closed model, turns of %v, requests per CPU-second",
		c.users, c.vus, c.round)
}

func runRegress(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c regressConfig
	fs := newFlagSet("regress", stderr)
	fs.StringVar(&c.baseline, "baseline", defaultBaselinePath, "baseline file (JSON: ratio, tolerance, measured_on, command)")
	fs.BoolVar(&c.update, "update-baseline", false, "write this run's median ratio to the baseline file instead of judging it")
	fs.Float64Var(&c.tolerance, "tolerance", 0, "allowed drop below the baseline ratio, as a fraction; 0 = the baseline's own (with --update-baseline: the one written, 0.12 for a new file)")
	fs.IntVar(&c.rounds, "rounds", 20, "measured rounds; each drives the server and the bare handler once")
	fs.DurationVar(&c.round, "round", 500*time.Millisecond, "how long each target is driven in a round")
	fs.DurationVar(&c.warmup, "warmup", time.Second, "warm-up of each target before the rounds")
	fs.IntVar(&c.vus, "vus", 32, "virtual users (one connection each) of the closed model")
	fs.IntVar(&c.users, "users", 10000, "seeded users the GETs are spread over, all cached in L1")
	fs.Float64Var(&c.plant, "plant-slowdown", 0, "burn CPU in the server under test so that its throughput drops by this fraction (0.2 = 20%), to show that the check catches it")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if err := c.validate(); err != nil {
		return &exitError{code: 2, msg: "regress: " + err.Error()}
	}

	var base *baseline
	if !c.update {
		b, err := readBaseline(c.baseline)
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("regress: %v (write one with --update-baseline)", err)}
		}
		base = b
		if c.tolerance > 0 {
			base.Tolerance = c.tolerance
		}
	}

	start := time.Now()
	machine := reports.DetectMachine(ctx)
	fmt.Fprintln(stdout, "regress: throughput of the server's cached GET /api/users/{id} as a ratio to a bare handler that writes the same bytes,")
	fmt.Fprintln(stdout, "  both served from this process on 127.0.0.1 and driven in turn by the load generator; counted per CPU-second")
	fmt.Fprintf(stdout, "  machine: %s, %d cores, %s; load average %s (other work on the machine adds noise)\n",
		machine.CPU, machine.Cores, machine.GoVersion, loadAverage())
	fmt.Fprintf(stdout, "  setup: %s; %d rounds after a %v warm-up of each target\n", c.setup(), c.rounds, c.warmup)

	lab, err := startRegressLab(ctx, c.users)
	if err != nil {
		return err
	}
	defer lab.close()
	fmt.Fprintf(stdout, "  seeded %d users into SQLite in a temporary directory and filled L1; the bare handler answers %d bytes with %s\n",
		c.users, len(lab.body), headerList(lab.header))

	// Warm-up: connections, the Go runtime and the scheduler settle. The
	// server's warm-up also tells what a request costs in CPU, which a
	// planted slowdown's first guess starts from.
	wServer, err := lab.drive(ctx, lab.server.url, c.vus, c.warmup, 1)
	if err != nil {
		return err
	}
	wBare, err := lab.drive(ctx, lab.bare.url, c.vus, c.warmup, 2)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "  warm-up: server %.0f req/s, %.1f µs CPU per request; bare %.0f req/s, %.1f µs (generator, TCP and net/http included)\n",
		wServer.rate(), micros(wServer.cpuPerRequest()), wBare.rate(), micros(wBare.cpuPerRequest()))

	if c.plant > 0 {
		if err := lab.plant(ctx, c, wServer.cpuPerRequest(), stdout); err != nil {
			return err
		}
	}

	rounds, err := lab.rounds(ctx, c, stdout)
	if err != nil {
		return err
	}
	ratios, wall := make([]float64, len(rounds)), make([]float64, len(rounds))
	for i, r := range rounds {
		ratios[i], wall[i] = r.ratio(), r.wallRatio()
	}
	s, w := summarize(ratios), summarize(wall)
	fmt.Fprintf(stdout, "median ratio %.3f (per CPU-second; rounds %.3f–%.3f, middle half %.3f–%.3f); wall-clock ratio %.3f (rounds %.3f–%.3f; not judged)\n",
		s.median, s.min, s.max, s.q1, s.q3, w.median, w.min, w.max)
	fmt.Fprintf(stdout, "  took %.0fs; load average now %s\n", time.Since(start).Seconds(), loadAverage())

	if c.update {
		tol := c.tolerance
		if tol == 0 {
			tol = defaultTolerance
			if old, err := readBaseline(c.baseline); err == nil {
				tol = old.Tolerance
			}
		}
		nb := &baseline{
			Ratio:     round3(s.median),
			Tolerance: tol,
			MeasuredOn: fmt.Sprintf("%s, %d cores, %s, commit %s, %s, load average %s",
				machine.CPU, machine.Cores, machine.GoVersion, orNone(machine.GitCommit),
				start.UTC().Format(time.RFC3339), loadAverage()),
			Command: reports.CommandLine(append([]string{"scalelab", "regress"}, args...)),
			Setup:   c.setup(),
		}
		for _, x := range ratios {
			nb.Rounds = append(nb.Rounds, round3(x))
		}
		if err := writeBaseline(c.baseline, nb); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "baseline written to %s: ratio %.3f, tolerance %.2f\n", c.baseline, nb.Ratio, nb.Tolerance)
		return nil
	}

	if base.Setup != "" && base.Setup != c.setup() {
		fmt.Fprintf(stdout, "warning: the baseline was measured as %q, this run as %q: the ratios may not compare\n", base.Setup, c.setup())
	}
	v := judge(s.median, base)
	if c.plant > 0 {
		fmt.Fprintf(stdout, "note: a %.0f%% slowdown was planted in the server, so a regression is the expected verdict\n", 100*c.plant)
	}
	fmt.Fprintln(stdout, v.line)
	if !v.pass {
		return &exitError{code: regressExitCode, msg: v.line}
	}
	return nil
}

func (c regressConfig) validate() error {
	switch {
	case c.rounds < 1:
		return fmt.Errorf("--rounds %d: want at least 1", c.rounds)
	case c.round < 100*time.Millisecond:
		return fmt.Errorf("--round %v: want at least 100ms", c.round)
	case c.warmup < 100*time.Millisecond:
		return fmt.Errorf("--warmup %v: want at least 100ms (it calibrates --plant-slowdown)", c.warmup)
	case c.vus < 1:
		return fmt.Errorf("--vus %d: want at least 1", c.vus)
	case c.users < 1:
		return fmt.Errorf("--users %d: want at least 1", c.users)
	case c.plant < 0 || c.plant >= 1:
		return fmt.Errorf("--plant-slowdown %v: want a fraction in [0, 1)", c.plant)
	case c.tolerance < 0 || c.tolerance >= 1:
		return fmt.Errorf("--tolerance %v: want a fraction in [0, 1)", c.tolerance)
	case c.update && c.plant > 0:
		return errors.New("--update-baseline with --plant-slowdown would commit a slowed-down baseline")
	}
	return nil
}

// rounds runs c.rounds rounds, each driving the server and the bare
// handler for c.round, and prints each round's numbers.
func (lab *regressLab) rounds(ctx context.Context, c regressConfig, w io.Writer) ([]regressRound, error) {
	fmt.Fprintf(w, "%5s  %-6s  %12s  %10s  %14s  %11s  %10s  %6s\n",
		"round", "first", "server req/s", "bare req/s", "server µs CPU", "bare µs CPU", "wall ratio", "ratio")
	rounds := make([]regressRound, 0, c.rounds)
	for i := range c.rounds {
		// Alternate which target goes first, so that a drift of the
		// machine's speed during the run favours neither.
		serverFirst := i%2 == 0
		var r regressRound
		for j := range 2 {
			isServer := (j == 0) == serverFirst
			url := lab.bare.url
			if isServer {
				url = lab.server.url
			}
			seg, err := lab.drive(ctx, url, c.vus, c.round, uint64(10+2*i+j))
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

// regressRound is one round: what each target did in its turn.
type regressRound struct {
	server, bare segment
}

// ratio is the server's throughput per CPU-second over the bare handler's,
// which is the bare handler's CPU time per request over the server's.
func (r regressRound) ratio() float64 { return safeDiv(r.server.perCPU(), r.bare.perCPU()) }

// wallRatio is the same per wall-clock second.
func (r regressRound) wallRatio() float64 { return safeDiv(r.server.rate(), r.bare.rate()) }

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
	return summary{median: quantile(s, 0.5), min: s[0], max: s[len(s)-1], q1: quantile(s, 0.25), q3: quantile(s, 0.75)}
}

// quantile returns the q-quantile of sorted, interpolating linearly between
// neighbours, so that the median of an even count is the mean of the
// middle two.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (pos-float64(i))*(sorted[i+1]-sorted[i])
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// baseline is the committed reference the check judges a run against.
type baseline struct {
	// Ratio is the median server/bare throughput ratio of a clean run.
	Ratio float64 `json:"ratio"`
	// Tolerance is the fraction the ratio may fall below Ratio before the
	// check fails.
	Tolerance float64 `json:"tolerance"`
	// MeasuredOn names the machine, commit and time of the run.
	MeasuredOn string `json:"measured_on"`
	// Command is the command line that wrote the file.
	Command string `json:"command"`
	// Setup is the measurement's shape (regressConfig.setup).
	Setup string `json:"setup,omitempty"`
	// Rounds are the per-round ratios the median came from.
	Rounds []float64 `json:"rounds,omitempty"`
}

func (b *baseline) validate() error {
	switch {
	case !(b.Ratio > 0) || b.Ratio > 10:
		return fmt.Errorf("ratio %v: want a positive ratio of throughputs", b.Ratio)
	case !(b.Tolerance >= 0) || b.Tolerance >= 1:
		return fmt.Errorf("tolerance %v: want a fraction in [0, 1)", b.Tolerance)
	}
	return nil
}

// readBaseline reads a baseline file strictly: unknown fields, trailing
// data and out-of-range values are errors naming the file.
func readBaseline(path string) (*baseline, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("baseline %s does not exist", path)
		}
		return nil, fmt.Errorf("read baseline: %w", err)
	}
	b, err := parseBaseline(data)
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", path, err)
	}
	return b, nil
}

func parseBaseline(data []byte) (*baseline, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var b baseline
	if err := dec.Decode(&b); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON object")
	}
	if err := b.validate(); err != nil {
		return nil, err
	}
	return &b, nil
}

func writeBaseline(path string, b *baseline) error {
	if err := b.validate(); err != nil {
		return err
	}
	data, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write baseline: %w", err)
	}
	return nil
}

// verdict is the outcome of judging a run's ratio.
type verdict struct {
	pass  bool
	floor float64 // the lowest passing ratio
	line  string
}

// judge passes ratio when it is at least b.Ratio × (1 − b.Tolerance). A
// faster server always passes: the check guards against regressions, and a
// lasting improvement is recorded with --update-baseline.
func judge(ratio float64, b *baseline) verdict {
	floor := b.Ratio * (1 - b.Tolerance)
	// A ratio exactly at the floor passes, whatever the rounding of the
	// product (0.8 × 0.9 is 0.7200000000000001).
	v := verdict{pass: ratio >= floor-1e-9, floor: floor}
	if v.pass {
		v.line = fmt.Sprintf("pass: ratio %.3f >= baseline %.3f × (1 − %.2f) = %.3f", ratio, b.Ratio, b.Tolerance, floor)
	} else {
		v.line = fmt.Sprintf("throughput regression: ratio %.3f < baseline %.3f × (1 − %.2f) = %.3f", ratio, b.Ratio, b.Tolerance, floor)
	}
	return v
}

// plantedCost is the CPU time to add to each request so that a closed
// model's throughput drops by the fraction f. With the CPUs saturated, the
// throughput is T = P/c, where P is the CPU the process gets and c the
// CPU time it spends per request (load generator, loopback TCP, net/http
// and handler together). Adding d per request gives P/(c+d); asking for
// (1−f)·T gives d = c·f/(1−f). c is measured (CPU time of the process over
// requests, from getrusage) rather than derived from the throughput, so
// that it does not depend on how much of the machine other work took.
// The bare handler is not slowed down, so the ratio drops by f as well.
func plantedCost(cpuPerRequest time.Duration, f float64) time.Duration {
	if f <= 0 || f >= 1 {
		return 0
	}
	return time.Duration(float64(cpuPerRequest) * f / (1 - f))
}

// calibrationPairs is how many clean and planted turns plant compares, a
// second a pair. One pair is noisy: in ten pairs, a burn of 6.7 µs added
// from 11% to 64% to the CPU time per request (median 35%).
const calibrationPairs = 6

// plant plants a slowdown that cuts the server's throughput by the
// fraction c.plant, and says what it did.
//
// plantedCost predicts the CPU time to add per request, but a slower
// handler costs more than its own CPU: a burn predicted to add 25% to the
// CPU time per request added from 26% to 58% in trials (35% typically),
// probably because the generator's and the server's connection goroutines
// then find their reads not ready more often, and park and wake more. So
// the prediction is only the first guess: a few short turns of the server,
// alternately clean and with the guess planted, measure what the guess
// really adds to the CPU time per request, and the burn is scaled to what
// c.plant needs, assuming the added cost grows in proportion to the burn
// (nearly so: in trials it grew as 4% + 7.5% per 1000 iterations, with
// the loop at 1.67 ns).
//
// The cut is still approximate: what a burn costs depends on how busy the
// machine is, and it can change between calibration and rounds. Against
// the committed baseline, runs planted to lose 20% lost from 16% to 28%.
func (lab *regressLab) plant(ctx context.Context, c regressConfig, cleanCPU time.Duration, w io.Writer) error {
	b := newBurner()
	guess := b.iterationsFor(plantedCost(cleanCPU, c.plant))
	p := &plantedHandler{next: lab.handler, burner: b, iterations: guess}
	var ratios []float64
	for k := range calibrationPairs {
		var clean, planted segment
		for j := range 2 {
			on := (j == 0) == (k%2 == 1)
			if on {
				lab.planted.Store(p)
			} else {
				lab.planted.Store(nil)
			}
			seg, err := lab.drive(ctx, lab.server.url, c.vus, c.round, uint64(100+2*k+j))
			if err != nil {
				return err
			}
			if on {
				planted = seg
			} else {
				clean = seg
			}
		}
		ratios = append(ratios, safeDiv(float64(planted.cpuPerRequest()), float64(clean.cpuPerRequest())))
	}
	grew := summarize(ratios).median - 1
	p = &plantedHandler{next: lab.handler, burner: b, iterations: scaleBurn(guess, grew, c.plant)}
	lab.planted.Store(p)
	fmt.Fprintf(w, "  PLANTED SLOWDOWN: burning %d iterations (%.1f µs at %.2f ns each) per request raised the server's CPU per request by %.1f%%\n",
		guess, float64(guess)*b.perIteration/1000, b.perIteration, 100*grew)
	fmt.Fprintf(w, "    (median of %d turns against clean ones); %.1f%% is needed to cut throughput by %.0f%%, so the server now burns %d iterations per request\n",
		calibrationPairs, 100*c.plant/(1-c.plant), 100*c.plant, p.iterations)
	return nil
}

// scaleBurn returns the iterations that make the server's CPU time per
// request grow by f/(1−f), which cuts its throughput by f, given that
// guess iterations made it grow by grew. It keeps the guess when the
// measurement is useless (no growth measured).
func scaleBurn(guess int, grew, f float64) int {
	if grew <= 0 || f <= 0 || f >= 1 {
		return guess
	}
	return int(math.Round(float64(guess) * f / (1 - f) / grew))
}

// burner spends CPU in a busy loop: a fixed amount of work, like a real
// regression, not a sleep (throughput here is bound by CPU, and a sleeping
// handler costs none) nor a deadline on the wall clock (which would burn
// less CPU whenever other work preempts the loop).
type burner struct {
	perIteration float64 // nanoseconds
	sink         atomic.Uint64
}

// newBurner times the loop: the fastest of several short bursts, the one
// least disturbed by other work. It only makes plant's first guess.
func newBurner() *burner {
	b := &burner{}
	const n = 1 << 14
	best := time.Duration(math.MaxInt64)
	for range 50 {
		t0 := time.Now()
		b.burn(n)
		best = min(best, time.Since(t0))
	}
	b.perIteration = float64(best) / n
	return b
}

func (b *burner) iterationsFor(d time.Duration) int {
	if b.perIteration <= 0 {
		return 0
	}
	return int(float64(d) / b.perIteration)
}

// burn runs n rounds of xorshift64. The state never becomes zero, but the
// compiler cannot know that, so the loop cannot be optimised away.
func (b *burner) burn(n int) {
	x := uint64(n) | 1
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	if x == 0 {
		b.sink.Add(1)
	}
}

// plantedHandler is the server with a planted slowdown.
type plantedHandler struct {
	next       http.Handler
	burner     *burner
	iterations int
}

func (h *plantedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.burner.burn(h.iterations)
	h.next.ServeHTTP(w, r)
}

// regressLab is the two servers under test and what they serve.
type regressLab struct {
	paths   []string // GET paths of the seeded users
	handler http.Handler
	// planted, when set, serves the server's requests instead of handler.
	planted      atomic.Pointer[plantedHandler]
	server, bare *listening
	header       http.Header // the cached GET's headers, which bare writes
	body         []byte
	closers      []func()
}

// listening is an http.Server on a port of its own.
type listening struct {
	srv  *http.Server
	url  string
	errc chan error
}

// startRegressLab seeds users into a SQLite store in a temporary
// directory and starts the reference server (L1 on, as `scalelab server`
// wires it) and the bare handler, each on 127.0.0.1:0.
func startRegressLab(ctx context.Context, users int) (lab *regressLab, err error) {
	lab = &regressLab{}
	defer func() {
		if err != nil {
			lab.close()
		}
	}()
	dir, err := os.MkdirTemp("", "scalelab-regress-")
	if err != nil {
		return nil, err
	}
	lab.closers = append(lab.closers, func() { os.RemoveAll(dir) })

	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	db, err := sqlite.Open(ctx, filepath.Join(dir, "regress.db"), sqlite.Options{Registerer: reg, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	lab.closers = append(lab.closers, func() { db.Close() })
	// GETs never check passwords, so seeded users share one cheap hash.
	cheap := auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	hash, err := auth.Hash(server.SeedPassword, cheap)
	if err != nil {
		return nil, err
	}
	if err := db.Seed(ctx, users, hash, nil); err != nil {
		return nil, fmt.Errorf("seed %d users: %w", users, err)
	}
	hasher, err := auth.NewHasher(auth.DefaultParams(), 0)
	if err != nil {
		return nil, err
	}
	l1, err := cache.NewL1(cache.L1Options[*httpapi.UserEntry]{
		TTL:      5 * time.Minute, // the server's default
		MaxBytes: 64 << 20,
		Weigh:    httpapi.WeighUserEntry,
		Metrics:  cache.NewMetrics(reg),
	})
	if err != nil {
		return nil, err
	}
	lab.closers = append(lab.closers, l1.Close)
	lab.handler, err = httpapi.NewHandler(httpapi.Config{Store: db, Hasher: hasher, UserCache: l1, Logger: log, Registry: reg})
	if err != nil {
		return nil, err
	}

	// Fill L1 so that every measured GET is a hit, then record what a hit
	// answers: the bare handler answers exactly that.
	lab.paths = make([]string, users)
	for i := range lab.paths {
		lab.paths[i] = "/api/users/" + server.SeedUserID(i)
	}
	var cw *captureWriter
	for _, p := range append(lab.paths, lab.paths[0]) {
		cw = &captureWriter{header: http.Header{}}
		req, err := http.NewRequestWithContext(ctx, "GET", p, nil)
		if err != nil {
			return nil, err
		}
		lab.handler.ServeHTTP(cw, req)
		if cw.status != http.StatusOK {
			return nil, fmt.Errorf("GET %s in process: status %d, want 200", p, cw.status)
		}
	}
	lab.header, lab.body = cw.header, cw.body.Bytes()

	serverHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := lab.planted.Load(); p != nil {
			p.ServeHTTP(w, r)
			return
		}
		lab.handler.ServeHTTP(w, r)
	})
	if lab.server, err = lab.listen(serverHandler); err != nil {
		return nil, err
	}
	if lab.bare, err = lab.listen(bareHandler(lab.header, lab.body)); err != nil {
		return nil, err
	}
	return lab, nil
}

// bareHandler writes body with header and status 200 to every request:
// the least any server can do to answer a cached GET. Like the server's
// hot path, it assigns prepared header slices instead of calling Set.
func bareHandler(header http.Header, body []byte) http.Handler {
	header = header.Clone()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
}

// listen serves h on 127.0.0.1:0 with the server's timeouts.
func (lab *regressLab) listen(h http.Handler) (*listening, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	l := &listening{
		srv: &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
		},
		url:  "http://" + ln.Addr().String(),
		errc: make(chan error, 1),
	}
	go func() { l.errc <- l.srv.Serve(ln) }()
	lab.closers = append(lab.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if l.srv.Shutdown(sctx) != nil {
			l.srv.Close()
		}
		<-l.errc
	})
	return l, nil
}

// close stops the servers, then closes the cache and the store and removes
// the temporary directory: the reverse of the order they were made in.
func (lab *regressLab) close() {
	for i := len(lab.closers) - 1; i >= 0; i-- {
		lab.closers[i]()
	}
	lab.closers = nil
}

// drive runs vus closed-model users against url for d, each reading
// seeded users picked uniformly, and measures the CPU time the process
// spent meanwhile (the generator's setup and wind-down included, the same
// for both targets). Any failed request fails the check: an erroring
// server is not a fast one.
func (lab *regressLab) drive(ctx context.Context, url string, vus int, d time.Duration, seed uint64) (segment, error) {
	paths := lab.paths
	cpu0 := processCPU()
	res, err := loadgen.Run(ctx, loadgen.Config{
		Target: url,
		Ops: []loadgen.Op{{Name: "GET /api/users/{id}", Weight: 1,
			Do: func(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
				_, err := c.Do(&loadgen.Request{Path: paths[s.Rand.IntN(len(paths))], Expect: []int{200}})
				return err
			}}},
		Executor:     loadgen.ConstantVUs{VUs: vus, Duration: d},
		Seed:         seed,
		GracefulStop: time.Second,
	})
	cpu := processCPU() - cpu0
	if err != nil {
		return segment{}, fmt.Errorf("drive %s: %w", url, err)
	}
	if res.Total.Errors > 0 || res.Total.Count == 0 {
		return segment{}, fmt.Errorf("drive %s: %d of %d requests failed %v", url, res.Total.Errors, res.Total.Count, res.ErrorsByClass)
	}
	return segment{requests: res.Total.Count, wall: res.Duration, cpu: cpu}, nil
}

// captureWriter records a response served in process.
type captureWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *captureWriter) Header() http.Header { return w.header }

func (w *captureWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "unknown".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func headerList(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
