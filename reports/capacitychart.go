package reports

import (
	"cmp"
	"fmt"
	"html/template"
	"maps"
	"math"
	"slices"
	"strings"
	"time"
)

// The capacity search's part of a report: what scalelab capacity measured
// step by step, the knee, the demands and the model's prediction, with
// two charts against offered load in HTML.

// capacitySections are the capacity section and the demands behind the
// model, first in the report because they are what the run was for.
func capacitySections(r *Result) []section {
	cp := r.Capacity
	columns := []stepColumn{{"other, cores", func(s CapacityStep) string { return measuredCell(s.OtherCores, fmtCPU) }}}
	pools := slices.ContainsFunc(cp.Steps, func(s CapacityStep) bool { return s.DBPoolInUse != nil })
	if pools {
		columns = append(columns,
			stepColumn{"db pool in use", func(s CapacityStep) string {
				return measuredCell(s.DBPoolInUse, func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v) })
			}},
			stepColumn{"pool wait µs/req", func(s CapacityStep) string {
				return measuredCell(s.DBPoolWaitUSPerRequest, func(v float64) string { return fmt.Sprintf("%.1f", v) })
			}})
	}
	tb := stepTable(cp.Steps, cp.MaxRate, columns...)
	head := fmt.Sprintf("Capacity: %s requests/s under the SLO `%s`.", fmtRate(cp.MaxRate), cp.SLO)
	if cp.MaxRate == 0 {
		head = fmt.Sprintf("No step met the SLO `%s`: no capacity was measured.", cp.SLO)
	}
	capSec := section{
		title: "Capacity",
		text: head + " The arrival rate was held at each rate in turn (open model: arrivals keep coming whatever the latency), " +
			"doubled until a step broke the SLO, then bisected between the last pass and the first fail; the knee is the highest rate within the SLO. " + retriedNote(cp) +
			"Paused is how long the whole machine stopped during the step, every CPU at once, as when a virtual machine's host takes its CPUs away (the longest pause in brackets; — where not measured). " +
			"Other is the cores the rest of the machine kept busy meanwhile (other users of a shared box), outside the topology and the load generator. " +
			poolNote(pools) + "Steps in order of rate:",
		table:    tb,
		capacity: true,
	}
	if cp.MaxRate > 0 && cp.PredictedMaxRate > 0 {
		e := modelError(cp)
		capSec.after = fmt.Sprintf("Predicted against measured: the model (%s) gives %s requests/s, limited by %s; measured %s requests/s: error %+.1f%%%s.",
			cp.Model.Name, fmtRate(cp.PredictedMaxRate), orDash(cp.Model.Bottleneck), fmtRate(cp.MaxRate), e, withinNote(e))
		if bg, ok := cp.Model.Inputs["background_cores"]; ok {
			capSec.after += fmt.Sprintf(" Of the %s cores the model took %.2f as busy whatever the load", trimFloat(cp.Model.Inputs["cores"]), bg)
			o, ok := cp.Model.Inputs["other_work_cores"]
			if ok {
				capSec.after += fmt.Sprintf(" (%.2f of them other work on the machine)", o)
			}
			capSec.after += "."
			if cores := cp.Model.Inputs["cores"]; ok && o > 0.25*cores {
				capSec.after += fmt.Sprintf(" The machine was busy with other work (%.2f of %s cores): the capacity measured is what was left to the lab, and it moved as that work moved, so read both figures as this machine at that moment, not as the phase's.", o, trimFloat(cores))
			}
		}
	}
	if cp.MaxRate > 0 && cp.PredictedMaxRate > 0 && math.Abs(modelError(cp)) > 15 {
		capSec.after += " " + missReason(cp)
	}
	out := []section{capSec}
	if sec, ok := boxSection(cp); ok {
		out = append(out, sec)
	}
	if len(cp.Demands) > 0 {
		dt := &table{head: []string{"component", "CPU µs per request", "background cores"}, num: []bool{false, true, true}}
		names := slices.Sorted(maps.Keys(cp.Demands))
		slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(cp.Demands[b], cp.Demands[a]) })
		total := 0.0
		for _, n := range names {
			total += cp.Demands[n]
			bg := "—"
			if b, ok := cp.BackgroundCores[n]; ok {
				bg = fmt.Sprintf("%.3f", b)
			}
			dt.rows = append(dt.rows, []cell{c(n), c(fmtRate(1e6 * cp.Demands[n])), c(bg)})
		}
		sum := []cell{c("all, load generator included"), c(fmtRate(1e6 * total)), c("")}
		for i := range sum {
			sum[i].strong = true
		}
		dt.rows = append(dt.rows, sum)
		text := "What one more request costs each component in CPU, from the steps at or below the knee"
		if cp.DemandsMethod != "" {
			text += " (" + cp.DemandsMethod + ")"
		}
		text += ". `loadgen` is this command's own process, which shares the cores with the topology."
		sec := section{title: "Demands per request", text: text, table: dt}
		if cp.DataBytesPerUser > 0 {
			sec.after = fmt.Sprintf("The database holds %s bytes per user (tables and indexes over the users seeded).", groupDigits(int64(math.Round(cp.DataBytesPerUser))))
		}
		out = append(out, sec)
	}
	return out
}

