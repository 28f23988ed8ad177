package topologies

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"scalelab/internal/stats"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Measurements is what a Sampler gathered over a run, as plain data for
// result.json.
type Measurements struct {
	Start time.Time
	End   time.Time
	// Replicas has one entry per streaming replica, replica-1 first.
	Replicas []ReplicaLag
	// Cache counts lookups per tier over the run.
	Cache CacheStats
	// Backends counts the HTTP responses HAProxy got from each app
	// instance over the run; empty without HAProxy.
	Backends []BackendRequests
	// CPU is the CPU time (user + system, the component's whole process
	// group, exited children included) each component used over the run.
	CPU []ComponentCPU
	// Problems lists what could not be measured and why; the rest of the
	// measurements are still valid.
	Problems []string
	// CacheSeries counts each tier's lookups per sampling interval.
	CacheSeries []CacheInterval
	// Queue is the job queue over the run; nil without workers.
	Queue *QueueStats
	// Breakers are the circuit breakers' changes of state over the run;
	// nil without Prometheus, empty when none changed.
	Breakers []BreakerTransitions
	// Links counts what crossed each proxied link over the run; nil
	// under the network profile none.
	Links []LinkTraffic
	// IdleLinks counts what crossed each link in IdleSeconds with no
	// load, just after the run (SamplerOptions.IdleTraffic): health
	// checks and probes, which cross the links whatever the load.
	IdleLinks   []LinkTraffic
	IdleSeconds float64
	// Pools are the app instances' database connection pools over the
	// run; empty when the instances export none (or they could not be
	// read: see Problems).
	Pools []DBPool
}

// ReplicaLag summarizes one replica's lag over the run, from the samples
// taken on the primary each interval.
type ReplicaLag struct {
	Name string // replica-1, …
	// Samples is how many samples were taken; Disconnected how many of
	// them found the replica not streaming (killed, restarting).
	Samples      int
	Disconnected int
	// LagS is how far behind the replica was, in seconds: Postgres'
	// replay_lag, or, when larger, how long ago the primary had already
	// written past what the replica has replayed (replay_lag stands still
	// while a replica is paused or cut off; this does not).
	LagSP50 float64
	LagSMax float64
	// Bytes is how much WAL the replica had still to replay
	// (pg_wal_lsn_diff of the primary's current LSN and replay_lsn).
	BytesP50 float64
	BytesMax float64
	// VisibleMS is the write-to-visible delay clients of this replica
	// saw, in milliseconds: from the primary acknowledging a probe write
	// until a read on the replica returned it (see
	// SamplerOptions.ProbeInterval). VisibleProbes is how many probes were
	// timed, VisibleTimeouts how many of them the replica had not shown
	// within ProbeTimeout; those count at ProbeTimeout in the percentiles,
	// so a Max equal to the timeout means "at least". All zero when the
	// probe did not run.
	VisibleMSP50    float64
	VisibleMSP99    float64
	VisibleMSMax    float64
	VisibleProbes   int
	VisibleTimeouts int
	// Lag has every lag sample, in time order; Visible the write-to-visible
	// delay per second of the run (see series.go).
	Lag     []LagPoint
	Visible []VisibleSecond
}

// CacheStats holds one entry per cache tier; nil means the topology has no
// such tier (or its instances export no counters for it).
type CacheStats struct {
	L1 *CacheTier // in-process, from the apps' scalelab_cache_*_total{tier="l1"}
	L2 *CacheTier // Redis, tier="l2"
	L3 *CacheTier // Varnish: MAIN.cache_hit and MAIN.cache_miss
}

// CacheTier counts hits and misses of one tier.
type CacheTier struct {
	Hits   uint64
	Misses uint64
}

// HitRate is Hits/(Hits+Misses); ok is false when there were no lookups.
func (c *CacheTier) HitRate() (rate float64, ok bool) {
	if c == nil || c.Hits+c.Misses == 0 {
		return 0, false
	}
	return float64(c.Hits) / float64(c.Hits+c.Misses), true
}

// BackendRequests is one HAProxy backend server's share of the requests.
type BackendRequests struct {
	Server   string // app-1, …
	Requests uint64
}

