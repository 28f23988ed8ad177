package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/server/app"
	"scalelab/topologies"
)

// maxSignIns bounds the distinct clients that sign in before a run; more
// workers share their tokens (each sign-in is an argon2id verification of
// about 40 ms of CPU on this kind of machine).
const maxSignIns = 64

// Session is a topology that is up, with the scenario's driver ready to put
// load on it. Up starts one; Down must end it.
type Session struct {
	cfg    Config
	sc     *scenarios.Scenario
	top    *topologies.Topology
	drv    *driver
	ops    []loadgen.Op
	faults []scheduledFault
	// linkFaults are the scenario's network faults (netfault.go).
	linkFaults []linkFault
	out        io.Writer
	log        *slog.Logger
	// downS is how long Down took, once it ran.
	downS float64
}

// Measured is what one measured run saw: the load generator's result, the
// topology's measurements (nil when sampling failed) and what became of
// each scenario fault, timed from the load's start.
type Measured struct {
	Load     *loadgen.Result
	Topology *topologies.Measurements
	Faults   []reports.Fault
	// LinkFaults say what happened to each network fault on a link, as
	// lines for the report's notes.
	LinkFaults []string
	// Consistency is the check of the clients' histories, when the
	// scenario asks for one (scenarios.Scenario.ChecksConsistency).
	Consistency *reports.Consistency
}

// Up brings c.Definition's topology up and prepares the scenario's driver.
// A fault naming a component the phase lacks, or an operation the driver
// does not know, fails now (ErrInvalid), not after seeding and warming up;
// the topology is then already down again.
func Up(ctx context.Context, c Config) (*Session, error) {
	if c.Definition == nil || c.Scenario == nil || c.Binary == "" {
		return nil, errors.New("lab: Config needs Definition, Scenario and Binary")
	}
	s := &Session{cfg: c, sc: c.Scenario, out: c.Stdout, log: c.Logger}
	if s.out == nil {
		s.out = io.Discard
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	def := c.Definition
	fmt.Fprintf(s.out, "phase %d: %s\n", def.Phase, def.Description)
	top, err := topologies.Up(ctx, def, topologies.Options{
		Binary: c.Binary, Dir: c.TopologyDir, Logger: s.log,
		FastPostgres: c.FastPostgres, DieWithParent: c.DieWithParent,
		Runtime: c.Runtime, DockerHost: c.DockerHost,
	})
	if err != nil {
		return nil, fmt.Errorf("bring phase %d up: %w", def.Phase, err)
	}
	s.top = top
	fmt.Fprintf(s.out, "topology up in %.1fs: entry %s (folder %s)\n", top.UpSeconds, top.EntryURL, top.Dir)
	if err := s.prepare(); err != nil {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return nil, errors.Join(err, s.Down(dctx))
	}
	return s, nil
}

// prepare resolves the scenario's faults and operations against the
// running topology.
func (s *Session) prepare() error {
	compFaults, netFaults := splitFaults(s.sc.Faults)
	faults, err := checkFaults(s.top.Component, compFaults)
	if err != nil {
		return invalid{err}
	}
	s.faults = faults
	if s.linkFaults, err = checkLinkFaults(s.top, netFaults); err != nil {
		return invalid{err}
	}
	api := s.top.API
	if !strings.HasSuffix(api, "/users") {
		api = strings.TrimSuffix(api, "/") + "/users"
	}
	runTag := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffffff)
	s.drv = newDriver(s.sc, api, s.sc.Users, runTag)
	if s.ops, err = s.drv.ops(s.sc); err != nil {
		return invalid{err}
	}
	return nil
}

// Down stops every component of the topology.
func (s *Session) Down(ctx context.Context) error {
	start := time.Now()
	err := s.top.Down(ctx)
	s.downS = time.Since(start).Seconds()
	fmt.Fprintf(s.out, "topology down in %.1fs\n", s.downS)
	if err != nil {
		return fmt.Errorf("tear phase %d down: %w", s.cfg.Definition.Phase, err)
	}
	return nil
}