// poolNote explains the pool columns of the capacity table when it has
// them.
func poolNote(pools bool) string {
	if !pools {
		return ""
	}
	return "DB pool in use is the fullest of the apps' database connection pools' mean share of connections in use; pool wait is the time requests waited for a connection, per request: " +
		"a full pool makes requests wait with cores to spare. "
}

// measuredCell is format(*v), or "—" where v was not measured (nil).
func measuredCell(v *float64, format func(float64) string) string {
	if v == nil {
		return "—"
	}
	return format(*v)
}

// stepColumn is a column of a step table beyond the load's: its head, and
// what it says of a step.
type stepColumn struct {
	head string
	cell func(CapacityStep) string
}

// stepTable is a search's steps in order of rate, the knee marked: the
// columns before the mark are extra's.
func stepTable(steps []CapacityStep, maxRate float64, extra ...stepColumn) *table {
	steps = slices.Clone(steps)
	slices.SortStableFunc(steps, func(a, b CapacityStep) int { return cmp.Compare(a.Offered, b.Offered) })
	tb := &table{
		head: []string{"offered /s", "achieved /s", "p50 ms", "p99 ms", "errors", "dropped", "sent late", "paused, ms"},
		num:  []bool{true, true, true, true, true, true, true, true},
	}
	for _, e := range extra {
		tb.head, tb.num = append(tb.head, e.head), append(tb.num, true)
	}
	tb.head, tb.num = append(tb.head, ""), append(tb.num, false)
	for _, s := range steps {
		mark := c("")
		switch {
		case s.Retried:
			mark = c("measured again")
		case maxRate > 0 && s.Offered == maxRate:
			mark = cell{text: "knee", status: "pass"}
		case s.Offered > maxRate:
			mark = cell{text: "over", status: "fail"}
		}
		row := []cell{c(fmtRate(s.Offered)), c(fmtRate(s.Achieved)), c(fmtMS(s.P50MS)), c(fmtMS(s.P99MS)),
			c(fmtFraction(s.ErrorRate)), c(groupDigits(s.Dropped)), c(lateCell(s)), c(pausedCell(s))}
		for _, e := range extra {
			row = append(row, c(e.cell(s)))
		}
		row = append(row, mark)
		if s.Offered == maxRate && !s.Retried {
			for i := range row {
				row[i].strong = true
			}
		}
		tb.rows = append(tb.rows, row)
	}
	return tb
}

