// Package reports holds the result of a scalelab run, the versioned
// result.json schema, and what is made from it: report.md, a self-contained
// report.html with charts drawn as inline SVG, and comparisons of several
// runs with a verdict that accounts for noise.
//
// The package reads results, never live systems, and imports neither the
// server nor the load generator: cmd/scalelab maps their numbers into a
// Result.
package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"scalelab/loadgen"
)

// SchemaVersion is the major version of result.json this package writes. It
// changes only when a field is renamed, removed or changes meaning; adding
// fields keeps it, and Read ignores fields it does not know.
const SchemaVersion = 1

// File names in a run's directory.
const (
	ResultFile   = "result.json"
	MarkdownFile = "report.md"
	HTMLFile     = "report.html"
)

// Result is everything a run measured, as written to result.json. Latencies
// are in milliseconds, rates in requests per second, fractions from 0 to 1.
// The fields up to Replicas are the binding minimum listed in
// docs/result-schema.md: never rename them.
type Result struct {
	SchemaVersion int       `json:"schema_version"`
	Phase         int       `json:"phase"`
	Scenario      string    `json:"scenario"`
	StartedAt     time.Time `json:"started_at"`
	// DurationS is the measured part of the run, without the warm-up.
	DurationS float64 `json:"duration_s"`
	Machine   Machine `json:"machine"`
	// Command is the exact command line that ran, shell-quoted (see
	// CommandLine).
	Command    string      `json:"command"`
	Totals     Totals      `json:"totals"`
	Operations []Operation `json:"operations"`
	Cache      Cache       `json:"cache"`
	Replicas   []Replica   `json:"replicas"`

	// ScenarioDescription says what the scenario models.
	ScenarioDescription string `json:"scenario_description,omitempty"`
	// Topology describes the phase's processes, e.g. "one app process,
	// embedded SQLite (WAL), no cache".
	Topology string `json:"topology,omitempty"`
	// Executor describes the load, e.g. "constant-arrival-rate 2000/s".
	Executor string `json:"executor,omitempty"`
	// Keys describes the key distribution, e.g. "zipfian (theta 0.99,
	// scrambled)".
	Keys string `json:"keys,omitempty"`
	// Users is the number of users seeded before the run.
	Users   int64   `json:"users"`
	WarmupS float64 `json:"warmup_s"`

	// Requests breaks the totals down by HTTP request (an operation such as
	// read-after-write sends two), when the generator reports them.
	Requests []Operation `json:"requests,omitempty"`
	// Thresholds are the scenario's pass/fail criteria and their outcome.
	Thresholds []ThresholdResult `json:"thresholds"`
	// Counters are custom counts, e.g. "stale_reads".
	Counters map[string]int64 `json:"counters,omitempty"`
	// Generator describes the load generator's own share of the latency.
	Generator *Generator `json:"generator,omitempty"`
	// Series has one point per second of the measured part of the run.
	Series []Second `json:"series"`
	// LatencyDistribution is the latency of all requests by percentile,
	// from an HDR histogram, in increasing percentile order.
	LatencyDistribution []PercentilePoint `json:"latency_distribution"`
	// Components is the CPU time each process of the topology used during
	// the measured part of the run (optional).
	Components []Component `json:"components,omitempty"`
	// Backends is HAProxy's count of requests per backend server (phases
	// 3–4).
	Backends []Backend `json:"haproxy_backends,omitempty"`
	// Notes are remarks a reader needs, e.g. "one 2-core machine: phase 3
	// pays for the load balancer on the same cores".
	Notes []string `json:"notes,omitempty"`
	// Capacity is the capacity search's section, written by scalelab
	// capacity (optional).
	Capacity *Capacity `json:"capacity,omitempty"`
	// Faults are the scenario's faults as they were injected, drawn as
	// markers on every chart over time.
	Faults []Fault `json:"faults,omitempty"`
	// CacheSeries has the hit rate of each cache tier per second of the
	// measured part, when the topology sampled it.
	CacheSeries []CacheSecond `json:"cache_series,omitempty"`
	// Network is the simulated distance between tiers (network.go).
	Network *Network `json:"network,omitempty"`

	// Target is the URL of the deployment that `scalelab run --target`
	// drove; empty when the lab started the topology itself. Such a run
	// has no topology measurements: no cache hit rates, replica lag or
	// component CPU (see target.go).
	Target string `json:"target,omitempty"`
	// Shard is "i/N" when this result is one of N load generators that
	// split one run (`run --shard`); Generators is how many such results
	// `scalelab merge` combined into this one.
	Shard      string `json:"shard,omitempty"`
	Generators int    `json:"generators,omitempty"`
	// Load is the load generator's own result with every HDR histogram
	// (loadgen.Result's JSON form), written by shards and merges so that
	// results can be merged exactly (see Merge).
	Load *loadgen.Result `json:"load,omitempty"`
	// Consistency is the check of the clients' histories, in runs with
	// faults or that ask for it (docs/consistency.md).
	Consistency *Consistency `json:"consistency,omitempty"`
	// Queue is the job queue over the run, in a phase with queue workers
	// (queue.go).
	Queue *Queue `json:"queue,omitempty"`
	// Breakers are the app instances' circuit breakers' changes of state
	// over the run, in phases with Prometheus (breakers.go).
	Breakers *Breakers `json:"breakers,omitempty"`
	// DBPools are the app instances' database connection pools over the
	// run: how full they were and how long requests waited for a
	// connection (dbpools.go); absent when the instances export none.
	DBPools []DBPool `json:"db_pools,omitempty"`
	// Runtime is where the topology's components ran: "process" (local
	// processes) or "docker" (containers); absent in results written
	// before it was recorded.
	Runtime string `json:"runtime,omitempty"`
	// UpS and DownS are how long the topology took to come up (readiness
	// checks included) and to be torn down, in seconds; absent when not
	// measured.
	UpS   float64 `json:"topology_up_s,omitempty"`
	DownS float64 `json:"topology_down_s,omitempty"`
}

