// Package scenarios defines scalelab's load scenarios: what to send, how fast,
// to which keys, and what a run must achieve to pass. Scenarios are YAML files
// (the built-in ones are embedded in the binary) read by a strict loader; the
// format is documented in README.md next to this file.
//
// The package knows nothing of the server or the load generator: it describes
// a run in plain types, and cmd/scalelab maps them onto loadgen's executors.
package scenarios

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Scenario is one validated load scenario. Load and LoadNamed return it with
// every default applied; Apply changes it from the command line.
type Scenario struct {
	Name        string
	Description string
	// Source is where the scenario came from: the file path given to Load,
	// or "scenarios/NAME.yaml" for a built-in one.
	Source string

	Executor Executor
	// Duration is the measured part of the run; Warmup runs before it at the
	// executor's starting load and is not counted in the results.
	Duration time.Duration
	Warmup   time.Duration

	// Users is how many users to seed before the run.
	Users int
	// MaxWorkers bounds the requests in flight. An arrival-rate executor that
	// finds no free worker counts the request as dropped.
	MaxWorkers int
	// Connections is the size of the generator's connection pool.
	Connections int

	Mix        Mix
	Keys       Keys
	Thresholds []Threshold
	// Faults disturb the topology during the measured run, in order of At.
	Faults []Fault
	// CheckConsistency has the run record every client's history and
	// check it afterwards (the result's consistency section). Runs with
	// faults check it whether or not it is set.
	CheckConsistency bool
}

// ChecksConsistency reports whether a run of s records and checks its
// clients' histories: when it asks to, or when it has faults.
// A threshold on the check asks for it too.
func (s *Scenario) ChecksConsistency() bool {
	if s.CheckConsistency || len(s.Faults) > 0 {
		return true
	}
	for _, t := range s.Thresholds {
		if t.Metric.consistency() {
			return true
		}
	}
	return false
}

// Fault is one disturbance of a running topology: at At after the start of
// the measured run, apply Action to the component named Component (as the
// topology names them: app-2, replica-1, primary, redis, redis-master-0,
// haproxy, varnish, pgbouncer, …). Whether the component exists is checked
// when the topology is up.
//
// A network fault names a Link instead ("from->to", as the topology names
// its proxied links: primary->replica-1, app->redis, client->haproxy) and
// lasts For (0: until the run ends); Latency is what slow adds, RateKBps
// what bandwidth caps the link at, Direction (both, forward: from → to,
// backward: to → from) which way it acts.
type Fault struct {
	At        time.Duration
	Component string
	Action    FaultAction

	Link      string
	For       time.Duration
	Latency   time.Duration
	RateKBps  int
	Direction string
}

// FaultAction is what a fault does to its component.
type FaultAction string

// The fault actions: stop (its own stop command or SIGTERM), kill (SIGKILL),
// pause (SIGSTOP), resume (SIGCONT), restart.
const (
	FaultStop    FaultAction = "stop"
	FaultKill    FaultAction = "kill"
	FaultPause   FaultAction = "pause"
	FaultResume  FaultAction = "resume"
	FaultRestart FaultAction = "restart"
)

// The link fault actions (see topologies.LinkAction): partition (nothing
// crosses, nothing is lost), slow (adds latency), bandwidth (caps it),
// reset (connections reset).
const (
	FaultPartition FaultAction = "partition"
	FaultSlow      FaultAction = "slow"
	FaultBandwidth FaultAction = "bandwidth"
	FaultReset     FaultAction = "reset"
)

// FaultActions lists the fault actions on a component.
func FaultActions() []FaultAction {
	return []FaultAction{FaultStop, FaultKill, FaultPause, FaultResume, FaultRestart}
}

// LinkFaultActions lists the fault actions on a link.
func LinkFaultActions() []FaultAction {
	return []FaultAction{FaultPartition, FaultSlow, FaultBandwidth, FaultReset}
}