// boxSection is the bare server's search, the machine's own ceiling, when
// there was one.
func boxSection(cp *Capacity) (section, bool) {
	b := cp.Box
	if b == nil {
		return section{}, false
	}
	cores := cp.Model.Inputs["cores"]
	tb := stepTable(b.Steps, b.MaxRate, stepColumn{"busy, cores", func(s CapacityStep) string { return fmtCPU(s.BusyCores()) }})
	shape := "no hop, no cache, no database"
	if len(b.Hops) > 0 {
		hops := make([]string, len(b.Hops))
		for i, h := range b.Hops {
			hops[i] = fmt.Sprintf("%s %s µs", h.Name, fmtRate(h.WorkUS))
		}
		shape = fmt.Sprintf("no cache, no database, but a chain of processes, one per tier on a request's way, each spending its tier's CPU: the server %s µs, then %s", fmtRate(b.FrontUS), strings.Join(hops, ", "))
	}
	p0 := fmtMS(cp.Model.Inputs["low_load_p99_ms"])
	text := fmt.Sprintf("After the search, a bare server (`scalelab burn-server`: %s) spending %s µs of CPU on every request, "+
		"what a request of this phase costs its tiers together, was searched the same way, with the same load generator, from 40%% of what the cores could serve at that cost, 25%% more each step",
		shape, fmtRate(b.WorkUS))
	// knee is what the bare server's knee says: it met what (its
	// objective) up to its MaxRate, which is how much of the cores
	// requests can use before the machine itself does limit.
	knee := func(what, busyNote, use, limit string) string {
		if b.MaxRate <= 0 {
			return "It met " + what + " at no rate. "
		}
		return fmt.Sprintf("It met %s up to %s requests/s, with %.0f%% of the cores busy%s: how much of this machine's cores requests can %s before the machine itself (queueing for the cores, the load generator beside them, the host's pauses) %s. ",
			what, fmtRate(b.MaxRate), 100*b.KneeBusy, busyNote, use, limit)
	}
	switch {
	case b.SLO != "":
		text += fmt.Sprintf(", against the room this phase leaves in its objective: %s, the p99 bound less this phase's p99 with no load (%s ms). ", b.SLO, p0)
		text += knee("that", " (the median of the attempts that passed there)", "keep busy", "adds more wait than this phase has room for")
		if b.Utilization > 0 {
			text += fmt.Sprintf("The model let this phase's requests keep that share of the cores busy, %.0f%%. ", 100*b.Utilization)
		}
		if b.PhaseShare > 0 {
			text += fmt.Sprintf("This phase's capacity is %.0f%% of the bare server's, a ratio of two searches made minutes apart that moves less than either rate when the machine itself runs slower or faster (the bare server's HTTP handling comes on top of the phase's CPU per request, so it is not a ratio of costs). ", 100*b.PhaseShare)
		}
	default: // before the room was recorded: the phase's own SLO, the model's share read off the steps
		text += ", with the same SLO. " + knee("the SLO", "", "use", "breaks the objective")
		if b.Utilization > 0 {
			text += fmt.Sprintf("The model let this phase's requests keep %.0f%% of the cores busy, read off these steps: the most the bare server had busy at a step where its p99 had grown by no more than the SLO's bound less this phase's p99 with no load (%s ms). ",
				100*b.Utilization, p0)
		}
	}
	text += "Busy is the whole machine's, from /proc/stat"
	if cores > 0 {
		text += fmt.Sprintf(", of %s cores", trimFloat(cores))
	}
	text += ". Steps in order of rate:"
	return section{title: "The machine's own ceiling", text: text, table: tb, capacity: true}, true
}

// modelError is the model's error in percent of the measured capacity.
func modelError(cp *Capacity) float64 {
	return 100 * (cp.PredictedMaxRate - cp.MaxRate) / cp.MaxRate
}

func withinNote(e float64) string {
	if math.Abs(e) <= 15 {
		return " (within 15%)"
	}
	return fmt.Sprintf(" (outside 15%% by %.1f points)", math.Abs(e)-15)
}

// lateCell is how many arrivals the load generator itself sent late in a
// step (its own stall, the machine's, or busy cores), "—" for none.
func lateCell(s CapacityStep) string {
	if s.GeneratorLate == 0 {
		return "—"
	}
	return groupDigits(s.GeneratorLate)
}

// pausedCell is how long the machine was paused during a step, with its
// longest pause: "67 (25)"; "—" when not measured.
func pausedCell(s CapacityStep) string {
	switch {
	case s.MachinePausedMS == nil:
		return "—"
	case *s.MachinePausedMS < 0.5:
		return "0"
	case s.MachinePauseMaxMS == nil:
		return fmt.Sprintf("%.0f", *s.MachinePausedMS)
	}
	return fmt.Sprintf("%.0f (%.0f)", *s.MachinePausedMS, *s.MachinePauseMaxMS)
}

