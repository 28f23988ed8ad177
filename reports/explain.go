package reports

import (
	"fmt"
	"math"
	"strings"
)

// Option changes how a report is rendered.
type Option func(*options)

type options struct {
	baseline     *Result
	baselineHref string
	readme       string
	pages        []Link
}

// Link is a relative link from a report to another page, e.g. the report
// of the previous phase.
type Link struct {
	Label string
	Href  string
}

// WithBaseline sets the run this report is compared with in "What this run
// shows": normally the previous phase's run of the same scenario. href, when
// not empty, links to its report.
func WithBaseline(b *Result, href string) Option {
	return func(o *options) { o.baseline, o.baselineHref = b, href }
}

// WithLinks adds links to the project's README (readme, "" for none) and to
// neighbouring pages, such as the reports of the previous and next phase.
func WithLinks(readme string, pages ...Link) Option {
	return func(o *options) { o.readme, o.pages = readme, append(o.pages, pages...) }
}

func newOptions(opts []Option) *options {
	o := &options{}
	for _, f := range opts {
		f(o)
	}
	return o
}

// PhaseAdds says in one line what a phase adds to the one before it.
func PhaseAdds(phase int) string {
	switch phase {
	case 1:
		return "One app process on embedded SQLite (WAL), no cache: the baseline every later phase is measured against."
	case 2:
		return "Adds a separate PostgreSQL behind a connection pool, and an L1 cache inside the app process (cache-aside, entries live 5–15 min)."
	case 3:
		return "Adds HAProxy in front of three app instances, streaming read replicas (reads go to a replica, writes to the primary), " +
			"an L2 Redis cache shared by the instances with invalidation on write, and auth and rate limiting on `/api/v1`."
	case 4:
		return "Adds Varnish as an L3 CDN tier in front of HAProxy (public reads cached for an hour, purged on write), " +
			"a Redis Cluster for L2, and pgbouncer between the apps and PostgreSQL."
	}
	return ""
}

// showsSections are the top of the report: what the phase adds, what
// changed against the baseline and why, what each figure means, and where
// to read on.
func showsSections(r *Result, o *options) []section {
	s := section{title: "What this run shows"}
	if adds := PhaseAdds(r.Phase); adds != "" {
		s.paras = append(s.paras, fmt.Sprintf("Phase %d. %s", r.Phase, adds))
	}
	s.paras = append(s.paras, headline(r))
	if b := o.baseline; b != nil {
		s.table = changeTable(b, r)
		s.items = takeaways(b, r)
		what := fmt.Sprintf("phase %d", b.Phase)
		if b.Scenario != r.Scenario {
			what += " (" + orDash(b.Scenario) + ")"
		}
		s.paras = append(s.paras, fmt.Sprintf("Against %s's run of the same scenario (the baseline), medians per second judged as in `scalelab compare`; every figure is defined under \"How to read the figures\" below:", what))
	} else {
		s.items = takeaways(nil, r)
		if r.Phase > 1 {
			s.paras = append(s.paras, "There is no run of the previous phase with this scenario to compare with here (a run takes one with `--baseline`).")
		}
	}
	s.links = append(s.links, o.pages...)
	if o.baselineHref != "" && o.baseline != nil {
		s.links = append([]Link{{Label: fmt.Sprintf("the baseline: phase %d, %s", o.baseline.Phase, orDash(o.baseline.Scenario)), Href: o.baselineHref}}, s.links...)
	}
	if o.readme != "" {
		s.links = append(s.links, Link{Label: "the scalelab README", Href: o.readme})
	}
	return []section{s, definitionsSection(r)}
}

// headline says in one sentence what the run sustained.
func headline(r *Result) string {
	ops := operationsRate(r)
	text := fmt.Sprintf("It completed %s operations/s", fmtRate(ops))
	if off := r.Totals.OfferedRate; off > 0 {
		text += fmt.Sprintf(" of the %s offered", fmtRate(off))
	}
	if r.Totals.Requests != operationsCount(r) {
		text += fmt.Sprintf(" (%s HTTP requests/s: an operation sends more than one request)", fmtRate(r.Totals.Rate))
	}
	text += fmt.Sprintf(", with a median latency (p50) of %s ms and a p99 of %s ms (99%% of requests took no longer)", fmtMS(r.Totals.LatencyMS.P50), fmtMS(r.Totals.LatencyMS.P99))
	switch {
	case r.Totals.Errors == 0:
		text += ", and no errors."
	default:
		text += fmt.Sprintf(", and %s errors (%s of requests).", groupDigits(r.Totals.Errors), fmtFraction(r.Totals.ErrorRate()))
	}
	return text
}

