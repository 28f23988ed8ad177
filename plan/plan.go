// Package plan turns the lab's measurements into a capacity plan: for a
// workload of many users, how many machines each tier needs at the peak,
// and which phase of the lab is the smallest that can serve it, with the
// reason for each step.
//
// Every number comes from a result.json: CPU seconds per request by
// component (the capacity section's demands when a run has one, else the
// run's components divided by its requests), the share of writes among the
// run's requests, the cache hit rates the demands were measured at, the
// measured machine's memory and, when recorded, the database's bytes per
// user. The plan adds only the workload and the target machines.
package plan

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"scalelab/model"
)

// File is the plan's file name in --out.
const File = "plan.json"

// Tier names.
const (
	TierCDN      = "cdn"
	TierLB       = "lb"
	TierApp      = "app"
	TierRedis    = "redis"
	TierPrimary  = "primary"
	TierReplicas = "replicas"
)

// tierOrder is the order tiers are shown in: the way a request goes.
var tierOrder = []string{TierCDN, TierLB, TierApp, TierRedis, TierPrimary, TierReplicas}

// Workload is the load to plan for, and the machines to plan with.
type Workload struct {
	Users int64 `json:"users"`
	// DailyActive is the fraction of users active on a day.
	DailyActive float64 `json:"daily_active"`
	// RequestsPerUser is requests per active user per day.
	RequestsPerUser float64 `json:"requests_per_user"`
	// PeakFactor is the peak rate over the day's average rate.
	PeakFactor float64 `json:"peak_factor"`
	// WriteShare is the fraction of requests that write.
	WriteShare float64 `json:"write_share"`
	// CoresPerMachine is the size of every machine planned.
	CoresPerMachine int `json:"cores_per_machine"`
	// TargetUtilization is how busy a machine may be at the peak, leaving
	// headroom for bursts and for losing a machine.
	TargetUtilization float64 `json:"target_utilization"`

	// AverageRate, PeakRate, PeakReads and PeakWrites are derived, in
	// requests per second.
	AverageRate float64 `json:"average_rate"`
	PeakRate    float64 `json:"peak_rate"`
	PeakReads   float64 `json:"peak_reads"`
	PeakWrites  float64 `json:"peak_writes"`
}

