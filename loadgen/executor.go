package loadgen

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"golang.org/x/sync/errgroup"
)

// Defaults of the executors and of Config.
const (
	// DefaultMaxWorkers bounds the workers (and so connections) of an
	// open-model executor.
	DefaultMaxWorkers = 500
	// DefaultPreAllocated is how many workers an open-model executor
	// starts (and sets up) before the clock starts.
	DefaultPreAllocated = 20
	// DefaultMaxDelay is how late an arrival may start before it is
	// dropped instead. It is well above the scheduling hiccups of a busy
	// 2-core machine (a few ms) and well below any interesting latency.
	DefaultMaxDelay = 50 * time.Millisecond
	// DefaultGracefulStop is how long a run waits, after its duration, for
	// operations in flight before it cuts them off.
	DefaultGracefulStop = 5 * time.Second
)

// Config describes a run. Target, Ops and Executor are required.
type Config struct {
	// Target is the base URL of the system under test, e.g.
	// "http://127.0.0.1:8080". Request paths are appended to it.
	Target string
	// Ops is the operation mix.
	Ops []Op
	// Executor decides when operations start.
	Executor Executor
	// Seed seeds every random choice of the run (the mix and each
	// session's Rand), so that two runs with one seed make the same
	// choices. In an open-model run the sequence of operations is fixed by
	// the seed alone; which worker runs which is not.
	Seed uint64
	// Timeout bounds each request; 0 means DefaultTimeout.
	Timeout time.Duration
	// GracefulStop is how long operations in flight at the end may take
	// before they are cut off (and not recorded); 0 means
	// DefaultGracefulStop and a negative value cuts them off at once.
	GracefulStop time.Duration
	// Setup, if set, prepares each worker's session before it runs
	// operations: it may sign in and call c.SetHeader with a token, or set
	// s.Value. Requests it makes are not recorded. A failed Setup of a
	// worker started before the run fails the run; one of a worker added
	// during the run is counted under ClassSetup and the worker is not
	// used.
	Setup func(ctx context.Context, c *Client, s *Session) error
	// Observer, if set, is called once a second with the run's progress
	// (see Progress), from the goroutine that collects it.
	Observer Observer
	// Shard makes this run one of several generators that split one run
	// (see Shard); the zero value is the whole run.
	Shard Shard
}

// Executor decides when operations start. ConstantArrivalRate,
// RampingArrivalRate and ArrivalRate are open models: operations arrive on a
// schedule, whatever the server's latency. ConstantVUs is a closed model: a
// fixed number of virtual users each start an operation when their previous
// one ends, so a slower server gets fewer requests.
type Executor interface {
	// Name is the executor's name, as k6 spells it.
	Name() string
	execute(ctx context.Context, r *run) error
}

// ConstantArrivalRate starts Rate operations a second, evenly spaced, for
// Duration (k6's constant-arrival-rate).
type ConstantArrivalRate struct {
	Rate     float64       // operations per second
	Duration time.Duration // how long to start operations
	Pool                   // workers
}

// Name returns "constant-arrival-rate".
func (ConstantArrivalRate) Name() string { return "constant-arrival-rate" }

func (e ConstantArrivalRate) execute(ctx context.Context, r *run) error {
	if e.Rate <= 0 || e.Duration <= 0 {
		return fmt.Errorf("%s: rate %v and duration %v must be positive", e.Name(), e.Rate, e.Duration)
	}
	return r.open(ctx, ConstantRate(e.Rate), e.Duration, e.Pool)
}

// RampingArrivalRate starts operations at a rate that moves linearly from
// StartRate through the targets of Stages (k6's ramping-arrival-rate; see
// Ramp). It lasts as long as its stages.
type RampingArrivalRate struct {
	StartRate float64 // operations per second at the start
	Stages    []Stage
	Pool      // workers
}

// Name returns "ramping-arrival-rate".
func (RampingArrivalRate) Name() string { return "ramping-arrival-rate" }

func (e RampingArrivalRate) execute(ctx context.Context, r *run) error {
	ramp, err := NewRamp(e.StartRate, e.Stages...)
	if err != nil {
		return fmt.Errorf("%s: %w", e.Name(), err)
	}
	return r.open(ctx, ramp, ramp.Duration(), e.Pool)
}