// changeTable is the baseline and this run side by side, with Compare's
// verdicts.
func changeTable(b, r *Result) *table {
	cmpn := Compare([]*Result{b, r})
	tb := &table{
		head: []string{"figure", fmt.Sprintf("phase %d", b.Phase), fmt.Sprintf("phase %d (this run)", r.Phase), "change"},
		num:  []bool{false, true, true, false},
	}
	for _, m := range cmpn.Metrics {
		if !shownInChange(m.Name) {
			continue
		}
		name := m.Name
		if m.Unit != "%" {
			name += " (" + m.Unit + ")"
		}
		change := fmtChange(m.Changes[1], m.Unit)
		switch {
		case m.Values[0] == nil && m.Values[1] != nil:
			change = "new in this phase"
		case m.Values[1] == nil:
			change = "not in this phase"
		}
		tb.rows = append(tb.rows, []cell{c(name), c(fmtCompared(m.Values[0], m.Unit)), c(fmtCompared(m.Values[1], m.Unit)), c(change)})
	}
	return tb
}

func shownInChange(name string) bool {
	switch name {
	case "rate", "p50", "p99", "error rate", "L1 hit rate", "L2 hit rate", "L3 hit rate", "CPU per request", "replica lag max", "write-to-visible p99":
		return true
	}
	return false
}

// takeaways are what a reader should take from the run, and, with a
// baseline, why it differs from it.
func takeaways(b, r *Result) []string {
	var out []string
	if b != nil && b.Totals.OfferedRate > 0 && r.Totals.OfferedRate > 0 && math.Abs(r.Totals.OfferedRate/b.Totals.OfferedRate-1) > 0.01 {
		out = append(out, fmt.Sprintf("The offered load differs (%s against %s operations/s): the change is not only the system's.",
			fmtRate(r.Totals.OfferedRate), fmtRate(b.Totals.OfferedRate)))
	}
	if r.Totals.OfferedRate > 0 && operationsRate(r) < 0.95*r.Totals.OfferedRate {
		out = append(out, fmt.Sprintf("The system fell behind: it completed %s of the %s operations/s offered.", fmtRate(operationsRate(r)), fmtRate(r.Totals.OfferedRate)))
	} else if r.Totals.OfferedRate > 0 {
		out = append(out, "The system kept up with the offered load; what differs between phases is latency and what each request costs.")
	}
	newTier := func(name string, bt, rt *float64, where string) {
		if rt == nil || (b != nil && bt != nil) {
			return
		}
		line := fmt.Sprintf("The %s answered %s of its lookups %s.", name, fmtHitRate(*rt), where)
		if b != nil {
			line = fmt.Sprintf("New in this phase: the %s answered %s of its lookups %s.", name, fmtHitRate(*rt), where)
		}
		out = append(out, line)
	}
	var bc Cache
	if b != nil {
		bc = b.Cache
	}
	newTier("L1 cache", bc.L1HitRate, r.Cache.L1HitRate, "inside the app process, without a database round trip")
	newTier("L2 cache (Redis, shared by the instances)", bc.L2HitRate, r.Cache.L2HitRate, "among those L1 missed")
	newTier("CDN tier (Varnish)", bc.L3HitRate, r.Cache.L3HitRate, "before they reached HAProxy and the apps")
	if r.Cache.L3HitRate != nil && r.Cache.L1HitRate != nil && *r.Cache.L1HitRate < 0.05 {
		out = append(out, "L1 and L2 hit rates are near zero because they count only the reads that got past the CDN: mostly first reads of each user, which no cache below can hold yet.")
	}
	if b != nil {
		bl, rl := b.Totals.LatencyMS, r.Totals.LatencyMS
		if bl.P50 > 0 && rl.P50 < 0.9*bl.P50 && r.Cache.L1HitRate != nil && bc.L1HitRate == nil {
			out = append(out, fmt.Sprintf("The median fell from %s to %s ms because the L1 cache arrived: most reads no longer touch the database.", fmtMS(bl.P50), fmtMS(rl.P50)))
		}
		if bl.P99 > 0 && rl.P99 > 1.1*bl.P99 {
			line := fmt.Sprintf("The p99 rose from %s to %s ms: requests cross more processes", fmtMS(bl.P99), fmtMS(rl.P99))
			if bp, ok := cpuPerRequest(b); ok {
				if rp, ok := cpuPerRequest(r); ok {
					line += fmt.Sprintf(" (CPU per request %s → %s µs)", fmtRate(bp), fmtRate(rp))
				}
			}
			machine := "one machine"
			if r.Machine.Cores > 0 {
				machine = fmt.Sprintf("one %d-core machine", r.Machine.Cores)
			}
			line += ", and on " + machine + " they all share the same cores. Their point is what they would do spread over many machines."
			out = append(out, line)
		}
	}
	if lag, ok := maxLagMS(r); ok {
		line := fmt.Sprintf("Reads go to replicas: the furthest was %s ms behind the primary", fmtMS(lag))
		if vis, ok := maxVisibleMS(r); ok {
			line += fmt.Sprintf(", and a write became visible there within %s ms (p99 of the worst replica)", fmtMS(vis))
		}
		out = append(out, line+".")
	}
	if n, ok := r.Counters["stale_reads"]; ok {
		line := fmt.Sprintf("Stale reads: %s", groupDigits(n))
		if reads, ok := r.Counters["reads_after_write"]; ok {
			line += " of " + groupDigits(reads) + " reads right after the reader's own write"
		}
		out = append(out, line+".")
	}
	if len(r.Faults) > 0 {
		var fs []string
		for _, f := range r.Faults {
			fs = append(fs, fmt.Sprintf("`%s` at %s", f.Fault, seconds(f.AtS)))
		}
		out = append(out, "Faults: "+strings.Join(fs, ", ")+". Watch the errors, latency and hit-rate charts at the markers.")
	}
	if r.Totals.Errors > 0 || r.Totals.Throttled > 0 {
		out = append(out, fmt.Sprintf("%s errors and %s throttled requests: the chart of errors over time shows when.", groupDigits(r.Totals.Errors), groupDigits(r.Totals.Throttled)))
	}
	return out
}