// Consistency is what the check of a run's client histories found: each
// acknowledged write (with the version it created), each read (with what
// it saw), and a final read of every user written, after the run.
type Consistency struct {
	// Writes counts the acknowledged writes checked; Indeterminate the
	// writes whose answer was lost (timed out, or 5xx): they may or may
	// not have been applied.
	Writes        int64 `json:"writes"`
	Indeterminate int64 `json:"indeterminate_writes"`
	// OwnReads are reads of a client's own user with its token;
	// AnonymousReads reads of the public view without one. FailedReads
	// counts reads of either kind that got no 200.
	OwnReads       int64 `json:"own_reads"`
	AnonymousReads int64 `json:"anonymous_reads"`
	FailedReads    int64 `json:"failed_reads"`
	// ReadYourWrites counts own reads that showed a version older than a
	// write of that user acknowledged before the read began.
	ReadYourWrites int64 `json:"read_your_writes_violations"`
	// Monotonic counts own reads that showed an older version than an
	// earlier read of the same client and user had (the earlier one ended
	// before the later one began). AnonymousMonotonic counts the same
	// among anonymous reads, which the server does not promise (another
	// instance's L1 may be an invalidation's flight behind): for
	// information.
	Monotonic          int64 `json:"monotonic_read_violations"`
	AnonymousMonotonic int64 `json:"anonymous_monotonic_read_violations"`
	// FinalReads counts the users read after the run (their owner's view,
	// with a token); FinalReadFailures those that could not be read.
	FinalReads        int64 `json:"final_reads"`
	FinalReadFailures int64 `json:"final_read_failures"`
	// LostWrites counts acknowledged writes that the final read shows
	// neither applied nor superseded (its version is older).
	LostWrites int64 `json:"lost_writes"`
	// LateOverwrites counts users whose final value came from a write
	// that never got an answer and was sent before the last acknowledged
	// write was acknowledged: a write that landed late, over newer ones.
	LateOverwrites int64 `json:"late_overwrites"`
	// Staleness is, per acknowledged write followed by anonymous reads of
	// its user, how long after its acknowledgement such reads still began
	// and showed an older version (0 when none did).
	Staleness Staleness `json:"anonymous_staleness_ms"`
	// Examples describe the first violations found, for the reader.
	Examples []string `json:"examples,omitempty"`
}