// ArrivalRate starts operations when Pacer says they are due, for at most
// Duration (0: until the pacer ends). It is the open-model executor for a
// pacer of one's own.
type ArrivalRate struct {
	Pacer    Pacer
	Duration time.Duration
	Pool
}

// Name returns "arrival-rate".
func (ArrivalRate) Name() string { return "arrival-rate" }

func (e ArrivalRate) execute(ctx context.Context, r *run) error {
	if e.Pacer == nil {
		return fmt.Errorf("%s: no pacer", e.Name())
	}
	d := e.Duration
	if d <= 0 {
		d = 1<<63 - 1
	}
	return r.open(ctx, e.Pacer, d, e.Pool)
}

// Pool sizes the workers of an open-model executor. Each worker runs one
// operation at a time on its own connection. PreAllocated workers are
// started and set up before the clock starts; when an arrival finds no idle
// worker, another is started, up to MaxWorkers. An arrival that cannot start
// within MaxDelay of its due time is dropped and counted in
// Result.Dropped: the rate the server saw is then lower than offered, and
// the result says so rather than quietly delaying the load.
type Pool struct {
	PreAllocated int           // 0 means min(DefaultPreAllocated, MaxWorkers)
	MaxWorkers   int           // 0 means DefaultMaxWorkers
	MaxDelay     time.Duration // 0 means DefaultMaxDelay
}

// Limit is the most workers p lets run at once: MaxWorkers, or its
// default.
func (p Pool) Limit() int {
	if p.MaxWorkers == 0 {
		return max(DefaultMaxWorkers, p.PreAllocated)
	}
	return p.MaxWorkers
}

func (p Pool) withDefaults() (Pool, error) {
	if p.PreAllocated < 0 || p.MaxWorkers < 0 || p.MaxDelay < 0 {
		return p, fmt.Errorf("pool %+v: negative size or delay", p)
	}
	p.MaxWorkers = p.Limit()
	if p.PreAllocated == 0 {
		p.PreAllocated = min(DefaultPreAllocated, p.MaxWorkers)
	}
	if p.PreAllocated > p.MaxWorkers {
		return p, fmt.Errorf("pool: %d pre-allocated workers exceed the maximum of %d", p.PreAllocated, p.MaxWorkers)
	}
	if p.MaxDelay == 0 {
		p.MaxDelay = DefaultMaxDelay
	}
	return p, nil
}

// ConstantVUs runs VUs virtual users for Duration, each starting an
// operation as soon as its previous one (and its think time) ended, like
// k6's constant-vus. Latency is measured from each operation's actual start:
// a closed model has no schedule to fall behind.
type ConstantVUs struct {
	VUs      int
	Duration time.Duration
	// Think is the pause between a user's operations, drawn uniformly
	// from [Think-ThinkJitter, Think+ThinkJitter].
	Think, ThinkJitter time.Duration
}

// Name returns "constant-vus".
func (ConstantVUs) Name() string { return "constant-vus" }

func (e ConstantVUs) execute(ctx context.Context, r *run) error {
	if e.VUs <= 0 || e.Duration <= 0 {
		return fmt.Errorf("%s: vus %d and duration %v must be positive", e.Name(), e.VUs, e.Duration)
	}
	if e.Think < 0 || e.ThinkJitter < 0 || e.ThinkJitter > e.Think {
		return fmt.Errorf("%s: think %v ± %v: want 0 <= jitter <= think", e.Name(), e.Think, e.ThinkJitter)
	}
	return r.closed(ctx, e)
}

// Run runs the operations of cfg against cfg.Target as cfg.Executor
// schedules them, and returns what it measured. When ctx is cancelled the
// run stops promptly, cuts off operations in flight, and returns what it
// measured so far together with ctx's error.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Executor == nil {
		return nil, errors.New("loadgen: no executor")
	}
	t, err := parseTarget(cfg.Target)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	m, err := newMix(cfg.Ops)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	if cfg.GracefulStop == 0 {
		cfg.GracefulStop = DefaultGracefulStop
	}
	if err := cfg.Shard.Validate(); err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	r := &run{cfg: cfg, t: t, mix: m, opDropped: make([]atomic.Int64, len(cfg.Ops))}
	n := min(4*runtime.GOMAXPROCS(0), 64)
	for range n {
		r.shards = append(r.shards, newShard(len(cfg.Ops)))
	}
	err = cfg.Executor.execute(ctx, r)
	if r.start.IsZero() {
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	return r.result(), err
}