func linkActionList() string {
	names := make([]string, 0, 4)
	for _, a := range LinkFaultActions() {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

func faultActionList() string {
	names := make([]string, 0, 5)
	for _, a := range FaultActions() {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

// String reads like "at 10s: kill redis".
func (f Fault) String() string {
	if f.Link == "" {
		return fmt.Sprintf("at %s: %s %s", f.At, f.Action, f.Component)
	}
	s := fmt.Sprintf("at %s: %s %s", f.At, f.Action, f.Link)
	switch {
	case f.Action == FaultSlow:
		s += " +" + f.Latency.String()
	case f.Action == FaultBandwidth:
		s += fmt.Sprintf(" to %d KB/s", f.RateKBps)
	}
	if f.Direction != "" && f.Direction != "both" {
		s += " (" + f.Direction + ")"
	}
	if f.For > 0 {
		s += " for " + f.For.String()
	}
	return s
}

// ExecutorKind names a way to schedule requests, as k6 names its executors.
type ExecutorKind string

// The executors. The two arrival-rate executors are open models: requests
// start on schedule whatever the latency. constant-vus is a closed model: each
// virtual user sends its next request when the previous one answered.
const (
	ConstantArrivalRate ExecutorKind = "constant-arrival-rate"
	RampingArrivalRate  ExecutorKind = "ramping-arrival-rate"
	ConstantVUs         ExecutorKind = "constant-vus"
)

// ExecutorKinds lists the executors in the order the documentation gives them.
func ExecutorKinds() []ExecutorKind {
	return []ExecutorKind{ConstantArrivalRate, RampingArrivalRate, ConstantVUs}
}

// Executor says how requests are scheduled. Which fields apply depends on
// Kind; the others are zero.
type Executor struct {
	Kind ExecutorKind
	// Rate is the arrival rate in requests per second (constant-arrival-rate).
	Rate float64
	// StartRate is the rate at the start of the first stage and during the
	// warm-up (ramping-arrival-rate).
	StartRate float64
	// Stages ramp the rate linearly from the previous target (or StartRate)
	// to Target over Duration (ramping-arrival-rate).
	Stages []Stage
	// VUs is the number of virtual users (constant-vus).
	VUs int
}

// Stage is one leg of a ramping-arrival-rate executor.
type Stage struct {
	Target   float64 // requests per second at the end of the stage
	Duration time.Duration
}

// PeakRate is the highest arrival rate the executor asks for; 0 for
// constant-vus, which has no arrival rate.
func (e Executor) PeakRate() float64 {
	switch e.Kind {
	case ConstantArrivalRate:
		return e.Rate
	case RampingArrivalRate:
		peak := e.StartRate
		for _, st := range e.Stages {
			peak = max(peak, st.Target)
		}
		return peak
	}
	return 0
}

func (e Executor) stagesDuration() time.Duration {
	var d time.Duration
	for _, st := range e.Stages {
		d += st.Duration
	}
	return d
}

// String describes the executor in one line, e.g. "constant-arrival-rate
// 2000/s" or "ramping-arrival-rate 20/s → 200/s → 20/s".
func (e Executor) String() string {
	switch e.Kind {
	case ConstantArrivalRate:
		return fmt.Sprintf("%s %s/s", e.Kind, formatFloat(e.Rate))
	case RampingArrivalRate:
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s/s", e.Kind, formatFloat(e.StartRate))
		for _, st := range e.Stages {
			fmt.Fprintf(&b, " → %s/s in %s", formatFloat(st.Target), st.Duration)
		}
		return b.String()
	case ConstantVUs:
		return fmt.Sprintf("%s %d", e.Kind, e.VUs)
	}
	return string(e.Kind)
}

// Op is an operation of the driver's fixed vocabulary.
type Op string

// The operations a scenario can mix. Deleting users is left out on purpose:
// it shrinks the key space under the key distributions' feet.
const (
	// OpGetUser reads one existing user.
	OpGetUser Op = "get-user"
	// OpUpdateUser changes one existing user's profile.
	OpUpdateUser Op = "update-user"
	// OpCreateUser signs a new user up; the key space grows by one.
	OpCreateUser Op = "create-user"
	// OpReadAfterWrite updates a user and reads it back at once; a read that
	// does not show the write counts as a stale read.
	OpReadAfterWrite Op = "read-after-write"
	// OpCreateRecord adds a data record to an existing user (API v1).
	OpCreateRecord Op = "create-record"
	// OpListRecords lists a user's newest records (API v1).
	OpListRecords Op = "list-records"
	// OpGetRecord reads one record of a user (API v1).
	OpGetRecord Op = "get-record"
	// OpWriteBatch adds 100 records to a user in one request (POST
	// …/data:batch, API v1).
	OpWriteBatch Op = "write-batch"
	// OpWriteSingles adds 100 records to a user one request after another:
	// the same work as OpWriteBatch, for comparison (API v1).
	OpWriteSingles Op = "write-singles"
	// OpWriteLargeRecord adds a record of 8–64 KiB of JSON to a user
	// (API v1).
	OpWriteLargeRecord Op = "write-large-record"
	// OpGetLargeRecord reads the client's last large record without
	// Accept-Encoding; the -gzip and -zstd variants ask for that encoding
	// (API v1). Together they show the bytes compression saves.
	OpGetLargeRecord     Op = "get-large-record"
	OpGetLargeRecordGzip Op = "get-large-record-gzip"
	OpGetLargeRecordZstd Op = "get-large-record-zstd"
	// OpExport asks for an export of a user's records (POST …/exports,
	// 202): the job queue does the work (API v1, phase 4).
	OpExport Op = "export"
	// OpDeleteAccount signs a new user up, gives it 1000 records in ten
	// batches and deletes it: a deletion the server may defer to the job
	// queue (202). It never deletes a seeded user (API v1).
	OpDeleteAccount Op = "delete-account"
)

// Ops lists the operation vocabulary.
func Ops() []Op {
	return []Op{OpGetUser, OpUpdateUser, OpCreateUser, OpReadAfterWrite,
		OpCreateRecord, OpListRecords, OpGetRecord, OpWriteBatch, OpWriteSingles,
		OpWriteLargeRecord, OpGetLargeRecord, OpGetLargeRecordGzip, OpGetLargeRecordZstd, OpExport, OpDeleteAccount}
}

// Valid reports whether o is in the vocabulary.
func (o Op) Valid() bool { return slices.Contains(Ops(), o) }

// UsesKeys reports whether o picks an existing user with the key
// distribution. Only create-user and delete-account do not: they make a
// new one.
func (o Op) UsesKeys() bool { return o.Valid() && o != OpCreateUser && o != OpDeleteAccount }

// WeightedOp is one entry of an operation mix.
type WeightedOp struct {
	Op     Op
	Weight int // relative; 0 disables the operation
}

// Mix is a weighted operation mix. The weights are relative: 95 and 5 mean
// 95% and 5%.
type Mix []WeightedOp

// Has reports whether op is in the mix with a positive weight.
func (m Mix) Has(op Op) bool {
	for _, w := range m {
		if w.Op == op && w.Weight > 0 {
			return true
		}
	}
	return false
}

// Fraction is op's share of the mix, from 0 to 1.
func (m Mix) Fraction(op Op) float64 {
	total, n := 0, 0
	for _, w := range m {
		total += w.Weight
		if w.Op == op {
			n += w.Weight
		}
	}
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total)
}

// UsesKeys reports whether any operation in the mix picks existing users.
func (m Mix) UsesKeys() bool {
	for _, w := range m {
		if w.Weight > 0 && w.Op.UsesKeys() {
			return true
		}
	}
	return false
}

// Overrides are the command line's changes to a scenario; zero fields keep
// the scenario's value.
type Overrides struct {
	// Duration replaces the measured duration. A ramping-arrival-rate
	// scenario stretches or shrinks every stage by the same factor.
	Duration time.Duration
	// Rate replaces the arrival rate. A ramping-arrival-rate scenario scales
	// its start rate and every target so that the peak becomes Rate. Rate
	// thresholds scale by the same factor. constant-vus has no rate:
	// overriding it is an error.
	Rate float64
	// Users replaces the number of users to seed.
	Users int
}

// Apply changes s by o and validates the result. On error s is unchanged.
func (s *Scenario) Apply(o Overrides) error {
	c := *s
	c.Executor.Stages = slices.Clone(s.Executor.Stages)
	var issues []issue
	if o.Duration < 0 {
		issues = append(issues, issue{"duration", "override must be > 0"})
	}
	if o.Rate < 0 {
		issues = append(issues, issue{"executor.rate", "override must be > 0"})
	}
	if o.Users < 0 {
		issues = append(issues, issue{"users", "override must be >= 0"})
	}
	if o.Duration > 0 {
		if c.Executor.Kind == RampingArrivalRate {
			if total := c.Executor.stagesDuration(); total > 0 {
				f := float64(o.Duration) / float64(total)
				var sum time.Duration
				for i := range c.Executor.Stages {
					st := &c.Executor.Stages[i]
					if i == len(c.Executor.Stages)-1 {
						st.Duration = o.Duration - sum // no rounding drift
					} else {
						st.Duration = time.Duration(float64(st.Duration) * f)
					}
					sum += st.Duration
				}
			}
		}
		c.Duration = o.Duration
	}
	if o.Rate > 0 {
		peak := c.Executor.PeakRate()
		switch c.Executor.Kind {
		case ConstantArrivalRate:
			c.Executor.Rate = o.Rate
		case RampingArrivalRate:
			if peak > 0 {
				f := o.Rate / peak
				c.Executor.StartRate *= f
				for i := range c.Executor.Stages {
					c.Executor.Stages[i].Target *= f
				}
			}
		default:
			issues = append(issues, issue{"executor.rate", fmt.Sprintf("cannot override the rate of %s (it has vus, not a rate)", c.Executor.Kind)})
		}
		if peak > 0 {
			// A rate threshold is written for the scenario's own rate
			// ("rate > 475" of 500/s): it scales with the load.
			c.Thresholds = slices.Clone(s.Thresholds)
			for i := range c.Thresholds {
				if t := &c.Thresholds[i]; t.Metric == MetricRate {
					t.Bound = t.Bound * o.Rate / peak
				}
			}
		}
	}
	if o.Users > 0 {
		c.Users = o.Users
	}
	issues = append(issues, validate(&c)...)
	if len(issues) > 0 {
		return issuesError(fmt.Sprintf("scenario %s with overrides", c.Name), issues)
	}
	*s = c
	return nil
}

// Validate checks s as the loader does. Load and Apply call it; call it after
// building or changing a Scenario in code.
func (s *Scenario) Validate() error {
	if issues := validate(s); len(issues) > 0 {
		return issuesError("scenario "+s.Name, issues)
	}
	return nil
}

// issue is a validation problem at a field path such as "mix[1].weight".
type issue struct {
	field string
	msg   string
}

func issuesError(prefix string, issues []issue) error {
	errs := make([]error, len(issues))
	for i, is := range issues {
		errs[i] = fmt.Errorf("%s: %s: %s", prefix, is.field, is.msg)
	}
	return errors.Join(errs...)
}

// validate checks the values of a scenario whose defaults are applied. The
// loader reports missing fields itself, where it still knows what was absent.
func validate(s *Scenario) []issue {
	var is []issue
	add := func(field, format string, args ...any) {
		is = append(is, issue{field, fmt.Sprintf(format, args...)})
	}
	if s.Name == "" {
		add("name", "required")
	} else if !validName(s.Name) {
		add("name", "%q: use lower-case letters, digits and dashes", s.Name)
	}

	e := s.Executor
	switch e.Kind {
	case ConstantArrivalRate:
		if !(e.Rate > 0) {
			add("executor.rate", "must be > 0")
		}
	case RampingArrivalRate:
		if e.StartRate < 0 {
			add("executor.start_rate", "must be >= 0")
		}
		if len(e.Stages) == 0 {
			add("executor.stages", "required for %s", e.Kind)
		}
		for i, st := range e.Stages {
			if st.Target < 0 {
				add(fmt.Sprintf("executor.stages[%d].target", i), "must be >= 0")
			}
			if st.Duration <= 0 {
				add(fmt.Sprintf("executor.stages[%d].duration", i), "must be > 0")
			}
		}
		if len(e.Stages) > 0 && !(e.PeakRate() > 0) {
			add("executor.stages", "the rate never rises above 0")
		}
		if d := e.stagesDuration(); len(e.Stages) > 0 && s.Duration > 0 && d > 0 && s.Duration != d {
			add("duration", "%s differs from the sum of executor.stages (%s): leave it out or make them agree", s.Duration, d)
		}
	case ConstantVUs:
		if e.VUs < 1 {
			add("executor.vus", "must be >= 1")
		}
	case "":
		add("executor.type", "required (%s)", kindList())
	default:
		add("executor.type", "unknown executor %q (want %s)", e.Kind, kindList())
	}
	// Fields of another executor are mistakes worth a word, once the
	// executor itself is known.
	if slices.Contains(ExecutorKinds(), e.Kind) {
		if e.Kind != ConstantArrivalRate && e.Rate != 0 {
			add("executor.rate", "not used by %s", e.Kind)
		}
		if e.Kind != RampingArrivalRate {
			if e.StartRate != 0 {
				add("executor.start_rate", "not used by %s", e.Kind)
			}
			if len(e.Stages) != 0 {
				add("executor.stages", "not used by %s", e.Kind)
			}
		}
		if e.Kind != ConstantVUs && e.VUs != 0 {
			add("executor.vus", "not used by %s", e.Kind)
		}
	}

	if s.Duration <= 0 {
		add("duration", "must be > 0")
	}
	if s.Warmup < 0 {
		add("warmup", "must be >= 0")
	} else if s.Warmup > 0 && e.Kind == RampingArrivalRate && e.StartRate == 0 {
		add("warmup", "the warm-up runs at executor.start_rate, which is 0: set a start rate or leave the warm-up out")
	}
	if s.Users < 0 {
		add("users", "must be >= 0")
	} else if s.Users == 0 && s.Mix.UsesKeys() {
		add("users", "must be >= 1: the mix reads or changes existing users")
	}
	if s.MaxWorkers < 1 {
		add("max_workers", "must be >= 1")
	} else if e.Kind == ConstantVUs && e.VUs > s.MaxWorkers {
		add("max_workers", "%d is fewer than executor.vus (%d)", s.MaxWorkers, e.VUs)
	}
	if s.Connections < 1 {
		add("connections", "must be >= 1")
	} else if s.MaxWorkers >= 1 && s.Connections > s.MaxWorkers {
		add("connections", "%d is more than max_workers (%d): the extra connections would stay idle", s.Connections, s.MaxWorkers)
	}

	if len(s.Mix) == 0 {
		add("mix", "required: at least one operation")
	}
	total := 0
	seen := map[Op]int{}
	for i, w := range s.Mix {
		switch j, dup := seen[w.Op]; {
		case !w.Op.Valid():
			add(fmt.Sprintf("mix[%d].op", i), "unknown operation %q (want %s)", w.Op, opList())
		case dup:
			add(fmt.Sprintf("mix[%d].op", i), "%s is already in mix[%d]", w.Op, j)
		}
		seen[w.Op] = i
		if w.Weight < 0 {
			add(fmt.Sprintf("mix[%d].weight", i), "must be >= 0")
		} else {
			total += w.Weight
		}
	}
	if len(s.Mix) > 0 && total == 0 {
		add("mix", "weights sum to 0: give at least one operation a positive weight")
	}

	is = append(is, validateKeys(s.Keys, s.Users)...)

	for i, t := range s.Thresholds {
		if t.Op != "" && !s.Mix.Has(t.Op) {
			add(fmt.Sprintf("thresholds[%d]", i), "%q: operation %s is not in the mix", t.String(), t.Op)
		}
	}
	for i, f := range s.Faults {
		field := fmt.Sprintf("faults[%d]", i)
		switch {
		case f.Link == "" && f.Action != "" && !slices.Contains(FaultActions(), f.Action):
			add(field+".action", "unknown action %q (want %s)", f.Action, faultActionList())
		case f.Link != "" && !slices.Contains(LinkFaultActions(), f.Action):
			add(field+".action", "unknown action %q on a link (want %s)", f.Action, linkActionList())
		case f.Link != "" && !strings.Contains(f.Link, "->"):
			add(field+".link", "%q: name a link from->to, e.g. primary->replica-1", f.Link)
		case f.Action == FaultSlow && f.Latency <= 0:
			add(field+".latency", "slow needs a positive latency, e.g. 50ms")
		case f.Action == FaultBandwidth && f.RateKBps <= 0:
			add(field+".rate_kbps", "bandwidth needs a positive rate in KB/s")
		case f.Link != "" && !slices.Contains([]string{"", "both", "forward", "backward"}, f.Direction):
			add(field+".direction", "%q, want both, forward or backward", f.Direction)
		case f.Link == "" && (f.For != 0 || f.Latency != 0 || f.RateKBps != 0 || f.Direction != ""):
			add(field+".for", "for, latency, rate_kbps and direction belong to link faults")
		case f.For < 0:
			add(field+".for", "%s: must not be negative", f.For)
		}
		if f.At < 0 || (s.Duration > 0 && f.At >= s.Duration) {
			add(field+".at", "%s is outside the measured run (0 to %s)", f.At, s.Duration)
		}
		if i > 0 && f.At < s.Faults[i-1].At {
			add(field+".at", "%s is before faults[%d] (%s): list faults in order", f.At, i-1, s.Faults[i-1].At)
		}
	}
	return is
}

func validName(s string) bool {
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}

func kindList() string {
	var names []string
	for _, k := range ExecutorKinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

func opList() string {
	var names []string
	for _, o := range Ops() {
		names = append(names, string(o))
	}
	return strings.Join(names, ", ")
}

// formatFloat prints a rate without a pointless ".000000" or exponent.
func formatFloat(f float64) string {
	return strconv.FormatFloat(f, 'f', -1, 64)
}