// Staleness summarises anonymous staleness, in milliseconds.
type Staleness struct {
	Samples int64   `json:"samples"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
}

// Fault is one scenario fault, e.g. "kill redis" at 10 s.
type Fault struct {
	// AtS is when it was injected, in seconds from the start of the
	// measured part.
	AtS float64 `json:"at_s"`
	// Fault is the scenario's fault as written, e.g. "kill redis" or
	// "partition app-1->redis for 5s".
	Fault string `json:"fault"`
	// Error is why the injection failed; empty when it worked.
	Error string `json:"error,omitempty"`
}

// CacheSecond is one second of the cache tiers: hits per lookup in that
// second, summed over the tier's instances; nil where the tier had no
// lookups or does not exist.
type CacheSecond struct {
	T  int      `json:"t"`
	L1 *float64 `json:"l1_hit_rate"`
	L2 *float64 `json:"l2_hit_rate"`
	L3 *float64 `json:"l3_hit_rate"`
}

// ReplicaSecond is one second of one replica.
type ReplicaSecond struct {
	T int `json:"t"`
	// LagMS is how far the replica was behind the primary when sampled, in
	// milliseconds.
	LagMS float64 `json:"lag_ms"`
	// VisibleMSP99 is the write-to-visible delay of the probe writes made
	// during this second, p99 in ms; nil without probes in the second.
	VisibleMSP99 *float64 `json:"visible_ms_p99,omitempty"`
}

// DistributionPercentiles returns the percentiles at which a run should
// sample its latency histogram for LatencyDistribution: fine enough that
// the report's chart on the "nines" axis shows the shape of the tail, about
// four points per decade of rarity up to 99.9999%; 100 is the maximum.
func DistributionPercentiles() []float64 {
	return []float64{
		0, 5, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 92.5, 95, 96, 97, 98, 98.5, 99,
		99.25, 99.5, 99.6, 99.7, 99.8, 99.85, 99.9, 99.925, 99.95, 99.96, 99.97, 99.98, 99.985, 99.99,
		99.9925, 99.995, 99.999, 99.9999, 100,
	}
}

// Machine is what the run ran on (see DetectMachine).
type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	GoVersion   string `json:"go_version"`
	// GitCommit is the short commit of the checkout, "-dirty" when it had
	// uncommitted changes, empty when not run from a git checkout.
	GitCommit string `json:"git_commit"`
	OS        string `json:"os"`
	Kernel    string `json:"kernel"`
	Arch      string `json:"arch"`
	Hostname  string `json:"hostname"`
}

// Totals count every request of the measured part of the run.
type Totals struct {
	// Requests completed, whatever their outcome (errors and throttled
	// included; dropped ones were never sent).
	Requests int64 `json:"requests"`
	// Errors among them: transport failures, timeouts, unexpected statuses
	// and failed checks. Throttled requests (429) are not errors.
	Errors int64 `json:"errors"`
	// Rate is Requests per second of the measured duration.
	Rate float64 `json:"rate"`
	// OfferedRate is the arrival rate the executor scheduled, per second (0
	// for a closed model, which has none).
	OfferedRate float64 `json:"offered_rate"`
	// Dropped counts arrivals that found no free worker in time and were
	// never sent.
	Dropped int64 `json:"dropped"`
	// Throttled counts requests answered 429 Too Many Requests.
	Throttled int64 `json:"throttled"`
	// ErrorsByClass breaks Errors down, e.g. "http 503", "timeout",
	// "connection refused".
	ErrorsByClass map[string]int64 `json:"errors_by_class,omitempty"`
	LatencyMS     Latency          `json:"latency_ms"`
}

// Operation is one operation of the mix (or one HTTP request, in
// Result.Requests).
type Operation struct {
	Name      string `json:"name"`
	Count     int64  `json:"count"`
	Errors    int64  `json:"errors"`
	Throttled int64  `json:"throttled"`
	// Dropped counts the operation's arrivals that found no free worker in
	// time and were never sent (not in Count); operations only.
	Dropped   int64   `json:"dropped,omitempty"`
	Rate      float64 `json:"rate"`
	LatencyMS Latency `json:"latency_ms"`
	// Series is the operation's per-second series, when the generator
	// keeps one; Compare needs it to judge the operation's latency.
	Series []OpSecond `json:"series,omitempty"`
}

// Latency is the load generator's latency summary in milliseconds,
// measured from each request's scheduled start: one type, which results
// write as they get it (an alias, so the rendering code reads as before).
type Latency = loadgen.Latency

// Cache has the hit rate of each cache tier, nil (JSON null) where the
// phase has no such tier.
type Cache struct {
	L1HitRate *float64 `json:"l1_hit_rate"` // in-process
	L2HitRate *float64 `json:"l2_hit_rate"` // Redis
	L3HitRate *float64 `json:"l3_hit_rate"` // CDN (Varnish)
}

// Float returns a pointer to f, for the nullable fields such as the cache
// hit rates.
func Float(f float64) *float64 { return &f }

// Replica is one read replica's lag during the run.
type Replica struct {
	Name string `json:"name"`
	// LagSP50 and LagSMax are how far the replica was behind the primary,
	// in seconds, as the database reports it.
	LagSP50 float64 `json:"lag_s_p50"`
	LagSMax float64 `json:"lag_s_max"`
	// VisibleMSP99 is the write-to-visible delay clients saw: from a write's
	// acknowledgement until a read on this replica returned it, p99 in ms.
	VisibleMSP99 float64 `json:"visible_ms_p99"`
	// VisibleMSP50 and VisibleMSMax are the same delay's median and
	// maximum, in ms.
	VisibleMSP50 float64 `json:"visible_ms_p50"`
	VisibleMSMax float64 `json:"visible_ms_max"`
	// VisibleProbes is how many probe writes the delay was measured on;
	// VisibleTimeouts how many of them the replica had not shown within
	// the probe's timeout. Those count at the timeout in the percentiles,
	// so a maximum equal to the timeout means "at least". 0 probes: not
	// measured.
	VisibleProbes   int64 `json:"visible_probes"`
	VisibleTimeouts int64 `json:"visible_timeouts"`
	// Series has the replica's lag (and write-to-visible delay) per second,
	// when the topology kept it.
	Series []ReplicaSecond `json:"series,omitempty"`
}

// ThresholdResult is one pass/fail criterion and its outcome.
type ThresholdResult struct {
	// Threshold as written, e.g. "p99 < 50ms".
	Threshold string `json:"threshold"`
	Pass      bool   `json:"pass"`
	// Observed is the measured value in Unit; null when the run had
	// nothing to judge (which fails the threshold).
	Observed *float64 `json:"observed"`
	Unit     string   `json:"unit"` // "ms", "%" or "req/s"
}

// Generator is the load generator's own account of the run.
type Generator struct {
	// Workers is the largest number of workers in use at once.
	Workers int    `json:"workers"`
	Seed    uint64 `json:"seed"`
	// StartDelayMS is how late requests started after they were due. It is
	// inside every latency; when its p99 is a sizeable part of the
	// requests' p99, the generator, not the server, was the bottleneck.
	StartDelayMS Latency `json:"start_delay_ms"`
}

// Second is one second of the measured part of the run.
type Second struct {
	// T counts seconds from the start of the measured part.
	T int `json:"t"`
	// Requests completed during this second; Rate is the same per second
	// (they differ only for a last, partial second).
	Requests int64   `json:"requests"`
	Rate     float64 `json:"rate"`
	// Offered is the operations scheduled to arrive, per second: it counts
	// operations, not HTTP requests (an operation may send several).
	Offered float64 `json:"offered"`
	// Ops counts the operations completed during this second; OpRate is the
	// same per second. Compare OpRate, not Rate, with Offered. Zero in
	// results written before they existed (see OpRate on Result).
	Ops    int64   `json:"ops,omitempty"`
	OpRate float64 `json:"op_rate,omitempty"`
	// IntervalS is the second's real length, shorter than 1 for a last,
	// partial second; 0 in results written before it existed.
	IntervalS float64 `json:"interval_s,omitempty"`
	Errors    int64   `json:"errors"`
	Throttled int64   `json:"throttled,omitempty"`
	Dropped   int64   `json:"dropped,omitempty"`
	// P50MS and P99MS are the latencies of the requests that completed
	// during this second.
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
}

// OpSecond is one second of one operation.
type OpSecond struct {
	T        int     `json:"t"`
	Requests int64   `json:"requests"`
	Rate     float64 `json:"rate"`
	Errors   int64   `json:"errors"`
	P50MS    float64 `json:"p50_ms"`
	P99MS    float64 `json:"p99_ms"`
}

// PercentilePoint is one point of the latency distribution.
type PercentilePoint struct {
	Percentile float64 `json:"percentile"` // 0 to 100
	ValueMS    float64 `json:"value_ms"`
}

// Component is one process (or group of processes) of the topology.
type Component struct {
	Name string `json:"name"`
	// CPUS is the CPU time, user plus system, used during the measured part
	// of the run.
	CPUS float64 `json:"cpu_s"`
	// CPUUSPerRequest is CPUS per completed request, in microseconds: the
	// component's cost per request, steadier than rates on a shared
	// machine. Absent when no request completed.
	CPUUSPerRequest float64 `json:"cpu_us_per_request,omitempty"`
}

// Backend is one HAProxy backend server.
type Backend struct {
	Name     string `json:"name"` // "backend/server"
	Requests int64  `json:"requests"`
	Errors   int64  `json:"errors"` // 5xx responses
}

// ErrorRate is Errors as a fraction of Requests, 0 when there were none.
func (t Totals) ErrorRate() float64 {
	if t.Requests == 0 {
		return 0
	}
	return float64(t.Errors) / float64(t.Requests)
}

// Passed reports whether every threshold passed.
func (r *Result) Passed() bool {
	for _, t := range r.Thresholds {
		if !t.Pass {
			return false
		}
	}
	return true
}

// Write writes r to dir/result.json, creating dir. The file is replaced
// atomically, so a reader never sees half a result.
func (r *Result) Write(dir string) error {
	data, err := r.marshal()
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return writeFile(dir, ResultFile, data)
}

// WriteAll writes result.json, report.md and report.html into dir; the
// options (a baseline, links) shape the reports.
func (r *Result) WriteAll(dir string, opts ...Option) error {
	if err := r.Write(dir); err != nil {
		return err
	}
	var md, page bytes.Buffer
	if err := RenderMarkdown(&md, r, opts...); err != nil {
		return fmt.Errorf("render %s: %w", MarkdownFile, err)
	}
	if err := RenderHTML(&page, r, opts...); err != nil {
		return fmt.Errorf("render %s: %w", HTMLFile, err)
	}
	if err := writeFile(dir, MarkdownFile, md.Bytes()); err != nil {
		return err
	}
	return writeFile(dir, HTMLFile, page.Bytes())
}

func (r *Result) marshal() ([]byte, error) {
	c := *r
	c.SchemaVersion = SchemaVersion
	// The schema's lists are lists, never null.
	if c.Operations == nil {
		c.Operations = []Operation{}
	}
	if c.Replicas == nil {
		c.Replicas = []Replica{}
	}
	if c.Thresholds == nil {
		c.Thresholds = []ThresholdResult{}
	}
	if c.Series == nil {
		c.Series = []Second{}
	}
	if c.LatencyDistribution == nil {
		c.LatencyDistribution = []PercentilePoint{}
	}
	data, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func writeFile(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// SchemaVersionError is Read's error for a result.json of a schema version
// this package cannot read.
type SchemaVersionError struct {
	Path    string
	Version int
}

func (e *SchemaVersionError) Error() string {
	if e.Version > SchemaVersion {
		return fmt.Sprintf("read result %s: schema version %d is newer than this scalelab reads (%d): use a newer scalelab", e.Path, e.Version, SchemaVersion)
	}
	return fmt.Sprintf("read result %s: invalid schema version %d", e.Path, e.Version)
}

// Read reads a result.json, or the result.json inside path when path is a
// directory. It rejects schema versions it does not know.
func Read(path string) (*Result, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, ResultFile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read result: %w", err)
	}
	var head struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	switch v := head.SchemaVersion; {
	case v == nil:
		return nil, fmt.Errorf("read result %s: no schema_version: not a scalelab result", path)
	case *v > SchemaVersion || *v < 1:
		return nil, &SchemaVersionError{Path: path, Version: *v}
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read result %s: %w", path, err)
	}
	return &r, nil
}