// run is the state of one Run.
type run struct {
	cfg    Config
	t      *target
	mix    *mix
	shards []*shard

	mu      sync.Mutex // guards workers
	workers []*worker

	start, activeEnd, end time.Time
	offered, dropped      atomic.Int64
	late                  atomic.Int64   // arrivals the pacer handed over late (Result.Late)
	opDropped             []atomic.Int64 // by operation index
	openModel             bool

	// Owned by the collector goroutine between begin and finish.
	stopTick, tickDone chan struct{}
	series             []Point
	opSeries           [][]Point // by operation index
	spare              []*second
	secHist            *hdrhistogram.Histogram
	lastTick           time.Time
	lastOffered        int64
	lastDropped        int64
	lastOpDropped      []int64 // by operation index
	sum                Snapshot
}

// drop counts an arrival of operation op that could not start in time.
func (r *run) drop(op int) {
	r.dropped.Add(1)
	r.opDropped[op].Add(1)
}

func (r *run) newWorker() *worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := len(r.workers)
	id := r.cfg.Shard.Worker(k)
	w := &worker{
		r:         r,
		sh:        r.shards[k%len(r.shards)],
		client:    newClient(r.t, r.cfg.Timeout),
		session:   &Session{ID: id, Rand: newRand(r.cfg.Seed, id+1)},
		recording: true,
	}
	w.client.w = w
	r.workers = append(r.workers, w)
	return w
}

func (r *run) setup(ctx context.Context, w *worker) error {
	if r.cfg.Setup == nil {
		return nil
	}
	w.op, w.recording = -1, false
	defer func() { w.recording = true }()
	if err := r.cfg.Setup(ctx, w.client, w.session); err != nil {
		return fmt.Errorf("setup of worker %d: %w", w.session.ID, err)
	}
	return nil
}

// startWorkers makes n workers and sets them up, concurrently.
func (r *run) startWorkers(ctx context.Context, n int) ([]*worker, error) {
	ws := make([]*worker, n)
	for i := range ws {
		ws[i] = r.newWorker()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(64)
	for _, w := range ws {
		g.Go(func() error { return r.setup(gctx, w) })
	}
	if err := g.Wait(); err != nil {
		r.closeClients()
		return nil, err
	}
	return ws, nil
}

func (r *run) closeClients() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range r.workers {
		w.client.Close()
	}
}

func (r *run) workerCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.workers)
}

// arrival is one operation due to start.
type arrival struct {
	due time.Time
	op  int
}

// open runs an open model: one goroutine (this one) sleeps until each
// arrival is due and hands it to the pool through a buffered channel.
func (r *run) open(ctx context.Context, p Pacer, d time.Duration, pool Pool) error {
	pool, err := pool.withDefaults()
	if err != nil {
		return err
	}
	r.openModel = true
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(wctx, r.closeClients)()

	arrivals := make(chan arrival, pool.MaxWorkers)
	var (
		wg   sync.WaitGroup
		idle atomic.Int64 // workers waiting for an arrival
		live atomic.Int64 // workers started and not failed
	)
	loop := func(w *worker) {
		defer w.client.Close()
		for a := range arrivals {
			idle.Add(-1)
			switch {
			case wctx.Err() != nil:
			case time.Since(a.due) > pool.MaxDelay:
				r.drop(a.op)
			default:
				w.runOp(wctx, a.op, a.due)
			}
			idle.Add(1)
		}
	}
	ws, err := r.startWorkers(wctx, pool.PreAllocated)
	if err != nil {
		return err
	}
	for _, w := range ws {
		idle.Add(1)
		live.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			loop(w)
		}()
	}
	spawn := func() {
		live.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := r.newWorker()
			if err := r.setup(wctx, w); err != nil {
				live.Add(-1)
				w.sh.recordClass(ClassSetup)
				w.client.Close()
				return
			}
			idle.Add(1)
			loop(w)
		}()
	}

	rng := newRand(r.cfg.Seed, 0)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	r.begin()
	for n := int64(0); ; n++ {
		at, ok := p.Due(n)
		if !ok || at >= d {
			break
		}
		// Every generator of a split run draws every arrival's operation,
		// so that the shards' arrivals together are the whole run's.
		op := r.mix.pick(rng)
		if !r.cfg.Shard.Owns(n) {
			continue
		}
		due := r.start.Add(at)
		if !sleepUntil(ctx, timer, due) {
			break
		}
		r.offered.Add(1)
		if time.Since(due) > pool.MaxDelay {
			r.late.Add(1)
		}
		select {
		case arrivals <- arrival{due: due, op: op}:
		default:
			r.drop(op) // the queue holds MaxWorkers arrivals: all late
		}
		if int64(len(arrivals)) > idle.Load() && live.Load() < int64(pool.MaxWorkers) {
			spawn()
		}
		// Let the worker just woken run on this P before the pacer's
		// sleep, a system call, holds it until sysmon hands it over.
		runtime.Gosched()
	}
	r.activeEnd = r.start.Add(min(time.Since(r.start), d))
	close(arrivals)
	r.drain(ctx, cancel, &wg)
	r.finish()
	return ctx.Err()
}