// Validate checks the workload and fills in its derived rates.
func (w *Workload) Validate() error {
	var errs []error
	if w.Users < 1 {
		errs = append(errs, fmt.Errorf("users %d: must be at least 1", w.Users))
	}
	if !(w.DailyActive > 0 && w.DailyActive <= 1) {
		errs = append(errs, fmt.Errorf("daily active %v: must be in (0, 1]", w.DailyActive))
	}
	if !(w.RequestsPerUser > 0) {
		errs = append(errs, fmt.Errorf("requests per user %v: must be more than 0", w.RequestsPerUser))
	}
	if !(w.PeakFactor >= 1) {
		errs = append(errs, fmt.Errorf("peak factor %v: must be at least 1", w.PeakFactor))
	}
	if !(w.WriteShare >= 0 && w.WriteShare <= 1) {
		errs = append(errs, fmt.Errorf("write share %v: must be in [0, 1]", w.WriteShare))
	}
	if w.CoresPerMachine < 1 {
		errs = append(errs, fmt.Errorf("cores per machine %d: must be at least 1", w.CoresPerMachine))
	}
	if !(w.TargetUtilization > 0 && w.TargetUtilization <= 1) {
		errs = append(errs, fmt.Errorf("target utilization %v: must be in (0, 1]", w.TargetUtilization))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	w.AverageRate = float64(w.Users) * w.DailyActive * w.RequestsPerUser / 86400
	w.PeakRate = w.AverageRate * w.PeakFactor
	w.PeakWrites = w.PeakRate * w.WriteShare
	w.PeakReads = w.PeakRate - w.PeakWrites
	return nil
}

// Tier is one tier of a phase, sized for the workload's peak.
type Tier struct {
	Name      string `json:"name"`
	Instances int    `json:"instances"`
	// Components are the run's processes that make up the tier.
	Components []string `json:"components"`
	// Basis is what the tier's work is counted per: "request", "read" or
	// "write" (the primary behind replicas does the writes, the replicas
	// the reads).
	Basis string `json:"basis"`
	// DemandUS is the tier's CPU microseconds per unit of Basis.
	DemandUS float64 `json:"demand_us"`
	// Rate is the peak rate of Basis, per second.
	Rate float64 `json:"rate"`
	// CoresAtPeak is Rate × Demand: cores busy at the peak.
	CoresAtPeak float64 `json:"cores_at_peak"`
	// InstanceRate is what one machine of the tier serves at the target
	// utilization (a single-threaded tier uses one core of it).
	InstanceRate float64 `json:"instance_rate"`
	// Needed is Rate / InstanceRate rounded up; Instances adds what
	// availability or the phase's shape requires.
	Needed int `json:"needed"`
	// Max is the most instances the phase's shape allows (0: no limit).
	Max int `json:"max,omitempty"`
}

// Phase is how one measured phase fares with the workload.
type Phase struct {
	Phase    int      `json:"phase"`
	Measured Measured `json:"measured"`
	Meets    bool     `json:"meets"`
	Tiers    []Tier   `json:"tiers"`
	// Shortfalls say why the phase does not meet the workload.
	Shortfalls []string `json:"shortfalls"`
}

// Plan is what plan.json holds.
type Plan struct {
	Workload Workload `json:"workload"`
	// Tiers are the smallest sufficient phase's tiers (or, when no phase
	// suffices, the largest measured phase's, sized as if it could).
	Tiers []Tier `json:"tiers"`
	// MinPhase is the smallest phase that meets the workload, 0 when none
	// does.
	MinPhase int      `json:"min_phase"`
	Reasons  []string `json:"reasons"`
	// Phases are every measured phase's sizing and shortfalls.
	Phases []Phase `json:"phases"`
	// Skipped are runs found but not used (another run of the phase was
	// preferred).
	Skipped []string `json:"skipped,omitempty"`
}

// Make sizes every measured phase (one Measured per phase, as Load keeps)
// for the workload and names the smallest that meets it. A phase meets it when it has no single point of failure
// (a load balancer and two apps: availability is always required), each
// tier that cannot grow in that phase (phase 1's one process, phase 2's one
// app, the one primary of every phase, phase 3's one Redis) stays within
// one machine at the target utilization, and the data fits one machine's
// memory when its size per user has been measured.
func Make(w Workload, measured []Measured) (*Plan, error) {
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	if len(measured) == 0 {
		return nil, fmt.Errorf("plan: %w", errNoResults)
	}
	p := &Plan{Workload: w}
	data := measuredDataSize(measured)
	for _, m := range measured {
		ph, err := sizePhase(w, m, data)
		if err != nil {
			return nil, fmt.Errorf("plan: phase %d (%s): %w", m.Phase, m.Source, err)
		}
		p.Phases = append(p.Phases, ph)
	}
	slices.SortFunc(p.Phases, func(a, b Phase) int { return a.Phase - b.Phase })

	p.Reasons = append(p.Reasons, fmt.Sprintf(
		"peak: %s users × %s daily active × %s requests ÷ 86,400 s × %s peak factor = %.0f requests/s (%.0f writes/s at %s writes, %.0f reads/s); machines of %d cores, at most %s busy at the peak",
		groupDigits(w.Users), percent(w.DailyActive), trimFloat(w.RequestsPerUser), trimFloat(w.PeakFactor),
		w.PeakRate, w.PeakWrites, percent(w.WriteShare), w.PeakReads, w.CoresPerMachine, percent(w.TargetUtilization)))
	chosen := -1
	next := 1 // the next phase number to account for
	for i, ph := range p.Phases {
		for ; next < ph.Phase; next++ {
			p.Reasons = append(p.Reasons, fmt.Sprintf("phase %d: no measured run among the results, not considered", next))
		}
		next = ph.Phase + 1
		if ph.Meets {
			chosen = i
			break
		}
		p.Reasons = append(p.Reasons, fmt.Sprintf("phase %d falls short: %s", ph.Phase, strings.Join(ph.Shortfalls, "; ")))
	}
	if chosen >= 0 {
		ph := p.Phases[chosen]
		p.MinPhase = ph.Phase
		p.Tiers = ph.Tiers
		p.Reasons = append(p.Reasons, fmt.Sprintf("phase %d is the smallest measured phase that meets it: %s", ph.Phase, tierSummary(ph.Tiers)))
	} else {
		ph := p.Phases[len(p.Phases)-1]
		p.Tiers = ph.Tiers
		p.Reasons = append(p.Reasons, fmt.Sprintf("no measured phase meets it: the tiers shown are phase %d's, sized as if it could grow; the next step is beyond the lab (more primaries: sharding users across them)", ph.Phase))
	}
	show := p.Phases[len(p.Phases)-1]
	if chosen >= 0 {
		show = p.Phases[chosen]
	}
	p.Reasons = append(p.Reasons, cacheReason(show.Measured))
	p.Reasons = append(p.Reasons, dataReason(w, show.Measured, data))
	cpu := fmt.Sprintf("CPU only: demands are CPU seconds per request on the measured machine (%d cores), from %s; a faster or slower CPU scales every tier, and memory, disk and network are not modeled",
		show.Measured.Cores, show.Measured.DemandsFrom)
	if show.Measured.DemandsFrom == FromComponents {
		cpu += "; a fixed-rate run counts each process's fixed cost per second (scrapes, timers, WAL streaming) as cost per request, which overstates the tiers at higher rates: a capacity run's demands separate the two"
	}
	p.Reasons = append(p.Reasons, cpu)
	return p, nil
}

// dataSize is the database's measured size per user and where it came
// from.
type dataSize struct {
	bytesPerUser float64
	source       string
}

// measuredDataSize takes the data size per user from the first run (by
// phase) that measured it: the users table is the same in every phase.
func measuredDataSize(measured []Measured) dataSize {
	runs := slices.Clone(measured)
	slices.SortStableFunc(runs, func(a, b Measured) int { return a.Phase - b.Phase })
	for _, m := range runs {
		if m.DataBytesPerUser > 0 {
			return dataSize{m.DataBytesPerUser, m.Source}
		}
	}
	return dataSize{}
}

func sizePhase(w Workload, m Measured, data dataSize) (Phase, error) {
	ph := Phase{Phase: m.Phase, Measured: m, Shortfalls: []string{}}
	byTier := map[string][]string{}
	demand := map[string]float64{}
	for _, c := range slices.Sorted(maps.Keys(m.Demands)) {
		t := tierOf(c)
		if t == "" {
			continue
		}
		byTier[t] = append(byTier[t], c)
		demand[t] += m.Demands[c]
	}
	if len(byTier) == 0 {
		return Phase{}, errors.New("no component of a serving tier measured")
	}
	apps := len(byTier[TierApp])
	_, hasLB := byTier[TierLB]
	_, hasReplicas := byTier[TierReplicas]
	redisCluster := slices.ContainsFunc(byTier[TierRedis], func(c string) bool { return strings.HasPrefix(c, "redis-master") })

	reads := m.Requests - m.Writes
	names := slices.SortedFunc(maps.Keys(byTier), func(a, b string) int {
		ia, ib := slices.Index(tierOrder, a), slices.Index(tierOrder, b)
		if ia < 0 {
			ia = len(tierOrder)
		}
		if ib < 0 {
			ib = len(tierOrder)
		}
		if ia != ib {
			return ia - ib
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		t := Tier{Name: name, Components: byTier[name], Basis: "request", Rate: w.PeakRate}
		d := demand[name]
		switch {
		case name == TierPrimary && hasReplicas && m.Writes > 0:
			// Reads go to the replicas: the primary's work is the
			// writes (and the few reads that must be fresh).
			t.Basis, t.Rate, d = "write", w.PeakWrites, d*float64(m.Requests)/float64(m.Writes)
		case name == TierReplicas && m.Writes >= 0 && reads > 0:
			t.Basis, t.Rate, d = "read", w.PeakReads, d*float64(m.Requests)/float64(reads)
		}
		t.DemandUS = d * 1e6
		t.CoresAtPeak = t.Rate * d
		mach := model.Machine{Cores: w.CoresPerMachine}
		if name == TierRedis {
			// One thread executes every Redis command.
			mach.Threads = map[string]int{name: 1}
		}
		maxRate, _, _ := model.Predict(model.Demands{name: d}, mach)
		t.InstanceRate = maxRate * w.TargetUtilization
		switch {
		case t.Rate == 0:
			t.Needed = 0
		case math.IsInf(t.InstanceRate, 1):
			t.Needed = 1
		default:
			t.Needed = int(math.Ceil(t.Rate / t.InstanceRate))
		}
		t.Instances = max(t.Needed, 1)
		switch name {
		case TierApp:
			if !hasLB {
				t.Max = 1
			} else {
				t.Instances = max(t.Instances, 2)
			}
		case TierPrimary:
			t.Max = 1
		case TierRedis:
			if redisCluster {
				// The cluster the lab measured: its masters and
				// replicas are the least it runs with.
				t.Instances = max(t.Instances, len(byTier[name]))
			} else {
				t.Max = 1
			}
		}
		if t.Max > 0 && t.Needed > t.Max {
			ph.Shortfalls = append(ph.Shortfalls, shortfall(ph.Phase, t, w))
		}
		ph.Tiers = append(ph.Tiers, t)
	}
	switch {
	case !hasLB:
		ph.Shortfalls = append([]string{"availability: one app and no load balancer are a single point of failure (none needs a load balancer and two apps)"}, ph.Shortfalls...)
	case apps < 2:
		ph.Shortfalls = append([]string{"availability: one app behind the load balancer is a single point of failure (none needs two apps)"}, ph.Shortfalls...)
	}
	if data.bytesPerUser > 0 && m.MemoryBytes > 0 {
		if total := float64(w.Users) * data.bytesPerUser; total > float64(m.MemoryBytes) {
			ph.Shortfalls = append(ph.Shortfalls, fmt.Sprintf("data size: %s users × %.0f bytes = %s, more than one machine's memory (%s): every phase keeps all users on one primary",
				groupDigits(w.Users), data.bytesPerUser, bytesText(total), bytesText(float64(m.MemoryBytes))))
		}
	}
	ph.Meets = len(ph.Shortfalls) == 0
	return ph, nil
}

func shortfall(phase int, t Tier, w Workload) string {
	load := fmt.Sprintf("%.0f %ss/s × %.0f µs = %.2f cores, %d machine(s) of %d cores at %s",
		t.Rate, t.Basis, t.DemandUS, t.CoresAtPeak, t.Needed, w.CoresPerMachine, percent(w.TargetUtilization))
	switch t.Name {
	case TierApp:
		if phase == 1 {
			return "read and write rate: the app with its embedded SQLite needs " + load + "; phase 1 is one process"
		}
		return "request rate: the app needs " + load + "; without a load balancer the phase runs one app"
	case TierPrimary:
		if t.Basis == "write" {
			return fmt.Sprintf("write rate: the primary needs %s; one primary's measured write capacity is %.0f writes/s", load, t.InstanceRate)
		}
		return fmt.Sprintf("read rate: the primary serves every read that misses the cache and every write: %s; one primary serves %.0f requests/s, and this phase has no replicas", load, t.InstanceRate)
	case TierRedis:
		return fmt.Sprintf("Redis: %.0f requests/s × %.0f µs = %.2f cores, but one Redis executes commands on one thread: at %s of one core it serves %.0f requests/s, so %d are needed and this phase has one; a cluster spreads the keys", t.Rate, t.DemandUS, t.CoresAtPeak, percent(w.TargetUtilization), t.InstanceRate, t.Needed)
	}
	return fmt.Sprintf("%s needs %s; the phase allows %d", t.Name, load, t.Max)
}

func cacheReason(m Measured) string {
	var parts []string
	for _, c := range []struct {
		name string
		v    *float64
	}{{"L1", m.Cache.L1HitRate}, {"L2", m.Cache.L2HitRate}, {"L3 (CDN)", m.Cache.L3HitRate}} {
		if c.v != nil {
			parts = append(parts, fmt.Sprintf("%s %s", c.name, percent(*c.v)))
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("cache: phase %d has no cache tier; every read reaches the database", m.Phase)
	}
	return fmt.Sprintf("cache: phase %d's demands hold at the hit rates measured in its run (%s; %s, %s): the tiers behind each cache see only its misses, so a workload with a colder cache needs more of them",
		m.Phase, strings.Join(parts, ", "), m.Scenario, m.Source)
}

func dataReason(w Workload, m Measured, d dataSize) string {
	if d.bytesPerUser == 0 {
		return "data size: not judged: no result.json records capacity.data_bytes_per_user (the database's bytes per user), so the plan cannot compare the data with one machine's memory"
	}
	total := float64(w.Users) * d.bytesPerUser
	fits := "fits in"
	if total > float64(m.MemoryBytes) {
		fits = "does not fit in"
	}
	return fmt.Sprintf("data size: %s users × %.0f bytes per user (%s) = %s, which %s one machine's memory (%s, the measured machine's)",
		groupDigits(w.Users), d.bytesPerUser, d.source, bytesText(total), fits, bytesText(float64(m.MemoryBytes)))
}

func tierSummary(tiers []Tier) string {
	var parts []string
	for _, t := range tiers {
		parts = append(parts, fmt.Sprintf("%d %s", t.Instances, t.Name))
	}
	return strings.Join(parts, ", ")
}

// Write writes plan.json into dir, creating dir.
func (p *Plan) Write(dir string) error {
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", File, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write %s: %w", File, err)
	}
	if err := os.WriteFile(filepath.Join(dir, File), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", File, err)
	}
	return nil
}

// WriteTable prints the plan for people: the workload, the chosen phase's
// tiers, every phase's verdict and the reasons.
func (p *Plan) WriteTable(out io.Writer) error {
	w := p.Workload
	var b strings.Builder
	fmt.Fprintf(&b, "scalelab plan: %s users, %s daily active, %s requests each a day, peak ×%s, %s writes\n",
		groupDigits(w.Users), percent(w.DailyActive), trimFloat(w.RequestsPerUser), trimFloat(w.PeakFactor), percent(w.WriteShare))
	fmt.Fprintf(&b, "peak %.0f requests/s (%.0f reads/s, %.0f writes/s); machines of %d cores at %s\n\n",
		w.PeakRate, w.PeakReads, w.PeakWrites, w.CoresPerMachine, percent(w.TargetUtilization))
	if p.MinPhase > 0 {
		fmt.Fprintf(&b, "smallest phase that meets it: %d\n\n", p.MinPhase)
	} else {
		fmt.Fprintf(&b, "smallest phase that meets it: none measured\n\n")
	}
	rows := [][]string{{"tier", "instances", "per", "peak /s", "CPU µs each", "cores at peak", "one machine /s", "components"}}
	for _, t := range p.Tiers {
		rows = append(rows, []string{
			t.Name, fmt.Sprint(t.Instances), t.Basis, fmt.Sprintf("%.0f", t.Rate), fmt.Sprintf("%.0f", t.DemandUS),
			fmt.Sprintf("%.2f", t.CoresAtPeak), fmt.Sprintf("%.0f", t.InstanceRate), strings.Join(t.Components, " "),
		})
	}
	writeColumns(&b, rows)
	b.WriteString("\nphases:\n")
	for _, ph := range p.Phases {
		verdict := "meets it"
		if !ph.Meets {
			verdict = "falls short"
		}
		fmt.Fprintf(&b, "  %d  %-11s  %s  (%s, %s)\n", ph.Phase, verdict, tierSummary(ph.Tiers), ph.Measured.Scenario, ph.Measured.Source)
	}
	// A folder of many runs (reports/published) would bury the plan under
	// one line per run left out: past a few, a count (plan.json has them).
	if len(p.Skipped) <= maxSkippedListed {
		for _, s := range p.Skipped {
			fmt.Fprintf(&b, "  not used: %s\n", s)
		}
	} else {
		fmt.Fprintf(&b, "  not used: %d other runs of these phases (each phase's run above was preferred; plan.json's skipped lists them)\n", len(p.Skipped))
	}
	b.WriteString("\nreasons:\n")
	for _, r := range p.Reasons {
		fmt.Fprintf(&b, "  - %s\n", r)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

// maxSkippedListed is how many runs left out the text plan names one by one.
const maxSkippedListed = 3

func writeColumns(b *strings.Builder, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	for _, r := range rows {
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			switch {
			case i == len(r)-1:
				b.WriteString(c)
			case i == 0 || i == 2:
				b.WriteString(c + pad + "  ")
			default:
				b.WriteString(pad + c + "  ")
			}
		}
		b.WriteString("\n")
	}
}

func percent(f float64) string { return trimFloat(f*100) + "%" }

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.1f", f)
	return strings.TrimSuffix(s, ".0")
}

func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func bytesText(b float64) string {
	const gib = 1 << 30
	return fmt.Sprintf("%.1f GiB", b/gib)
}