// ComponentCPU is the CPU time one component used.
type ComponentCPU struct {
	Name    string
	Kind    string
	Seconds float64
}

// SamplerOptions configures a Sampler.
type SamplerOptions struct {
	// Interval between samples; default 1s.
	Interval time.Duration
	// ProbeInterval is how often the write-to-visible probe writes to the
	// primary when the topology has replicas; default 100ms, negative
	// turns the probe off. Each replica is then read, on a connection of
	// its own, until it shows the write.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a replica may take to show a probe write
	// before it counts as not visible; default 5s.
	ProbeTimeout time.Duration
	// IdleTraffic, when positive and links are proxied, is how long Stop
	// counts what crosses the links once the load has stopped
	// (Measurements.IdleLinks), at least: it counts while it waits for
	// Prometheus' last scrape too.
	IdleTraffic time.Duration
	// Logger receives sampling problems; nil discards them.
	Logger *slog.Logger
}

// Sampler measures a running topology: each interval it samples replica
// lag on the primary and every component's CPU time; all along, a probe
// times how long a write to the primary takes to become visible on each
// replica; at Start and Stop it reads the cache and load-balancer
// counters. Start it when the measured part of a run begins, Stop it when
// that ends.
type Sampler struct {
	top      *Topology
	log      *slog.Logger
	interval time.Duration
	start    time.Time
	cancel   context.CancelFunc
	// loops are the sampling goroutines (loop and, with Postgres,
	// lagLoop); Stop cancels them and waits.
	loops    sync.WaitGroup
	probe    *visibilityProbe // nil without replicas
	primary  *pgNode          // nil without Postgres
	replicas []pgNode

	mu      sync.Mutex
	lag     map[string]*lagSeries // by replica name
	history []lsnPoint            // the primary's current LSN over time
	cpu     map[string]*cpuSeries // by component name
	// cpuBaseline is set once the first CPU sample is taken.
	cpuBaseline bool
	// proxies caches which processes are the run's docker-proxy ones.
	proxies  map[[2]uint64]bool
	base     counters
	jobsBase *jobCounters // nil without workers
	// breakersBase are the breakers' transition counters at the start;
	// nil without Prometheus.
	breakersBase map[breakerKey]float64
	// linksBase is the links' traffic at the start; nil when no link is
	// proxied or it could not be read.
	linksBase   []LinkTraffic
	idleTraffic time.Duration // SamplerOptions.IdleTraffic
	problems    []string
	snapshots   []counters // taken each interval, for CacheSeries
}

type lsnPoint struct {
	at  time.Time
	lsn float64
}

type lagSeries struct {
	samples      int
	disconnected int
	seconds      []float64
	bytes        []float64
	points       []LagPoint
	last         ReplicaSample
}

// ReplicaSample is the latest lag reading of one replica.
type ReplicaSample struct {
	Name      string
	At        time.Time
	Streaming bool
	LagS      float64
	Bytes     float64
}

// cpuSeries tracks each incarnation of a component (a restart makes a new
// process) so that restarts neither lose nor double-count CPU time.
type cpuSeries struct {
	kind string
	incs []cpuInc
}

type cpuInc struct {
	pid         int
	startTicks  uint64
	first, last float64 // seconds
}

// counters are cumulative counters read at Start and at Stop.
type counters struct {
	at       time.Time
	cache    map[string]float64 // "component/tier/hits|misses"
	cacheOK  bool               // every cache counter was read
	backends map[string]float64 // server
	varnish  map[string]uint64
	pools    poolReadings
}

// StartSampler takes the baseline readings and starts sampling in
// goroutines that Stop ends.
func StartSampler(ctx context.Context, top *Topology, opts SamplerOptions) (*Sampler, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = 100 * time.Millisecond
	}
	if opts.ProbeTimeout <= 0 {
		opts.ProbeTimeout = 5 * time.Second
	}
	s := &Sampler{
		top: top, log: opts.Logger, interval: opts.Interval, start: time.Now(),
		lag: map[string]*lagSeries{}, cpu: map[string]*cpuSeries{},
	}
	s.primary, s.replicas = top.pgNodes()
	for _, r := range s.replicas {
		s.lag[r.name] = &lagSeries{}
	}
	s.base = s.readCounters(ctx, s.problem)
	s.jobsBase = s.readJobCounters(ctx)
	s.breakersBase = s.readBreakers(ctx)
	s.linksBase, s.idleTraffic = s.readTraffic(), opts.IdleTraffic
	s.sampleCPU()
	sctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.loops.Go(func() { s.loop(sctx) })
	if s.primary != nil {
		s.loops.Go(func() { s.lagLoop(sctx) })
	}
	if s.primary != nil && len(s.replicas) > 0 && opts.ProbeInterval > 0 {
		s.probe = startVisibilityProbe(sctx, *s.primary, s.replicas, opts.ProbeInterval, opts.ProbeTimeout, s.log)
	}
	return s, nil
}