// sleepUntil sleeps until due and reports whether ctx is still live.
// Sleeps longer than a few milliseconds use a timer (and can be cancelled);
// the last stretch uses fineSleep, for precision.
func sleepUntil(ctx context.Context, t *time.Timer, due time.Time) bool {
	const coarse = 2 * time.Millisecond
	d := time.Until(due)
	if d > coarse {
		t.Reset(d - coarse/2)
		select {
		case <-t.C:
		case <-ctx.Done():
			return false
		}
		d = time.Until(due)
	}
	if d > 0 {
		fineSleep(d)
	}
	select {
	case <-ctx.Done():
		return false
	default:
		return true
	}
}

// closed runs a closed model.
func (r *run) closed(ctx context.Context, e ConstantVUs) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(wctx, r.closeClients)()

	vus := r.cfg.Shard.Share(e.VUs)
	if vus == 0 {
		return fmt.Errorf("%s: shard %s of %d virtual users has none", e.Name(), r.cfg.Shard, e.VUs)
	}
	ws, err := r.startWorkers(wctx, vus)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	r.begin()
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.client.Close()
			pick := newRand(r.cfg.Seed, 1<<32+w.session.ID)
			var think *time.Timer
			if e.Think > 0 {
				think = time.NewTimer(time.Hour)
				defer think.Stop()
			}
			for {
				select {
				case <-stop:
					return
				case <-wctx.Done():
					return
				default:
				}
				w.runOp(wctx, r.mix.pick(pick), time.Time{})
				if think != nil {
					think.Reset(thinkTime(pick, e.Think, e.ThinkJitter))
					select {
					case <-think.C:
					case <-stop:
						return
					case <-wctx.Done():
						return
					}
				}
			}
		}()
	}
	timer := time.NewTimer(e.Duration)
	select {
	case <-timer.C:
	case <-ctx.Done():
		timer.Stop()
	}
	r.activeEnd = r.start.Add(min(time.Since(r.start), e.Duration))
	close(stop)
	r.drain(ctx, cancel, &wg)
	r.finish()
	return ctx.Err()
}

func thinkTime(rng *rand.Rand, think, jitter time.Duration) time.Duration {
	if jitter <= 0 {
		return think
	}
	return think - jitter + time.Duration(rng.Int64N(int64(2*jitter)+1))
}

// drain waits for the workers, cutting operations in flight off after the
// graceful stop or when ctx is done.
func (r *run) drain(ctx context.Context, cancel context.CancelFunc, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	if r.cfg.GracefulStop > 0 {
		t := time.NewTimer(r.cfg.GracefulStop)
		defer t.Stop()
		select {
		case <-done:
			return
		case <-t.C:
		case <-ctx.Done():
		}
	}
	cancel() // closes every client, failing requests in flight at once
	<-done
}

// begin starts the clock and the collector.
func (r *run) begin() {
	nops := len(r.mix.ops)
	r.spare = make([]*second, len(r.shards))
	for i := range r.spare {
		r.spare[i] = newSecond(nops)
	}
	r.secHist = NewHistogram()
	r.opSeries = make([][]Point, nops)
	r.lastOpDropped = make([]int64, nops)
	r.stopTick, r.tickDone = make(chan struct{}), make(chan struct{})
	r.start = time.Now()
	r.lastTick = r.start
	go r.collect()
}

func (r *run) collect() {
	defer close(r.tickDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			r.tick(now)
		case <-r.stopTick:
			return
		}
	}
}