// Seed bulk-loads the scenario's users into the database the topology
// names (topologies.Topology.DatabaseURL).
func (s *Session) Seed(ctx context.Context) error {
	dsn := s.top.DatabaseURL
	if dsn == "" {
		return fmt.Errorf("seed: phase %d names no database for its apps", s.top.Phase)
	}
	store, err := app.OpenStore(ctx, app.StoreOptions{DSN: dsn, Logger: s.log})
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer store.Close()
	d, err := SeedUsers(ctx, store, s.sc.Users, s.out, s.log)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "seeded %d users in %.1fs\n", s.sc.Users, d.Seconds())
	start := time.Now()
	primary := dsn
	if s.top.PrimaryURL != "" {
		primary = s.top.PrimaryURL
	}
	if err := settleDatabase(ctx, primary, s.top.ReplicaURLs); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	fmt.Fprintf(s.out, "database settled (vacuum, analyze, checkpoint, replicas caught up) in %.1fs\n", time.Since(start).Seconds())
	return nil
}

// WarmUp signs the simulated clients in when the mix needs tokens, then
// runs the scenario's warm-up (if any) at its starting load.
func (s *Session) WarmUp(ctx context.Context) error {
	if s.drv.auth && len(s.drv.tokens) == 0 {
		start := time.Now()
		if err := s.drv.signIn(ctx, s.top.EntryURL, min(s.sc.MaxWorkers, maxSignIns)); err != nil {
			return err
		}
		fmt.Fprintf(s.out, "signed in %d simulated clients in %.1fs\n", len(s.drv.tokens), time.Since(start).Seconds())
	}
	if s.sc.Warmup <= 0 {
		return nil
	}
	fmt.Fprintf(s.out, "warming up for %s\n", s.sc.Warmup)
	cfg := s.loadConfig(s.cfg.Seed+1, warmupExecutor(s.sc))
	cfg.GracefulStop = time.Second
	if _, err := loadgen.Run(ctx, cfg); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	return nil
}

// Measure runs the scenario's executor once, with its faults, while
// sampling the topology.
func (s *Session) Measure(ctx context.Context) (*Measured, error) {
	fmt.Fprintf(s.out, "running %s for %s: %s\n", s.sc.Name, s.sc.Duration, s.sc.Executor)
	if !s.sc.ChecksConsistency() {
		return s.measure(ctx, mainExecutor(s.sc), s.faults, s.linkFaults)
	}
	h := newHistory()
	h.perClient = s.drv.sendsHints()
	s.drv.hist = h
	m, err := s.measure(ctx, mainExecutor(s.sc), s.faults, s.linkFaults)
	s.drv.hist = nil
	if err != nil {
		return nil, err
	}
	if m.Consistency, err = s.checkConsistency(ctx, h, m.Load.Start); err != nil {
		return nil, err
	}
	return m, nil
}

// checkConsistency reads every user the run wrote once more, then checks
// the run's history (consistency.go).
func (s *Session) checkConsistency(ctx context.Context, h *history, start time.Time) (*reports.Consistency, error) {
	begin := time.Now()
	finals, err := s.drv.readFinal(ctx, s.top.EntryURL, h)
	if err != nil {
		return nil, fmt.Errorf("check consistency: %w", err)
	}
	c := checkConsistency(h, finals, start)
	fmt.Fprintf(s.out, "consistency: %d writes, %d reads, %d final reads in %.1fs: %d lost, %d read-your-writes and %d monotonic violations; anonymous staleness p99 %.1f ms\n",
		c.Writes, c.OwnReads+c.AnonymousReads, c.FinalReads, time.Since(begin).Seconds(), c.LostWrites, c.ReadYourWrites, c.Monotonic, c.Staleness.P99)
	return c, nil
}

// MeasureRate runs the scenario's mix at a constant arrival rate for d,
// without its faults, while sampling the topology: one step of a search
// over rates on a topology that stays up.
func (s *Session) MeasureRate(ctx context.Context, rate float64, d time.Duration) (*Measured, error) {
	return s.measureRate(ctx, rate, d, pool(s.sc))
}

// measureRate is MeasureRate with the load generator's pool p.
func (s *Session) measureRate(ctx context.Context, rate float64, d time.Duration, p loadgen.Pool) (*Measured, error) {
	if !(rate > 0) || d <= 0 {
		return nil, invalidf("measure at %v/s for %s: rate and duration must be positive", rate, d)
	}
	fmt.Fprintf(s.out, "running %s for %s at %g/s\n", s.sc.Name, d, rate)
	return s.measure(ctx, loadgen.ConstantArrivalRate{Rate: rate, Duration: d, Pool: p}, nil, nil)
}