// pgNode is a Postgres server as the Sampler reaches it: its component
// name, its replication slot (replicas) and a URL of its "postgres"
// database, where the visibility probe's table lives.
type pgNode struct {
	name, slot, url string
}

// pgNodes are the topology's Postgres servers as the Sampler reaches
// them: the process runtime's handles, or what the docker runtime
// recorded (published ports).
func (t *Topology) pgNodes() (primary *pgNode, replicas []pgNode) {
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	if p := t.rt.primary; p != nil {
		primary = &pgNode{name: p.name, url: p.srv.URL("postgres")}
		for _, r := range t.rt.replicas {
			replicas = append(replicas, pgNode{name: r.name, slot: r.SlotName(), url: r.srv.URL("postgres")})
		}
		return primary, replicas
	}
	return t.rt.pgPrimary, slices.Clone(t.rt.pgReplicas)
}

// varnishCounters reads Varnish's MAIN counters: varnishstat on the
// host, or in the container under the docker runtime.
func (t *Topology) varnishCounters(ctx context.Context) (map[string]uint64, error) {
	if f := t.rt.varnishStats; f != nil {
		return f(ctx)
	}
	return varnishStats(ctx, t.VarnishWorkDir)
}

// loop samples CPU time and the cache counters each interval.
func (s *Sampler) loop(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.sampleCPU()
		s.sampleCounters(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lagTimeout bounds one replica lag sample, connecting to the primary
// included. It is not the interval: on a loaded machine a connection's
// start-up alone can take longer than a short interval, and a timeout
// that short gave up on every attempt, so that a machine slow for a whole
// run recorded no lag at all. A slow sample only delays the next one (the
// ticker drops the ticks it missed), and a paused primary costs one
// attempt, and one connection in its listen queue, per lagTimeout.
const lagTimeout = 5 * time.Second

// lagLoop samples replica lag on the primary each interval, on a
// connection of its own that it keeps between samples. It runs apart from
// loop, so that a slow or paused primary does not hold up the CPU and
// counter readings.
func (s *Sampler) lagLoop(ctx context.Context) {
	var conn *pgx.Conn
	defer func() { closeConn(conn) }()
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		err := func() error {
			sctx, cancel := context.WithTimeout(ctx, lagTimeout)
			defer cancel()
			if conn == nil {
				c, err := pgx.Connect(sctx, s.primary.url)
				if err != nil {
					return fmt.Errorf("connect to %s: %w", s.primary.name, err)
				}
				conn = c
			}
			return s.sampleLag(sctx, conn)
		}()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.log.Debug("sample replica lag", "err", err)
			// A timed-out query leaves the connection unusable; start
			// afresh next time in any case.
			closeConn(conn)
			conn = nil
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// lagQuery reads, for every physical slot (one per replica, named like
// its application_name), the replica's replay position, falling back to
// the slot's position while the replica is not connected.
const lagQuery = `
SELECT s.slot_name,
       r.state IS NOT DISTINCT FROM 'streaming',
       COALESCE(EXTRACT(EPOCH FROM r.replay_lag), 0)::float8,
       COALESCE((COALESCE(r.replay_lsn, s.restart_lsn) - '0/0'::pg_lsn)::float8, -1),
       (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8
FROM pg_replication_slots s
LEFT JOIN pg_stat_replication r ON r.application_name = s.slot_name
WHERE s.slot_type = 'physical'`

func (s *Sampler) sampleLag(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, lagQuery)
	if err != nil {
		return fmt.Errorf("lag query: %w", err)
	}
	defer rows.Close()
	type row struct {
		slot      string
		streaming bool
		replayLag float64
		replayLSN float64
		current   float64
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.slot, &r.streaming, &r.replayLag, &r.replayLSN, &r.current); err != nil {
			return fmt.Errorf("lag query: %w", err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("lag query: %w", err)
	}
	now := time.Now()
	names := map[string]string{}
	for _, r := range s.replicas {
		names[r.slot] = r.name
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(got) > 0 {
		s.history = append(s.history, lsnPoint{at: now, lsn: got[0].current})
	}
	for _, r := range got {
		series := s.lag[names[r.slot]]
		if series == nil {
			continue
		}
		bytesBehind := math.Max(r.current-r.replayLSN, 0)
		if r.replayLSN < 0 {
			bytesBehind = 0
		}
		lag := r.replayLag
		if bytesBehind > 0 {
			// The earliest sample whose LSN is past the replay position: the
			// primary was already there, so the replica is at least that old.
			for _, h := range s.history {
				if h.lsn > r.replayLSN {
					lag = math.Max(lag, now.Sub(h.at).Seconds())
					break
				}
			}
		}
		series.samples++
		if !r.streaming {
			series.disconnected++
		}
		series.seconds = append(series.seconds, lag)
		series.bytes = append(series.bytes, bytesBehind)
		series.points = append(series.points, LagPoint{At: now, LagS: lag, Streaming: r.streaming})
		series.last = ReplicaSample{Name: names[r.slot], At: now, Streaming: r.streaming, LagS: lag, Bytes: bytesBehind}
	}
	// History older than any lag worth reporting is of no use.
	for len(s.history) > 1 && now.Sub(s.history[0].at) > 10*time.Minute {
		s.history = s.history[1:]
	}
	return nil
}

// Latest returns the most recent lag reading of every replica.
func (s *Sampler) Latest() []ReplicaSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ReplicaSample
	for _, name := range slices.Sorted(maps.Keys(s.lag)) {
		if l := s.lag[name]; l.samples > 0 {
			out = append(out, l.last)
		}
	}
	return out
}

func (s *Sampler) sampleCPU() {
	comps := s.top.Components()
	stats := allProcStats()
	// A container's CPU is its cgroup's: every process in it, exec'd
	// ones too (varnishstat), not only the main process's descendants.
	var cgroup map[string]float64
	if s.top.Runtime == string(RuntimeDocker) {
		var err error
		if cgroup, err = s.top.ContainerCPU(); err != nil {
			s.log.Debug("sample container CPU", "err", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range comps {
		series := s.cpu[c.Name]
		if series == nil {
			series = &cpuSeries{kind: c.Kind}
			s.cpu[c.Name] = series
		}
		if c.PID == 0 {
			continue
		}
		secs := groupCPU(stats, c.PID)
		if v, ok := cgroup[c.Name]; ok {
			secs = v
		}
		n := len(series.incs)
		if n > 0 && series.incs[n-1].pid == c.PID && series.incs[n-1].startTicks == c.StartTicks {
			series.incs[n-1].last = secs
			continue
		}
		// A process that started during the run counts all its CPU time;
		// one that ran at the baseline counts what it used since.
		first := 0.0
		if !s.cpuBaseline {
			first = secs
		}
		series.incs = append(series.incs, cpuInc{pid: c.PID, startTicks: c.StartTicks, first: first, last: secs})
	}
	if s.top.Runtime == string(RuntimeDocker) {
		s.sampleProxyCPU(stats)
	}
	s.cpuBaseline = true
}

// sampleProxyCPU adds the CPU of the run's docker-proxy processes as one
// pseudo-component, each process an incarnation of it. Call it with mu
// held.
func (s *Sampler) sampleProxyCPU(stats []procStat) {
	if s.proxies == nil {
		s.proxies = map[[2]uint64]bool{}
	}
	series := s.cpu[dockerProxyName]
	if series == nil {
		series = &cpuSeries{kind: "docker"}
		s.cpu[dockerProxyName] = series
	}
	for _, st := range s.top.dockerProxies(stats, s.proxies) {
		secs := float64(st.utime+st.stime) / clockTicks
		i := slices.IndexFunc(series.incs, func(inc cpuInc) bool { return inc.pid == st.pid && inc.startTicks == st.startTicks })
		if i >= 0 {
			series.incs[i].last = secs
			continue
		}
		first := 0.0
		if !s.cpuBaseline {
			first = secs
		}
		series.incs = append(series.incs, cpuInc{pid: st.pid, startTicks: st.startTicks, first: first, last: secs})
	}
}

// groupCPU is the CPU seconds of pid, its process group (when it leads
// one) and its descendants (postgres backends leave the postmaster's
// group), counting each one's reaped children: postgres backends that
// exited are in the postmaster's cutime.
func groupCPU(stats []procStat, pid int) float64 {
	seen := map[int]bool{}
	var ticks uint64
	add := func(st procStat) {
		if !seen[st.pid] {
			seen[st.pid] = true
			ticks += st.utime + st.stime + st.cutime + st.cstime
		}
	}
	leader := false
	for _, st := range stats {
		if st.pid == pid {
			add(st)
			leader = st.pgrp == pid
		}
	}
	for _, st := range stats {
		if leader && st.pgrp == pid {
			add(st)
		}
	}
	for _, st := range descendants(stats, pid) {
		add(st)
	}
	return float64(ticks) / clockTicks
}

// Stop ends sampling, reads the counters once more (after Prometheus'
// next scrape) and returns the measurements.
func (s *Sampler) Stop(ctx context.Context) (*Measurements, error) {
	s.cancel()
	s.loops.Wait()
	if s.probe != nil {
		s.probe.wait()
		if p := s.probe; p.writeErrors > 0 {
			s.problem("visibility probe: %d of %d writes to the primary failed, last: %v", p.writeErrors, p.writes, p.lastWriteErr)
		}
	}
	end := time.Now()
	var links, linksEnd []LinkTraffic
	if s.linksBase != nil {
		if linksEnd = s.readTraffic(); linksEnd != nil {
			links = trafficDelta(s.linksBase, linksEnd)
		}
	}
	idle := s.idleCounter(linksEnd)
	s.sampleCPU()
	if p := s.top.Prometheus(); p != nil {
		if err := s.waitScrapeAfter(ctx, end); err != nil {
			s.problem("prometheus: %v", err)
		}
	}
	idleLinks, idleFor := idle(ctx)
	final := s.readCounters(ctx, s.problem)
	queue := s.queueStats(ctx, s.jobsBase, s.readJobCounters(ctx), end.Sub(s.start))
	breakers := breakerTransitions(s.breakersBase, s.readBreakers(ctx))

	s.mu.Lock()
	defer s.mu.Unlock()
	m := &Measurements{Start: s.start, End: end, Problems: s.problems, Queue: queue, Breakers: breakers, Links: links}
	if idleLinks != nil {
		m.IdleLinks, m.IdleSeconds = idleLinks, idleFor.Seconds()
	}
	for _, r := range s.replicas {
		l := s.lag[r.name]
		if l == nil {
			continue
		}
		rl := ReplicaLag{
			Name: r.name, Samples: l.samples, Disconnected: l.disconnected,
			LagSP50: percentile(l.seconds, 50), LagSMax: percentile(l.seconds, 100),
			BytesP50: percentile(l.bytes, 50), BytesMax: percentile(l.bytes, 100),
			Lag: l.points,
		}
		if s.probe != nil {
			if v, ok := s.probe.result(r.name); ok {
				rl.VisibleMSP50, rl.VisibleMSP99, rl.VisibleMSMax = v.p50, v.p99, v.max
				rl.VisibleProbes, rl.VisibleTimeouts = v.probes, v.timeouts
				rl.Visible = v.series
			}
		}
		m.Replicas = append(m.Replicas, rl)
	}
	m.Cache = cacheStats(s.base, final)
	if s.top.Varnish() != nil || s.top.VarnishWorkDir != "" {
		if s.base.varnish != nil && final.varnish != nil {
			m.Cache.L3 = &CacheTier{
				Hits:   final.varnish["cache_hit"] - s.base.varnish["cache_hit"],
				Misses: final.varnish["cache_miss"] - s.base.varnish["cache_miss"],
			}
		}
	}
	m.CacheSeries = cacheSeries(append(append([]counters{s.base}, s.snapshots...), final))
	var readings []poolReadings
	for _, c := range s.snapshots {
		readings = append(readings, c.pools)
	}
	m.Pools = dbPools(s.base.pools, readings, final.pools)
	for _, server := range slices.Sorted(maps.Keys(final.backends)) {
		m.Backends = append(m.Backends, BackendRequests{Server: server, Requests: uint64(counterDelta(s.base.backends[server], final.backends[server]))})
	}
	for _, c := range s.top.Components() {
		series := s.cpu[c.Name]
		if series == nil {
			continue
		}
		var secs float64
		for _, inc := range series.incs {
			secs += math.Max(inc.last-inc.first, 0)
		}
		m.CPU = append(m.CPU, ComponentCPU{Name: c.Name, Kind: c.Kind, Seconds: secs})
	}
	if series := s.cpu[dockerProxyName]; series != nil && len(series.incs) > 0 {
		var secs float64
		for _, inc := range series.incs {
			secs += math.Max(inc.last-inc.first, 0)
		}
		m.CPU = append(m.CPU, ComponentCPU{Name: dockerProxyName, Kind: series.kind, Seconds: secs})
	}
	return m, nil
}

func (s *Sampler) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.log.Warn("measurement problem", "problem", msg)
	s.mu.Lock()
	s.problems = append(s.problems, msg)
	s.mu.Unlock()
}

// idleCounter starts counting what crosses the links now that the load
// has stopped, from base, their traffic at the run's end (nil: nothing to
// count). The function it returns waits until SamplerOptions.IdleTraffic
// has passed since, and returns the count and how long it took.
func (s *Sampler) idleCounter(base []LinkTraffic) func(ctx context.Context) ([]LinkTraffic, time.Duration) {
	if base == nil || s.idleTraffic <= 0 {
		return func(context.Context) ([]LinkTraffic, time.Duration) { return nil, 0 }
	}
	start := time.Now()
	return func(ctx context.Context) ([]LinkTraffic, time.Duration) {
		select {
		case <-time.After(s.idleTraffic - time.Since(start)):
		case <-ctx.Done():
			return nil, 0
		}
		final := s.readTraffic()
		if final == nil {
			return nil, 0
		}
		return trafficDelta(base, final), time.Since(start)
	}
}

// readTraffic reads what has crossed each proxied link so far; nil,
// told to problem, when that cannot be read.
func (s *Sampler) readTraffic() []LinkTraffic {
	lt, err := s.top.Traffic()
	if err != nil {
		s.problem("%v", err)
		return nil
	}
	return lt
}

// readCounters reads the cumulative cache and load-balancer counters and
// the apps' database pools, telling problem what it could not read.
func (s *Sampler) readCounters(ctx context.Context, problem func(format string, args ...any)) counters {
	c := counters{at: time.Now(), cache: map[string]float64{}, cacheOK: true, backends: map[string]float64{}, pools: poolReadings{}}
	if p := s.top.Prometheus(); p != nil || s.top.PrometheusURL != "" {
		base := s.top.PrometheusURL
		if err := readPoolsPrometheus(ctx, base, c.pools); err != nil {
			problem("%v", err)
		}
		for _, kind := range []string{"hits", "misses"} {
			vec, err := promQuery(ctx, base, "scalelab_cache_"+kind+"_total")
			if err != nil {
				problem("cache %s from prometheus: %v", kind, err)
				c.cacheOK = false
				continue
			}
			for _, v := range vec {
				c.cache[v.labels["component"]+"/"+v.labels["tier"]+"/"+kind] += v.value
			}
		}
		if s.top.HAProxyURL != "" {
			vec, err := promQuery(ctx, base, `sum by (server) (haproxy_server_http_responses_total{proxy="app"})`)
			if err != nil {
				problem("haproxy responses from prometheus: %v", err)
			}
			for _, v := range vec {
				c.backends[v.labels["server"]] = v.value
			}
		}
	} else {
		// Without Prometheus (phase 1) read the instances' metrics
		// listeners directly.
		for i, a := range s.top.AppMetricsURLs {
			body, err := httpGet(ctx, a+"/metrics")
			if err != nil {
				problem("metrics of %s: %v", a, err)
				c.cacheOK = false
				continue
			}
			families, err := parseExposition(body)
			if err != nil {
				problem("metrics of %s: %v", a, err)
				c.cacheOK = false
				continue
			}
			for k, v := range cacheCounters(families) {
				c.cache[a+"/"+k] += v
			}
			poolMetrics(fmt.Sprintf("app-%d", i+1), families, c.pools)
		}
	}
	if s.top.VarnishWorkDir != "" {
		st, err := s.top.varnishCounters(ctx)
		if err != nil {
			problem("varnishstat: %v", err)
		} else {
			c.varnish = st
		}
	}
	return c
}

// waitScrapeAfter waits until Prometheus has scraped every target the
// sampler reads (the app instances, HAProxy, the workers) after t. The
// exporters, scraped less often for the dashboard alone, are not waited
// for.
func (s *Sampler) waitScrapeAfter(ctx context.Context, t time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, 5*s.interval+5*time.Second)
	defer cancel()
	return poll(ctx, func(ctx context.Context) error {
		vec, err := promQuery(ctx, s.top.PrometheusURL, `min(timestamp(up{job=~"app|haproxy|worker"}))`)
		if err != nil {
			return err
		}
		if len(vec) == 0 || vec[0].value < float64(t.UnixMilli())/1000 {
			return fmt.Errorf("no scrape after %s yet", t.Format(time.RFC3339Nano))
		}
		return nil
	})
}

// cacheStats turns the counter readings into per-tier hits and misses.
func cacheStats(base, final counters) CacheStats {
	tiers := map[string]*CacheTier{}
	for key, v := range final.cache {
		parts := strings.Split(key, "/")
		if len(parts) < 3 {
			continue
		}
		tier, kind := parts[len(parts)-2], parts[len(parts)-1]
		t := tiers[tier]
		if t == nil {
			t = &CacheTier{}
			tiers[tier] = t
		}
		d := uint64(math.Round(counterDelta(base.cache[key], v)))
		if kind == "hits" {
			t.Hits += d
		} else {
			t.Misses += d
		}
	}
	return CacheStats{L1: tiers["l1"], L2: tiers["l2"]}
}

// counterDelta is end-start for a counter, or end when it was reset (the
// instance restarted) in between.
func counterDelta(start, end float64) float64 {
	if end < start {
		return end
	}
	return end - start
}

type promSample struct {
	labels map[string]string
	value  float64
}

// promQuery runs an instant query against Prometheus' HTTP API.
func promQuery(ctx context.Context, base, query string) ([]promSample, error) {
	body, err := httpGet(ctx, base+"/api/v1/query?query="+url.QueryEscape(query))
	if err != nil {
		return nil, err
	}
	var doc struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("query %q: %w", query, err)
	}
	if doc.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", query, doc.Error)
	}
	var out []promSample
	for _, r := range doc.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			continue
		}
		out = append(out, promSample{labels: r.Metric, value: v})
	}
	return out, nil
}

// parseExposition parses a Prometheus text exposition (an instance's
// /metrics) into its metric families, by name.
func parseExposition(body []byte) (map[string]*dto.MetricFamily, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(body))
}

// sampleValue is m's value in family f: a counter's, a gauge's or an
// untyped sample's.
func sampleValue(f *dto.MetricFamily, m *dto.Metric) float64 {
	switch f.GetType() {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	}
	return m.GetUntyped().GetValue()
}

// labelValue is m's label name, "" when it has none.
func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// cacheCounters reads scalelab_cache_{hits,misses}_total from an
// exposition's families, keyed "tier/hits" or "tier/misses".
func cacheCounters(families map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, kind := range []string{"hits", "misses"} {
		f := families["scalelab_cache_"+kind+"_total"]
		for _, m := range f.GetMetric() {
			if tier := labelValue(m, "tier"); tier != "" {
				out[tier+"/"+kind] += sampleValue(f, m)
			}
		}
	}
	return out
}

// percentile is the p-th percentile (0 to 100) of xs; 0 for none, so that
// a replica never sampled reads as no lag rather than NaN in JSON.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return stats.Quantile(xs, p/100)
}