// retriedNote explains the retried steps, when there are any.
func retriedNote(cp *Capacity) string {
	if !slices.ContainsFunc(cp.Steps, func(s CapacityStep) bool { return s.Retried }) {
		return ""
	}
	return "A rate was judged by the majority of up to three attempts, or at once by a first attempt that passed with room to spare (p99 within half the bound, errors and drops within half the budget): one step near the knee says little on a shared machine. " +
		"An attempt that failed while the load generator itself sent arrivals late with cores to spare (\"sent late\": the machine stalled) or the whole machine was paused for 10 ms or more (\"paused\") was measured again without counting, up to twice, unless it lost 5% of its arrivals or more with the cores saturated (an overload). " +
		"Where the search would have stopped, the lowest failed rate was voted on once more, apart from its first attempts: a pass there counts, and the search went on above it. "
}

// errorClasses is a step's failed requests by class, the most common
// first: "http 503: 53, timeout: 2".
func errorClasses(by map[string]int64) string {
	classes := classesByCount(by)
	parts := make([]string, len(classes))
	for i, k := range classes {
		parts[i] = k + ": " + groupDigits(by[k])
	}
	return strings.Join(parts, ", ")
}

// missReason says, from the first rate that failed (its last attempt, the
// one that counts), why the measured
// capacity and the model's bound differ: whether the cores were busy when
// the SLO broke, and which part of the SLO broke.
func missReason(cp *Capacity) string {
	var first *CapacityStep
	for i, s := range cp.Steps {
		if s.Retried {
			continue // the rate's verdict is its last attempt
		}
		if s.Offered > cp.MaxRate && (first == nil || s.Offered < first.Offered) {
			first = &cp.Steps[i]
		}
	}
	if first == nil {
		return "No rate above the knee was measured, so nothing says what limited it."
	}
	cores := cp.Model.Inputs["cores"]
	busy := first.BusyCores()
	var broke []string
	if first.ErrorRate > 0 {
		how := "load shed with 503 or timed out"
		if len(first.ErrorsByClass) > 0 {
			how = errorClasses(first.ErrorsByClass)
		}
		broke = append(broke, fmt.Sprintf("%s of requests failed (%s)", fmtFraction(first.ErrorRate), how))
	}
	if first.Dropped > 0 {
		broke = append(broke, fmt.Sprintf("%s arrivals were dropped", groupDigits(first.Dropped)))
	}
	if len(broke) == 0 {
		broke = append(broke, fmt.Sprintf("p99 reached %s ms", fmtMS(first.P99MS)))
	}
	if first.MachinePausedMS != nil && *first.MachinePausedMS >= 0.5 {
		broke = append(broke, fmt.Sprintf("the whole machine was paused for %.0f ms", *first.MachinePausedMS))
	}
	why := fmt.Sprintf("At the first rate that failed (%s/s) %s", fmtRate(first.Offered), strings.Join(broke, " and "))
	// expected is where the model put the break, and by which rule: the
	// bare server's knee against the room (results with box.slo), its steps
	// read against the room (before), or the M/M/1 formula.
	expected := ""
	if u, ok := cp.Model.Inputs["utilization"]; ok && u < 1 {
		p0 := fmtMS(cp.Model.Inputs["low_load_p99_ms"])
		rule := fmt.Sprintf("1 − p99₀/SLO, where p99₀ = %s ms is the median p99 of the lowest rates", p0)
		if b := cp.Box; b != nil && b.Utilization > 0 && b.SLO != "" {
			rule = fmt.Sprintf("where a bare server on this machine, each request costing %s µs, reached its knee against the room this phase leaves: the SLO's bound less its p99₀ of %s ms", fmtRate(b.WorkUS), p0)
		} else if b != nil && b.Utilization > 0 {
			rule = fmt.Sprintf("the most a bare server on this machine, each request costing %s µs, had busy while adding no more than the SLO's bound less this phase's p99₀ of %s ms to its p99", fmtRate(b.WorkUS), p0)
		}
		expected = fmt.Sprintf(" The model expected the SLO to break at %.0f%% of the cores (%s).", 100*u, rule)
	}
	if cores > 0 && busy < SaturatedShare*cores {
		return why + fmt.Sprintf(", while the machine's cores were %.0f%% busy (%.2f of %s, other work included): "+
			"the SLO broke on latency spikes before the cores ran out "+
			"(a stall that holds requests for tens of milliseconds, such as a checkpoint's fsync, garbage collection or a neighbour's burst, breaks a p99 of 50 ms at any utilization).",
			100*busy/cores, busy, trimFloat(cores)) + expected
	}
	return why + fmt.Sprintf(", with the cores %.0f%% busy (%.2f of %s, other work included).", 100*busy/max(cores, 1), busy, trimFloat(cores)) + expected
}