// finish stops the collector and closes the series with the last, partial
// second.
func (r *run) finish() {
	close(r.stopTick)
	<-r.tickDone
	r.end = time.Now()
	if r.activeEnd.IsZero() {
		r.activeEnd = r.end
	}
	r.tick(r.end)
}

// tick closes one second of the series.
func (r *run) tick(now time.Time) {
	p := Point{Second: len(r.series), Interval: now.Sub(r.lastTick)}
	r.lastTick = now
	h := r.secHist
	h.Reset()
	// The swapped-out seconds become the spares once read.
	for i, sh := range r.shards {
		s := sh.swap(r.spare[i])
		p.Ops += s.ops
		p.Requests += s.requests
		p.Errors += s.errors
		p.Throttled += s.throttled
		h.Merge(s.hist)
		r.spare[i] = s
	}
	off, drop := r.offered.Load(), r.dropped.Load()
	p.Offered, p.Dropped = off-r.lastOffered, drop-r.lastDropped
	r.lastOffered, r.lastDropped = off, drop
	p.setLatency(h)
	r.series = append(r.series, p)

	// Every operation gets a point every second, even an empty one, so
	// that its series lines up with the total's.
	for op := range r.opSeries {
		q := Point{Second: p.Second, Interval: p.Interval}
		h.Reset()
		for _, s := range r.spare {
			t := &s.byOp[op]
			q.Ops += t.count
			q.Errors += t.errors
			q.Throttled += t.throttled
			h.Merge(t.hist)
		}
		drop := r.opDropped[op].Load()
		q.Dropped = drop - r.lastOpDropped[op]
		r.lastOpDropped[op] = drop
		q.setLatency(h)
		r.opSeries[op] = append(r.opSeries[op], q)
	}
	for _, s := range r.spare {
		s.reset()
	}

	s := &r.sum
	s.Elapsed = now.Sub(r.start)
	s.Last = p
	s.Open = r.openModel
	s.Offered += p.Offered
	s.Dropped += p.Dropped
	s.Ops += p.Ops
	s.Requests += p.Requests
	s.Errors += p.Errors
	s.Throttled += p.Throttled
	s.Workers = r.workerCount()
	if r.cfg.Observer != nil {
		r.cfg.Observer.Observe(*s)
	}
}

// result gathers the shards into a Result; the workers have all stopped.
func (r *run) result() *Result {
	res := &Result{
		Executor:      r.cfg.Executor.Name(),
		Start:         r.start,
		Duration:      r.activeEnd.Sub(r.start),
		End:           r.end,
		Seed:          r.cfg.Seed,
		Offered:       r.offered.Load(),
		Dropped:       r.dropped.Load(),
		Late:          r.late.Load(),
		Workers:       r.workerCount(),
		ErrorsByClass: map[string]int64{},
		Counters:      map[string]int64{},
		Series:        r.series,
		Total:         Stats{Name: "total", Latency: NewHistogram()},
	}
	if r.openModel {
		res.StartDelay = NewHistogram()
	}
	for i, op := range r.mix.ops {
		st := Stats{Name: op.Name, Latency: NewHistogram(), Dropped: r.opDropped[i].Load(), Series: r.opSeries[i]}
		for _, sh := range r.shards {
			sh.mu.Lock()
			t := sh.ops[i].stats(op.Name)
			st.merge(&t)
			sh.mu.Unlock()
		}
		res.Operations = append(res.Operations, st)
	}
	byName := map[string]*Stats{}
	for _, sh := range r.shards {
		sh.mu.Lock()
		for name, t := range sh.requests {
			st := byName[name]
			if st == nil {
				st = &Stats{Name: name, Latency: NewHistogram()}
				byName[name] = st
			}
			ts := t.stats(name)
			st.merge(&ts)
		}
		for class, n := range sh.classes {
			res.ErrorsByClass[class] += n
		}
		if res.StartDelay != nil {
			res.StartDelay.Merge(sh.startDelay)
		}
		sh.mu.Unlock()
	}
	for _, st := range byName {
		res.Requests = append(res.Requests, *st)
		res.Total.merge(st)
	}
	slices.SortFunc(res.Requests, func(a, b Stats) int { return cmp.Compare(a.Name, b.Name) })
	r.mu.Lock()
	for _, w := range r.workers {
		for name, c := range w.session.counters {
			res.Counters[name] += c.Load()
		}
	}
	r.mu.Unlock()
	return res
}
