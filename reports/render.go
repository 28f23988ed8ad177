package reports

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// A report is built once as a neutral document and then written as Markdown
// or HTML, so both formats always show the same numbers. Prose may hold
// `code` spans in backticks; both writers turn them into code.
type document struct {
	title    string
	facts    []fact
	verdict  string // one line on the thresholds; "" when there are none
	passed   bool
	sections []section
}

type fact struct {
	key, value string
	code       bool
}

type section struct {
	title string
	text  string // a paragraph before the table or list
	paras []string
	defs  []definition
	table *table
	items []string
	after string // a paragraph after the table or list
	links []Link
	empty string // shown when there is nothing else
	// charts marks where the HTML page puts its charts: after this section.
	charts bool
	// capacity marks where it puts the capacity search's charts.
	capacity bool
}

type definition struct{ term, text string }

type table struct {
	head []string
	num  []bool // right-aligned numeric columns
	rows [][]cell
}

type cell struct {
	text   string
	code   bool
	status string // "pass" or "fail" for threshold verdicts
	strong bool   // a total row
}

func c(s string) cell { return cell{text: s} }

func buildDocument(r *Result, o *options) document {
	d := document{title: fmt.Sprintf("scalelab run: %s on %s", orDash(r.Scenario), r.subject())}
	if r.Capacity != nil {
		d.title = fmt.Sprintf("scalelab capacity: %s on %s", orDash(r.Scenario), r.subject())
	}

	phase := strconv.Itoa(r.Phase)
	if r.Topology != "" {
		phase += " — " + r.Topology
	}
	if r.Target != "" {
		d.facts = append(d.facts, targetFacts(r)...)
	} else {
		d.facts = append(d.facts, fact{key: "Phase", value: phase})
	}
	if r.Runtime != "" {
		d.facts = append(d.facts, fact{key: "Runtime", value: runtimeLine(r)})
	}
	scenario := orDash(r.Scenario)
	if r.ScenarioDescription != "" {
		scenario += " — " + r.ScenarioDescription
	}
	d.facts = append(d.facts, fact{key: "Scenario", value: scenario})
	span := "for " + seconds(r.DurationS)
	if r.WarmupS > 0 {
		span += " after a " + seconds(r.WarmupS) + " warm-up"
	}
	if r.Executor != "" {
		span = r.Executor + " " + span
	}
	load := []string{span}
	if r.Users > 0 {
		load = append(load, groupDigits(r.Users)+" users seeded")
	}
	if r.Keys != "" {
		load = append(load, "keys "+r.Keys)
	}
	d.facts = append(d.facts, fact{key: "Load", value: strings.Join(load, "; ")})
	if !r.StartedAt.IsZero() {
		d.facts = append(d.facts, fact{key: "Started", value: r.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC")})
	}
	if r.Command != "" {
		d.facts = append(d.facts, fact{key: "Command", value: r.Command, code: true})
	}
	d.facts = append(d.facts, fact{key: "Machine", value: machineLine(r.Machine)})
	d.facts = append(d.facts, fact{key: "Software", value: softwareLine(r.Machine)})

	if n := len(r.Thresholds); n > 0 {
		var failed []string
		for _, t := range r.Thresholds {
			if !t.Pass {
				failed = append(failed, t.Threshold)
			}
		}
		d.passed = len(failed) == 0
		if d.passed {
			d.verdict = fmt.Sprintf("PASS: all %d thresholds passed.", n)
			if n == 1 {
				d.verdict = "PASS: the threshold passed."
			}
		} else {
			d.verdict = fmt.Sprintf("FAIL: %d of %d thresholds failed: %s.", len(failed), n, strings.Join(failed, ", "))
		}
	}

	if r.Capacity != nil {
		d.sections = append(d.sections, capacitySections(r)...)
	}
	d.sections = append(d.sections, showsSections(r, o)...)
	totals := totalsSection(r)
	totals.charts = true
	d.sections = append(d.sections, totals)
	if len(r.Totals.ErrorsByClass) > 0 {
		d.sections = append(d.sections, errorsSection(r))
	}
	// The total over all requests belongs with the requests when the
	// result breaks them down: an operation may send several.
	opsTotal, reqTotal := &r.Totals, (*Totals)(nil)
	if len(r.Requests) > 0 {
		opsTotal, reqTotal = nil, &r.Totals
	}
	d.sections = append(d.sections, operationsSection("Operations", "operation", "ops/s", r.Operations, opsTotal,
		"Each operation of the mix timed as a whole; latency in milliseconds from its scheduled start, so time spent queueing counts."))
	if len(r.Requests) > 0 {
		d.sections = append(d.sections, operationsSection("HTTP requests", "request", "req/s", r.Requests, reqTotal,
			"Each HTTP exchange on its own (an operation may send several)."))
	}
	d.sections = append(d.sections, thresholdsSection(r))
	if len(r.Counters) > 0 {
		d.sections = append(d.sections, countersSection(r))
	}
	d.sections = append(d.sections, cacheSection(r), replicasSection(r))
	if len(r.DBPools) > 0 {
		d.sections = append(d.sections, dbPoolsSection(r))
	}
	if r.Generator != nil {
		d.sections = append(d.sections, generatorSection(r))
	}
	if len(r.Components) > 0 {
		d.sections = append(d.sections, componentsSection(r))
	}
	if r.Network != nil {
		d.sections = append(d.sections, networkSection(r))
	}
	if len(r.Backends) > 0 {
		d.sections = append(d.sections, backendsSection(r))
	}
	if r.Queue != nil {
		d.sections = append(d.sections, queueSection(r))
	}
	if r.Breakers != nil {
		d.sections = append(d.sections, breakersSection(r))
	}
	if len(r.Faults) > 0 {
		d.sections = append(d.sections, faultsSection(r))
	}
	if r.Consistency != nil {
		d.sections = append(d.sections, consistencySection(r))
	}
	if len(r.Notes) > 0 {
		d.sections = append(d.sections, section{title: "Notes", items: r.Notes})
	}
	return d
}

func totalsSection(r *Result) section {
	t := r.Totals
	offered := "—"
	if t.OfferedRate > 0 {
		offered = fmtRate(t.OfferedRate)
	}
	return section{
		title: "Totals",
		text:  "Offered and operations/s count operations; requests and req/s count HTTP requests.",
		table: &table{
			head: []string{"operations", "ops/s", "offered (ops/s)", "HTTP requests", "req/s", "errors", "error rate", "throttled", "dropped"},
			num:  []bool{true, true, true, true, true, true, true, true, true},
			rows: [][]cell{{
				c(groupDigits(operationsCount(r))), c(fmtRate(operationsRate(r))), c(offered),
				c(groupDigits(t.Requests)), c(fmtRate(t.Rate)), c(groupDigits(t.Errors)),
				c(fmtFraction(t.ErrorRate())), c(groupDigits(t.Throttled)), c(groupDigits(t.Dropped)),
			}},
		},
	}
}

// classesByCount is the classes of failed requests, the most common
// first, ties in order of name.
func classesByCount(by map[string]int64) []string {
	classes := slices.Sorted(maps.Keys(by))
	slices.SortStableFunc(classes, func(a, b string) int { return cmp.Compare(by[b], by[a]) })
	return classes
}

func errorsSection(r *Result) section {
	tb := &table{head: []string{"class", "count", "share of requests"}, num: []bool{false, true, true}}
	for _, class := range classesByCount(r.Totals.ErrorsByClass) {
		n := r.Totals.ErrorsByClass[class]
		share := 0.0
		if r.Totals.Requests > 0 {
			share = float64(n) / float64(r.Totals.Requests)
		}
		tb.rows = append(tb.rows, []cell{c(class), c(groupDigits(n)), c(fmtFraction(share))})
	}
	return section{title: "Errors by class", table: tb}
}

func operationsSection(title, what, unit string, ops []Operation, total *Totals, text string) section {
	tb := &table{
		head: []string{what, "count", "rate (" + unit + ")", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "throttled"},
		num:  []bool{false, true, true, true, true, true, true, true, true, true},
	}
	row := func(name string, count int64, rate float64, l Latency, errs, throttled int64) []cell {
		return []cell{c(name), c(groupDigits(count)), c(fmtRate(rate)), c(fmtMS(l.P50)), c(fmtMS(l.P90)),
			c(fmtMS(l.P99)), c(fmtMS(l.P999)), c(fmtMS(l.Max)), c(groupDigits(errs)), c(groupDigits(throttled))}
	}
	for _, op := range ops {
		tb.rows = append(tb.rows, row(op.Name, op.Count, op.Rate, op.LatencyMS, op.Errors, op.Throttled))
	}
	if total != nil && total.Requests > 0 {
		cells := row("all requests", total.Requests, total.Rate, total.LatencyMS, total.Errors, total.Throttled)
		for i := range cells {
			cells[i].strong = true
		}
		tb.rows = append(tb.rows, cells)
	}
	if len(tb.rows) == 0 {
		return section{title: title, empty: "No operations completed."}
	}
	return section{title: title, text: text, table: tb}
}

func thresholdsSection(r *Result) section {
	if len(r.Thresholds) == 0 {
		return section{title: "Thresholds", empty: "The scenario sets no thresholds."}
	}
	tb := &table{head: []string{"threshold", "observed", "result"}, num: []bool{false, true, false}}
	for _, t := range r.Thresholds {
		observed := "no data"
		if t.Observed != nil {
			observed = fmtObserved(*t.Observed, t.Unit)
		}
		verdict := cell{text: "PASS", status: "pass"}
		if !t.Pass {
			verdict = cell{text: "FAIL", status: "fail"}
		}
		tb.rows = append(tb.rows, []cell{{text: t.Threshold, code: true}, c(observed), verdict})
	}
	return section{title: "Thresholds", table: tb}
}

func countersSection(r *Result) section {
	tb := &table{head: []string{"counter", "value"}, num: []bool{false, true}}
	for _, name := range slices.Sorted(maps.Keys(r.Counters)) {
		tb.rows = append(tb.rows, []cell{{text: name, code: true}, c(groupDigits(r.Counters[name]))})
	}
	return section{title: "Counters", table: tb}
}

func cacheSection(r *Result) section {
	tb := &table{head: []string{"tier", "hit rate"}, num: []bool{false, true}}
	for _, tier := range []struct {
		name string
		rate *float64
	}{
		{"L1 (in-process)", r.Cache.L1HitRate},
		{"L2 (Redis)", r.Cache.L2HitRate},
		{"L3 (CDN)", r.Cache.L3HitRate},
	} {
		v := "—"
		if tier.rate != nil {
			v = fmtHitRate(*tier.rate)
		}
		tb.rows = append(tb.rows, []cell{c(tier.name), c(v)})
	}
	return section{title: "Cache hit rate", text: "Hits per lookup in each tier, summed over the tier's instances; — means the phase has no such tier.", table: tb}
}

func replicasSection(r *Result) section {
	if len(r.Replicas) == 0 {
		return section{title: "Replicas", empty: "No read replicas in this phase."}
	}
	tb := &table{
		head: []string{"replica", "lag p50 ms", "lag max ms", "write-to-visible p50 ms", "p99 ms", "max ms", "probes", "not visible in time"},
		num:  []bool{false, true, true, true, true, true, true, true},
	}
	for _, rep := range r.Replicas {
		// Results written before the probe counts existed have a p99 only.
		p50, mx, probes, timeouts := fmtMS(rep.VisibleMSP50), fmtMS(rep.VisibleMSMax), groupDigits(rep.VisibleProbes), groupDigits(rep.VisibleTimeouts)
		if rep.VisibleProbes == 0 {
			p50, mx, probes, timeouts = "—", "—", "—", "—"
		}
		tb.rows = append(tb.rows, []cell{c(rep.Name), c(fmtMS(1000 * rep.LagSP50)), c(fmtMS(1000 * rep.LagSMax)),
			c(p50), c(fmtMS(rep.VisibleMSP99)), c(mx), c(probes), c(timeouts)})
	}
	return section{
		title: "Replicas",
		text: "Lag is how far each replica was behind the primary, sampled on the primary. Write-to-visible is what a client reading the replica saw: " +
			"from the primary acknowledging a small probe write until a read on the replica returned it. A probe not visible " +
			"within the probe's timeout (5 s by default) counts at the timeout in the percentiles. All in milliseconds.",
		table: tb,
	}
}

func generatorSection(r *Result) section {
	g := r.Generator
	tb := &table{
		head: []string{"workers", "start delay p50 ms", "p99 ms", "max ms"},
		num:  []bool{true, true, true, true},
		rows: [][]cell{{c(strconv.Itoa(g.Workers)), c(fmtMS(g.StartDelayMS.P50)), c(fmtMS(g.StartDelayMS.P99)), c(fmtMS(g.StartDelayMS.Max))}},
	}
	text := "How late requests started after they were due; it is inside every latency above."
	if p99 := r.Totals.LatencyMS.P99; p99 > 0 && g.StartDelayMS.P99 >= p99/4 {
		text += fmt.Sprintf(" Here the start delay p99 is %.0f%% of the requests' p99: the generator, not only the server, limited this run.", 100*g.StartDelayMS.P99/p99)
	}
	return section{title: "Load generator", text: text, table: tb}
}

// componentsSection lists the components by CPU, the busiest first, so the
// most expensive tier per request is the first row.
func componentsSection(r *Result) section {
	tb := &table{
		head: []string{"component", "CPU s", "share of CPU", "CPU µs per request"},
		num:  []bool{false, true, true, true},
	}
	comps := slices.Clone(r.Components)
	slices.SortStableFunc(comps, func(a, b Component) int {
		if n := cmp.Compare(b.CPUS, a.CPUS); n != 0 {
			return n
		}
		return strings.Compare(a.Name, b.Name)
	})
	var total float64
	for _, comp := range comps {
		total += comp.CPUS
	}
	row := func(name string, cpu float64) []cell {
		share, perReq := "—", "—"
		if total > 0 {
			share = fmtHitRate(cpu / total)
		}
		if r.Totals.Requests > 0 {
			perReq = fmtRate(1e6 * cpu / float64(r.Totals.Requests))
		}
		return []cell{c(name), c(fmtCPU(cpu)), c(share), c(perReq)}
	}
	for _, comp := range comps {
		tb.rows = append(tb.rows, row(comp.Name, comp.CPUS))
	}
	sum := row("all components", total)
	for i := range sum {
		sum[i].strong = true
	}
	tb.rows = append(tb.rows, sum)
	return section{
		title: "CPU by component",
		text: "CPU time (user + system) during the measured part of the run, busiest first; per request divides it by the HTTP requests sent. " +
			"Per request is what the capacity model projects from. The load generator is not among them.",
		table: tb,
	}
}

func backendsSection(r *Result) section {
	tb := &table{head: []string{"backend", "requests", "share", "5xx"}, num: []bool{false, true, true, true}}
	var total int64
	for _, b := range r.Backends {
		total += b.Requests
	}
	for _, b := range r.Backends {
		share := "—"
		if total > 0 {
			share = fmtHitRate(float64(b.Requests) / float64(total))
		}
		tb.rows = append(tb.rows, []cell{c(b.Name), c(groupDigits(b.Requests)), c(share), c(groupDigits(b.Errors))})
	}
	sum := []cell{{text: "all backends", strong: true}, {text: groupDigits(total), strong: true}, {text: "100%", strong: true}, {text: "", strong: true}}
	tb.rows = append(tb.rows, sum)
	return section{title: "HAProxy backends", table: tb, after: backendsExplained(r, total)}
}

// backendsExplained says why HAProxy's counts differ from the requests the
// generator sent. They are the difference of HAProxy's response counters
// as Prometheus scraped them (once a second) at the start and the end of
// the measured part: the start value can be up to a scrape old, so the
// warm-up's last responses fall inside the difference, while the end is
// read after a fresh scrape. Health checks (GET /readyz) are not in these
// counters: HAProxy counts them apart. Retries do not add responses.
func backendsExplained(r *Result, total int64) string {
	sent := r.Totals.Requests
	text := fmt.Sprintf("The backends answered %s requests; the load generator sent %s. ", groupDigits(total), groupDigits(sent))
	if r.Cache.L3HitRate != nil {
		text += fmt.Sprintf("The CDN tier (Varnish) sits in front of HAProxy and answered %s of the lookups it saw itself, so only its misses, "+
			"the writes and the requests it does not cache reach the backends. ", fmtHitRate(*r.Cache.L3HitRate))
	}
	text += "These counts are the change in HAProxy's response counters between the start and the end of the measured part, as Prometheus " +
		"scraped them once a second: the value at the start can be up to one scrape old, so the last responses of the warm-up fall inside " +
		"the difference"
	if d := total - sent; r.Cache.L3HitRate == nil && d > 0 && sent > 0 {
		text += fmt.Sprintf(" (here %s more, %s of the requests sent)", groupDigits(d), fmtFraction(float64(d)/float64(sent)))
	}
	text += ". Health checks (HAProxy's GET /readyz to each instance every second) are counted apart and are not in these numbers; " +
		"a request HAProxy retried on another instance counts once, where it was answered."
	return text
}

func faultsSection(r *Result) section {
	tb := &table{head: []string{"at", "fault", "outcome"}, num: []bool{true, false, false}}
	for _, f := range r.Faults {
		outcome := "injected"
		if f.Error != "" {
			outcome = "failed: " + f.Error
		}
		tb.rows = append(tb.rows, []cell{c(seconds(f.AtS)), {text: f.Fault, code: true}, c(outcome)})
	}
	return section{title: "Faults", text: "Injected during the measured part; the charts over time mark each one.", table: tb}
}

func machineLine(m Machine) string {
	parts := []string{orDash(m.CPU)}
	switch {
	case m.Cores == 1:
		parts = append(parts, "1 core")
	case m.Cores > 1:
		parts = append(parts, fmt.Sprintf("%d cores", m.Cores))
	}
	if m.MemoryBytes > 0 {
		parts = append(parts, fmt.Sprintf("%.1f GiB RAM", float64(m.MemoryBytes)/(1<<30)))
	}
	if m.Hostname != "" {
		parts = append(parts, "host "+m.Hostname)
	}
	return strings.Join(parts, ", ")
}

func softwareLine(m Machine) string {
	var parts []string
	if m.OS != "" {
		parts = append(parts, m.OS)
	}
	if m.Kernel != "" {
		parts = append(parts, "kernel "+m.Kernel)
	}
	if m.Arch != "" {
		parts = append(parts, m.Arch)
	}
	if m.GoVersion != "" {
		parts = append(parts, m.GoVersion)
	}
	if m.GitCommit != "" {
		parts = append(parts, "commit "+m.GitCommit)
	} else {
		parts = append(parts, "not built from a git checkout")
	}
	return strings.Join(parts, ", ")
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// fmtMS prints milliseconds with about three significant digits.
func fmtMS(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case v < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case v < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

func fmtRate(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func fmtCPU(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// fmtHitRate prints a fraction as a percentage with one decimal.
func fmtHitRate(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" }

// fmtFraction prints a small fraction, such as an error rate, as a
// percentage with three significant digits.
func fmtFraction(f float64) string {
	if f == 0 {
		return "0%"
	}
	return strconv.FormatFloat(100*f, 'g', 3, 64) + "%"
}

func fmtObserved(v float64, unit string) string {
	switch unit {
	case "ms":
		return fmtMS(v) + " ms"
	case "%":
		if v == 0 {
			return "0%"
		}
		return strconv.FormatFloat(v, 'g', 3, 64) + "%"
	case "req/s":
		return fmtRate(v) + " req/s"
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + " " + unit
}

// seconds prints a duration given in seconds to three significant digits,
// e.g. "30 s" (for 29.99996), "2.5 s", "2 min": a run asked for 30 s ran
// 30 s, and the microseconds it missed by are the clock's, not news.
func seconds(s float64) string {
	s = roundSig3(s)
	if s >= 60 && math.Mod(s, 60) == 0 {
		return fmt.Sprintf("%d min", int(s/60))
	}
	return strconv.FormatFloat(s, 'f', -1, 64) + " s"
}

func roundSig3(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 3, 64), 64)
	return f
}

// groupDigits prints n with thousands separators: 1234567 → "1,234,567".
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// runtimeLine says where the components ran and what bringing them up and
// down cost.
func runtimeLine(r *Result) string {
	s := r.Runtime
	switch r.Runtime {
	case "process":
		s = "process (every component a local process)"
	case "docker":
		s = "docker (every component a container of the local images, on one bridge network)"
	}
	if r.UpS > 0 {
		s += fmt.Sprintf("; up in %.1f s", r.UpS)
		if r.DownS > 0 {
			s += fmt.Sprintf(", down in %.1f s", r.DownS)
		}
	}
	return s
}