// capacityCharts are the hockey stick (latency against offered load) and
// throughput against offered load, the knee marked on both.
func capacityCharts(r *Result) []htmlChart {
	cp := r.Capacity
	if cp == nil || len(cp.Steps) == 0 {
		return nil
	}
	// A retried step's rate is judged by its repeat: chart the repeats.
	steps := slices.DeleteFunc(slices.Clone(cp.Steps), func(s CapacityStep) bool { return s.Retried })
	if len(steps) == 0 {
		return nil
	}
	slices.SortStableFunc(steps, func(a, b CapacityStep) int { return cmp.Compare(a.Offered, b.Offered) })
	var markers []marker
	if cp.MaxRate > 0 {
		markers = append(markers, marker{x: cp.MaxRate, label: "knee " + fmtRate(cp.MaxRate) + "/s"})
	}
	if cp.PredictedMaxRate > 0 && !math.IsInf(cp.PredictedMaxRate, 0) {
		markers = append(markers, marker{x: cp.PredictedMaxRate, label: "model " + fmtRate(cp.PredictedMaxRate) + "/s"})
	}
	top := steps[len(steps)-1].Offered
	for _, m := range markers {
		top = math.Max(top, m.x)
	}
	xAxis := axis{label: "offered load, requests/s", max: niceCeil(top * 1.05)}

	lat := &chart{title: "Latency against offered load", x: xAxis, y: axis{label: "ms (log scale)", log: true}, xUnit: "/s", yUnit: "ms", markers: markers}
	p50 := series{name: "p50", color: "#2563eb", dots: true}
	p99 := series{name: "p99", color: "#dc2626", dots: true}
	lo, hi := math.Inf(1), 0.0
	for _, s := range steps {
		for _, v := range []float64{s.P50MS, s.P99MS} {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
		p50.pts = append(p50.pts, point{x: s.Offered, y: s.P50MS})
		p99.pts = append(p99.pts, point{x: s.Offered, y: s.P99MS})
	}
	lat.series = []series{p50, p99}
	if bound := sloP99(cp.SLO); bound > 0 {
		lat.series = append(lat.series, series{name: "SLO p99", color: "#9ca3af", dash: true,
			pts: []point{{x: 0, y: bound}, {x: lat.x.max, y: bound}}})
		hi = math.Max(hi, bound)
	}
	if math.IsInf(lo, 1) {
		lo = 0.1
	}
	lat.y.min = math.Pow(10, math.Floor(math.Log10(lo)))
	lat.y.max = math.Pow(10, math.Ceil(math.Log10(hi*1.01)))

	thr := &chart{title: "Throughput against offered load", x: xAxis, y: axis{label: "requests/s"}, xUnit: "/s", yUnit: "/s", markers: markers}
	achieved := series{name: "achieved", color: "#2563eb", dots: true}
	ymax := 0.0
	for _, s := range steps {
		achieved.pts = append(achieved.pts, point{x: s.Offered, y: s.Achieved})
		ymax = math.Max(ymax, s.Achieved)
	}
	thr.series = []series{achieved, {name: "achieved = offered", color: "#9ca3af", dash: true,
		pts: []point{{x: 0, y: 0}, {x: xAxis.max, y: xAxis.max}}}}
	thr.y.max = niceCeil(math.Max(ymax, top) * 1.05)

	return []htmlChart{
		{SVG: template.HTML(lat.svg()), Caption: "The hockey stick: p50 and p99 of each step against the rate offered, on a log scale. Latency stays flat while the components keep up and climbs once a queue builds; the knee is the highest rate within the SLO, the model's line its prediction. Hover over a dot for its values."},
		{SVG: template.HTML(thr.svg()), Caption: "Throughput against offered load: below the knee achieved follows offered (the dashed diagonal); past it the system completes less than it is given, and the difference queues, times out or is dropped."},
	}
}

// sloP99 reads the latency bound, in ms, out of an SLO as written by
// scalelab capacity ("p99<50ms, ..."); 0 when there is none.
func sloP99(slo string) float64 {
	first, _, _ := strings.Cut(slo, ",")
	v, ok := strings.CutPrefix(strings.TrimSpace(first), "p99<")
	if !ok {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0
	}
	return float64(d) / float64(time.Millisecond)
}