// cpuPerRequest is the topology's CPU time per HTTP request sent, in µs.
func cpuPerRequest(r *Result) (float64, bool) {
	if len(r.Components) == 0 || r.Totals.Requests == 0 {
		return 0, false
	}
	var sum float64
	for _, c := range r.Components {
		sum += c.CPUS
	}
	return 1e6 * sum / float64(r.Totals.Requests), true
}

// definitionsSection defines every figure the report uses, before any
// table uses it.
func definitionsSection(r *Result) section {
	s := section{title: "How to read the figures"}
	s.defs = []definition{
		{"operation, request", "An operation is one step of the scenario's mix, e.g. \"update a user\"; it may send several HTTP requests (read-after-write sends a PUT and then a GET)."},
		{"offered", "Operations the load generator scheduled to start per second (an open model: arrivals do not wait for answers). It is the load asked of the system, whether the system kept up or not."},
		{"rate", "Completed per second: operations/s (ops/s) for operations, requests/s (req/s) for HTTP requests. Achieved operations/s below offered means the system or the generator fell behind."},
		{"p50, p90, p99, p99.9, max", "Latency percentiles in milliseconds: p99 is the latency 99% of requests did not exceed. Measured from each request's scheduled start, so time spent waiting for a free connection or worker counts (coordinated omission corrected)."},
		{"errors, throttled, dropped", "Errors are transport failures, timeouts, unexpected statuses and failed checks; throttled are 429 answers from the rate limiter (not errors); dropped are arrivals that found no free worker in time and were never sent."},
	}
	if r.Cache.L1HitRate != nil || r.Cache.L2HitRate != nil || r.Cache.L3HitRate != nil || r.Phase == 0 {
		s.defs = append(s.defs, definition{"hit rate (per tier)", "Hits per lookup in one cache tier, summed over the tier's instances: L1 lives in each app process, L2 is Redis shared by the instances, L3 is the CDN (Varnish). A lookup that misses L1 goes on to L2, so L2's hit rate counts only what L1 missed, and L1 sees only what the CDN did not answer."})
	}
	if len(r.Replicas) > 0 {
		s.defs = append(s.defs,
			definition{"replica lag", "How far a read replica was behind the primary, as PostgreSQL reports it, in milliseconds, sampled every second on the primary."},
			definition{"write-to-visible", "What a client reading a replica sees: from the primary acknowledging a small probe write until a read on the replica returned it, in milliseconds."})
	}
	if len(r.Components) > 0 {
		s.defs = append(s.defs, definition{"CPU per request", "A component's CPU time (user + system) during the measured part divided by the HTTP requests sent, in microseconds (µs): what each tier costs per request."})
	}
	return s
}