func (s *Session) measure(ctx context.Context, ex loadgen.Executor, faults []scheduledFault, linkFaults []linkFault) (*Measured, error) {
	sampler, err := topologies.StartSampler(ctx, s.top, topologies.SamplerOptions{Logger: s.log, IdleTraffic: time.Second})
	if err != nil {
		return nil, fmt.Errorf("start sampling the topology: %w", err)
	}
	progress := loadgen.NewProgress(s.out)
	cfg := s.loadConfig(s.cfg.Seed, ex)
	cfg.Observer = progress
	faultCtx, stopFaults := context.WithCancel(ctx)
	type linkOutcome struct {
		lines    []string
		injected []injectedLink
	}
	faultLog, linkLog := make(chan []injectedFault, 1), make(chan linkOutcome, 1)
	faultStart := time.Now()
	go func() { faultLog <- injectFaults(faultCtx, s.top.Inject, faults, faultStart, s.out) }()
	go func() {
		lines, injected := injectLinkFaults(faultCtx, s.top, linkFaults, faultStart, s.out)
		linkLog <- linkOutcome{lines, injected}
	}()
	stopProfiles := s.startProfiles(ctx, runLength(ex, s.sc.Duration))
	lres, runErr := loadgen.Run(ctx, cfg)
	if err := stopProfiles(); err != nil {
		s.log.Warn("profiling the run failed", "err", err)
	}
	stopFaults()
	injected, links := <-faultLog, <-linkLog
	progress.Stop()
	meas, serr := sampler.Stop(context.Background())
	if runErr != nil {
		return nil, fmt.Errorf("run %s: %w", s.sc.Name, runErr)
	}
	if serr != nil {
		s.log.Warn("sampling the topology failed; the report has no topology measurements", "err", serr)
		meas = nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run %s: interrupted: %w", s.sc.Name, err)
	}
	faultsRun := append(reportFaults(injected, lres.Start), reportLinkFaults(links.injected, lres.Start)...)
	slices.SortStableFunc(faultsRun, func(a, b reports.Fault) int { return cmp.Compare(a.AtS, b.AtS) })
	return &Measured{Load: lres, Topology: meas, Faults: faultsRun, LinkFaults: links.lines}, nil
}

// Result maps a measured run into the result.json schema, thresholds
// judged.
func (s *Session) Result(ctx context.Context, m *Measured) reports.Result {
	res := buildResult(resultInput{
		phase: s.cfg.Definition.Phase, topology: s.cfg.Definition.Description, scenario: s.sc,
		argv: s.cfg.Argv, machine: reports.DetectMachine(ctx), load: m.Load, measurements: m.Topology,
		consistency: m.Consistency,
	})
	res.Faults = m.Faults
	res.Notes = append(res.Notes, m.LinkFaults...)
	res.Network = networkResult(s.top.Network, s.top.Links, s.cfg.Definition.ReadPath(s.top.Links), m.Topology, &res)
	res.Runtime = cmp.Or(s.top.Runtime, string(topologies.RuntimeProcess))
	res.UpS, res.DownS = s.top.UpSeconds, s.downS
	return res
}

// loadConfig is the load generator's configuration for one run.
func (s *Session) loadConfig(seed uint64, ex loadgen.Executor) loadgen.Config {
	return loadgen.Config{
		Target:   s.top.EntryURL,
		Ops:      s.ops,
		Executor: ex,
		Seed:     seed,
		Timeout:  10 * time.Second,
		Setup:    s.drv.setup,
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
		for i, st := range sc.Executor.Stages {
			stages[i] = loadgen.Stage{Target: st.Target, Duration: st.Duration}
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

// Use switches the session to scenario sc on the same topology, so that
// several scenarios can share one bring-up (as the fault scenarios' test
// does). The simulated clients keep their tokens when sc seeds no fewer
// users; Seed is not run again, so sc must need no more users than were
// seeded.
func (s *Session) Use(sc *scenarios.Scenario) error {
	old := s.drv
	s.sc = sc
	if err := s.prepare(); err != nil {
		return err
	}
	if old != nil && len(old.tokens) > 0 && sc.Users >= old.users {
		s.drv.tokens = old.tokens
	}
	return nil
}
