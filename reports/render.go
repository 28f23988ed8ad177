package reports

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A report is built once as a neutral document and then written as Markdown
// or HTML, so both formats always show the same numbers.
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
	table *table
	items []string
	empty string // shown when there is no table and no items
}

type table struct {
	head []string
	num  []bool // right-aligned numeric columns
	rows [][]cell
}

type cell struct {
	text   string
	code   bool
	status string // "pass" or "fail" for threshold verdicts
	strong bool   // the "all requests" row
}

func c(s string) cell { return cell{text: s} }

func buildDocument(r *Result) document {
	d := document{title: fmt.Sprintf("scalelab run: %s on phase %d", orDash(r.Scenario), r.Phase)}

	phase := strconv.Itoa(r.Phase)
	if r.Topology != "" {
		phase += " — " + r.Topology
	}
	d.facts = append(d.facts, fact{key: "Phase", value: phase})
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

	d.sections = append(d.sections, totalsSection(r))
	if len(r.Totals.ErrorsByClass) > 0 {
		d.sections = append(d.sections, errorsSection(r))
	}
	d.sections = append(d.sections, operationsSection("Operations", "operation", r.Operations, &r.Totals,
		"Latency in milliseconds from each request's scheduled start, so time spent queueing counts."))
	if len(r.Requests) > 0 {
		d.sections = append(d.sections, operationsSection("HTTP requests", "request", r.Requests, nil,
			"Each HTTP exchange on its own (an operation may send several)."))
	}
	d.sections = append(d.sections, thresholdsSection(r))
	if len(r.Counters) > 0 {
		d.sections = append(d.sections, countersSection(r))
	}
	d.sections = append(d.sections, cacheSection(r), replicasSection(r))
	if r.Generator != nil {
		d.sections = append(d.sections, generatorSection(r))
	}
	if len(r.Components) > 0 {
		d.sections = append(d.sections, componentsSection(r))
	}
	if len(r.Backends) > 0 {
		d.sections = append(d.sections, backendsSection(r))
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
		table: &table{
			head: []string{"requests", "rate (req/s)", "offered (req/s)", "errors", "error rate", "throttled", "dropped"},
			num:  []bool{true, true, true, true, true, true, true},
			rows: [][]cell{{
				c(groupDigits(t.Requests)), c(fmtRate(t.Rate)), c(offered), c(groupDigits(t.Errors)),
				c(fmtFraction(t.ErrorRate())), c(groupDigits(t.Throttled)), c(groupDigits(t.Dropped)),
			}},
		},
	}
}

func errorsSection(r *Result) section {
	tb := &table{head: []string{"class", "count", "share of requests"}, num: []bool{false, true, true}}
	classes := slices.Sorted(maps.Keys(r.Totals.ErrorsByClass))
	slices.SortStableFunc(classes, func(a, b string) int {
		return cmp.Compare(r.Totals.ErrorsByClass[b], r.Totals.ErrorsByClass[a])
	})
	for _, class := range classes {
		n := r.Totals.ErrorsByClass[class]
		share := 0.0
		if r.Totals.Requests > 0 {
			share = float64(n) / float64(r.Totals.Requests)
		}
		tb.rows = append(tb.rows, []cell{c(class), c(groupDigits(n)), c(fmtFraction(share))})
	}
	return section{title: "Errors by class", table: tb}
}

func operationsSection(title, what string, ops []Operation, total *Totals, text string) section {
	tb := &table{
		head: []string{what, "count", "rate (req/s)", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "throttled"},
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
	return section{title: "Cache hit rate", text: "— means the phase has no such tier.", table: tb}
}

func replicasSection(r *Result) section {
	if len(r.Replicas) == 0 {
		return section{title: "Replicas", empty: "No read replicas in this phase."}
	}
	tb := &table{
		head: []string{"replica", "lag p50 (s)", "lag max (s)", "write-to-visible p50 (ms)", "p99 (ms)", "max (ms)", "probes", "not visible in time"},
		num:  []bool{false, true, true, true, true, true, true, true},
	}
	for _, rep := range r.Replicas {
		// Results written before the probe counts existed have a p99 only.
		p50, mx, probes, timeouts := fmtMS(rep.VisibleMSP50), fmtMS(rep.VisibleMSMax), groupDigits(rep.VisibleProbes), groupDigits(rep.VisibleTimeouts)
		if rep.VisibleProbes == 0 {
			p50, mx, probes, timeouts = "—", "—", "—", "—"
		}
		tb.rows = append(tb.rows, []cell{c(rep.Name), c(fmtSeconds(rep.LagSP50)), c(fmtSeconds(rep.LagSMax)),
			c(p50), c(fmtMS(rep.VisibleMSP99)), c(mx), c(probes), c(timeouts)})
	}
	return section{
		title: "Replicas",
		text: "Lag is how far each replica was behind the primary, sampled on the primary. Write-to-visible is what a client reading the replica saw: " +
			"from the primary acknowledging a small probe write until a read on the replica returned it. A probe not visible " +
			"within the probe's timeout (5 s by default) counts at the timeout in the percentiles.",
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

func componentsSection(r *Result) section {
	tb := &table{
		head: []string{"component", "CPU s", "share of CPU", "CPU µs per request"},
		num:  []bool{false, true, true, true},
	}
	var total float64
	for _, comp := range r.Components {
		total += comp.CPUS
	}
	for _, comp := range r.Components {
		share, perReq := "—", "—"
		if total > 0 {
			share = fmtHitRate(comp.CPUS / total)
		}
		if r.Totals.Requests > 0 {
			perReq = fmtRate(1e6 * comp.CPUS / float64(r.Totals.Requests))
		}
		tb.rows = append(tb.rows, []cell{c(comp.Name), c(fmtCPU(comp.CPUS)), c(share), c(perReq)})
	}
	return section{
		title: "CPU by component",
		text:  "CPU time (user + system) during the measured part of the run; per request is what the capacity model projects from.",
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
	return section{title: "HAProxy backends", table: tb}
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

// fmtSeconds prints a replica lag in seconds.
func fmtSeconds(v float64) string {
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

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

// seconds prints a duration given in seconds, e.g. "30 s", "2.5 s", "2 min".
func seconds(s float64) string {
	d := time.Duration(s * float64(time.Second)).Round(time.Millisecond)
	if d >= time.Minute && d%time.Minute == 0 {
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " s"
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
