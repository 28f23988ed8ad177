package reports

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// The charts are drawn as inline SVG by this file: no script, no library,
// nothing fetched, so report.html opens anywhere and stays the same forever.

const (
	chartW      = 720
	chartH      = 260
	chartLeft   = 56
	chartRight  = 36
	chartTop    = 30
	chartBottom = 40
)

type point struct {
	x, y float64
	// label is the value shown on hover; "" for the default, "series at
	// x: y".
	label string
}

type series struct {
	name  string
	color string
	dash  bool
	// dots marks every point, where the points are samples worth seeing
	// (the percentiles of the latency distribution).
	dots bool
	pts  []point
}

type tick struct {
	v     float64
	label string
}

type axis struct {
	label    string
	min, max float64
	ticks    []tick
	// log draws the axis on a log10 scale; min must then be > 0, and values
	// below it are drawn at min.
	log bool
}

type chart struct {
	title  string // for screen readers
	x, y   axis
	series []series
	// xUnit and yUnit label the values shown on hover.
	xUnit, yUnit string
	// markers are vertical lines at x, e.g. a fault injected at 10 s.
	markers []marker
}

type marker struct {
	x     float64
	label string
}

// svg draws the chart. Axes without ticks get "nice" ones.
func (c *chart) svg() string {
	var b strings.Builder
	pw := float64(chartW - chartLeft - chartRight)
	ph := float64(chartH - chartTop - chartBottom)
	if c.x.max <= c.x.min {
		c.x.max = c.x.min + 1
	}
	if c.y.max <= c.y.min {
		c.y.max = c.y.min + 1
	}
	sx := func(x float64) float64 { return chartLeft + (x-c.x.min)/(c.x.max-c.x.min)*pw }
	sy := func(y float64) float64 { return chartTop + ph - (y-c.y.min)/(c.y.max-c.y.min)*ph }
	if c.y.log {
		lo, hi := math.Log10(c.y.min), math.Log10(c.y.max)
		sy = func(y float64) float64 {
			return chartTop + ph - (math.Log10(math.Max(y, c.y.min))-lo)/(hi-lo)*ph
		}
	}
	if c.x.ticks == nil {
		c.x.ticks = niceTicks(c.x.min, c.x.max, 8)
	}
	if c.y.ticks == nil && c.y.log {
		c.y.ticks = logTicks(c.y.min, c.y.max)
	} else if c.y.ticks == nil {
		c.y.ticks = niceTicks(c.y.min, c.y.max, 6)
	}

	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, esc(c.title))
	fmt.Fprintf(&b, `<title>%s</title>`, esc(c.title))
	fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%g" height="%g" fill="#fff" stroke="#d1d5db"/>`, chartLeft, chartTop, pw, ph)
	b.WriteString(`<g font-size="11" fill="#6b7280">`)
	for _, t := range c.y.ticks {
		y := sy(t.v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%g" y1="%.1f" y2="%.1f" stroke="#eef0f3"/>`, chartLeft, chartLeft+pw, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`, chartLeft-6, y, esc(t.label))
	}
	for _, t := range c.x.ticks {
		x := sx(t.v)
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%d" y2="%g" stroke="#eef0f3"/>`, x, x, chartTop, chartTop+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%g" text-anchor="middle">%s</text>`, x, chartTop+ph+15, esc(t.label))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%d" text-anchor="middle">%s</text>`, chartLeft+pw/2, chartH-6, esc(c.x.label))
	fmt.Fprintf(&b, `<text transform="translate(13 %g) rotate(-90)" text-anchor="middle">%s</text>`, chartTop+ph/2, esc(c.y.label))
	b.WriteString(`</g>`)

	drawn := 0
	for _, s := range c.series {
		if len(s.pts) == 0 {
			continue
		}
		drawn++
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.8" stroke-linejoin="round"`, s.color)
		if s.dash {
			b.WriteString(` stroke-dasharray="5 4"`)
		}
		b.WriteString(` points="`)
		for i, p := range s.pts {
			if i > 0 {
				b.WriteByte(' ')
			}
			x := sx(math.Min(math.Max(p.x, c.x.min), c.x.max))
			y := sy(math.Min(math.Max(p.y, c.y.min), c.y.max))
			fmt.Fprintf(&b, "%.1f,%.1f", x, y)
		}
		b.WriteString(`"/>`)
		if s.dots {
			for _, p := range s.pts {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.2" fill="%s"/>`, sx(math.Min(math.Max(p.x, c.x.min), c.x.max)), sy(math.Min(math.Max(p.y, c.y.min), c.y.max)), s.color)
			}
		} else if len(s.pts) == 1 { // a line of one point is invisible
			p := s.pts[0]
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`, sx(p.x), sy(p.y), s.color)
		}
	}
	// Values on hover: an invisible dot with a <title> at every point.
	b.WriteString(`<g fill="#000" fill-opacity="0">`)
	for _, s := range c.series {
		for _, p := range s.pts {
			x := sx(math.Min(math.Max(p.x, c.x.min), c.x.max))
			y := sy(math.Min(math.Max(p.y, c.y.min), c.y.max))
			label := p.label
			if label == "" {
				label = fmt.Sprintf("%s at %s %s: %s %s", s.name, trimFloat(p.x), c.xUnit, trimFloat(p.y), c.yUnit)
			}
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4"><title>%s</title></circle>`, x, y, esc(strings.TrimSpace(label)))
		}
	}
	b.WriteString(`</g>`)
	// Labels of markers close together go on rows of their own, so that
	// a knee next to the model's prediction stays readable.
	var rowEnds []float64 // right end of the last label on each row
	for _, m := range c.markers {
		if m.x < c.x.min || m.x > c.x.max {
			continue
		}
		x := sx(m.x)
		const charWidth = 5.6 // at font-size 10, a generous average
		row := 0
		for row < len(rowEnds) && rowEnds[row] > x {
			row++
		}
		if row == len(rowEnds) {
			rowEnds = append(rowEnds, 0)
		}
		rowEnds[row] = x + 3 + charWidth*float64(len([]rune(m.label))) + 4
		fmt.Fprintf(&b, `<g><line x1="%.1f" x2="%.1f" y1="%d" y2="%g" stroke="#b91c1c" stroke-width="1.2" stroke-dasharray="3 3"/>`, x, x, chartTop, chartTop+ph)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" fill="#b91c1c">%s</text>`, x+3, chartTop+11+12*row, esc(m.label))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="8" height="%g" fill="#000" fill-opacity="0"><title>%s</title></rect></g>`, x-4, chartTop, ph, esc(m.label))
	}
	if drawn == 0 {
		fmt.Fprintf(&b, `<text x="%g" y="%g" text-anchor="middle" font-size="13" fill="#9ca3af">no data</text>`, chartLeft+pw/2, chartTop+ph/2)
	}

	// Legend, above the plot.
	lx, ly := float64(chartLeft), float64(chartTop/2)
	for _, s := range c.series {
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="5 4"`
		}
		fmt.Fprintf(&b, `<line x1="%g" x2="%g" y1="%g" y2="%g" stroke="%s" stroke-width="2"%s/>`, lx, lx+18, ly, ly, s.color, dash)
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="11" fill="#374151" dominant-baseline="middle">%s</text>`, lx+23, ly, esc(s.name))
		lx += 23 + 7*float64(len([]rune(s.name))) + 18
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func esc(s string) string { return html.EscapeString(s) }

// trimFloat prints v with at most three decimals and up to four significant
// digits, for hover labels.
func trimFloat(v float64) string {
	if math.Abs(v) >= 1000 {
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(roundSig(v), 'g', 4, 64)
}

// niceTicks returns about n ticks at round numbers from lo to hi.
func niceTicks(lo, hi float64, n int) []tick {
	step := niceStep((hi-lo)/float64(n-1), false)
	var ticks []tick
	for v := math.Ceil(lo/step-1e-9) * step; v <= hi+step*1e-9; v += step {
		ticks = append(ticks, tick{v: v, label: tickLabel(v, step)})
	}
	return ticks
}

// logAxis sets a log axis's range to whole decades around the positive
// values in vs (0.1 to 1 when there are none).
func logAxis(a *axis, vs []float64) {
	lo, hi := math.Inf(1), 0.0
	for _, v := range vs {
		if v > 0 {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
	}
	if hi == 0 {
		lo, hi = 0.1, 1
	}
	a.log = true
	a.min = math.Pow(10, math.Floor(math.Log10(lo)+1e-9))
	a.max = math.Pow(10, math.Ceil(math.Log10(hi)-1e-9))
	if a.max <= a.min {
		a.max = a.min * 10
	}
}

// logTicks marks each decade from lo to hi, and 2× and 5× between them when
// the axis spans fewer than three decades.
func logTicks(lo, hi float64) []tick {
	decades := math.Round(math.Log10(hi / lo))
	var ticks []tick
	for d := lo; d <= hi*(1+1e-9); d *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := d * m
			if v > hi*(1+1e-9) || (m != 1 && decades >= 3) {
				continue
			}
			ticks = append(ticks, tick{v: v, label: strconv.FormatFloat(roundSig(v), 'f', -1, 64)})
		}
	}
	return ticks
}

// roundSig drops the floating-point dust of repeated multiplication.
func roundSig(v float64) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	return f
}

// niceStep rounds x to 1, 2, 2.5 or 5 times a power of ten (up, or to the
// nearest when round is set).
func niceStep(x float64, round bool) float64 {
	if !(x > 0) || math.IsInf(x, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(x)))
	f := x / mag
	for _, s := range []float64{1, 2, 2.5, 5, 10} {
		if (round && f < s*1.2) || (!round && f <= s*(1+1e-9)) {
			return s * mag
		}
	}
	return 10 * mag
}

// niceCeil rounds hi up to a round number, so an axis ends on a tick.
func niceCeil(hi float64) float64 {
	if !(hi > 0) {
		return 1
	}
	step := niceStep(hi/5, false)
	return math.Ceil(hi/step-1e-9) * step
}

func tickLabel(v, step float64) string {
	decimals := 0
	for decimals < 6 && math.Abs(step*math.Pow(10, float64(decimals))-math.Round(step*math.Pow(10, float64(decimals)))) > 1e-6 {
		decimals++
	}
	scale := math.Pow(10, float64(decimals))
	return strconv.FormatFloat(math.Round(v*scale)/scale+0, 'f', -1, 64)
}

// nines maps a percentile to the percentile axis: 0 → 0, 90 → 1, 99 → 2,
// 99.9 → 3; each step right is ten times rarer.
func nines(p float64) float64 {
	if p >= 100 {
		return math.Inf(1)
	}
	if p <= 0 {
		return 0
	}
	return -math.Log10(1 - p/100)
}

// faultMarkers marks each fault of r on a chart over time.
func faultMarkers(r *Result) []marker {
	var ms []marker
	for _, f := range r.Faults {
		label := f.Fault
		if f.Error != "" {
			label += " (failed)"
		}
		ms = append(ms, marker{x: f.AtS, label: label})
	}
	return ms
}

// timeChart is a chart over the seconds of the measured part.
func timeChart(r *Result, title, yLabel, yUnit string) *chart {
	c := &chart{title: title, x: axis{label: "seconds"}, y: axis{label: yLabel}, xUnit: "s", yUnit: yUnit, markers: faultMarkers(r)}
	c.x.max = math.Ceil(r.DurationS)
	return c
}

func throughputChart(r *Result) *chart {
	c := timeChart(r, "Throughput over time: operations completed and offered per second", "per second", "/s")
	achieved := series{name: "operations/s achieved", color: "#2563eb"}
	offered := series{name: "offered (operations/s)", color: "#9ca3af", dash: true}
	requests := series{name: "HTTP requests/s", color: "#f59e0b"}
	ops, hasOps := opRates(r)
	var top float64
	hasOffered, differ := false, false
	for _, s := range measuredSeconds(r) {
		t := float64(s.T)
		op := s.Rate
		if hasOps {
			op = ops[s.T]
		}
		achieved.pts = append(achieved.pts, point{x: t, y: op})
		offered.pts = append(offered.pts, point{x: t, y: s.Offered})
		requests.pts = append(requests.pts, point{x: t, y: s.Rate})
		top = math.Max(top, math.Max(math.Max(op, s.Rate), s.Offered))
		hasOffered = hasOffered || s.Offered > 0
		differ = differ || math.Abs(op-s.Rate) > 0.5
		c.x.max = math.Max(c.x.max, t)
	}
	c.series = []series{achieved}
	if hasOffered {
		c.series = append(c.series, offered)
	}
	if differ {
		c.series = append(c.series, requests)
	}
	c.y.max = niceCeil(top * 1.05)
	return c
}

func errorsChart(r *Result) *chart {
	c := timeChart(r, "Errors, throttled and dropped per second", "count per second", "")
	errs := series{name: "errors", color: "#dc2626"}
	thr := series{name: "throttled (429)", color: "#f59e0b"}
	drop := series{name: "dropped", color: "#6b7280", dash: true}
	var top float64
	for _, s := range measuredSeconds(r) {
		t := float64(s.T)
		errs.pts = append(errs.pts, point{x: t, y: float64(s.Errors)})
		thr.pts = append(thr.pts, point{x: t, y: float64(s.Throttled)})
		drop.pts = append(drop.pts, point{x: t, y: float64(s.Dropped)})
		top = math.Max(top, float64(max(s.Errors, s.Throttled, s.Dropped)))
		c.x.max = math.Max(c.x.max, t)
	}
	c.series = []series{errs, thr, drop}
	c.y.max = niceCeil(math.Max(top*1.05, 5))
	return c
}

func latencyChart(r *Result) *chart {
	c := timeChart(r, "Latency over time: p50 and p99 of the requests completed each second, in milliseconds", "ms (log scale)", "ms")
	p50 := series{name: "p50", color: "#059669"}
	p99 := series{name: "p99", color: "#dc2626"}
	var values []float64
	for _, s := range measuredSeconds(r) {
		if s.Requests == 0 && s.P50MS == 0 && s.P99MS == 0 {
			continue // nothing completed: no latency to draw
		}
		p50.pts = append(p50.pts, point{x: float64(s.T), y: s.P50MS})
		p99.pts = append(p99.pts, point{x: float64(s.T), y: s.P99MS})
		values = append(values, s.P50MS, s.P99MS)
		c.x.max = math.Max(c.x.max, float64(s.T))
	}
	c.series = []series{p50, p99}
	logAxis(&c.y, values)
	return c
}

// paletteColor is the i-th of eight colours told apart easily.
func paletteColor(i int) string {
	colors := [...]string{"#2563eb", "#dc2626", "#059669", "#7c3aed", "#f59e0b", "#0891b2", "#db2777", "#4b5563"}
	return colors[i%len(colors)]
}

// operationsChart draws each operation's p99 per second; nil when no
// operation has a series.
func operationsChart(r *Result) *chart {
	c := timeChart(r, "p99 latency of each operation per second, in milliseconds", "ms (log scale)", "ms")
	var values []float64
	for i := range r.Operations {
		op := &r.Operations[i]
		s := series{name: op.Name + " p99", color: paletteColor(i)}
		for _, p := range measuredOpSeconds(r, op) {
			if p.Requests == 0 {
				continue
			}
			s.pts = append(s.pts, point{x: float64(p.T), y: p.P99MS})
			values = append(values, p.P99MS)
		}
		if len(s.pts) > 0 {
			c.series = append(c.series, s)
		}
	}
	if len(c.series) == 0 {
		return nil
	}
	logAxis(&c.y, values)
	return c
}

// cacheChart draws each tier's hit rate per second; nil when the run did
// not record it.
func cacheChart(r *Result) *chart {
	if len(r.CacheSeries) == 0 {
		return nil
	}
	c := timeChart(r, "Cache hit rate per tier per second: hits per lookup, in percent", "hit rate %", "%")
	tiers := []struct {
		name, color string
		get         func(CacheSecond) *float64
	}{
		{"L1 (in-process)", "#2563eb", func(s CacheSecond) *float64 { return s.L1 }},
		{"L2 (Redis)", "#dc2626", func(s CacheSecond) *float64 { return s.L2 }},
		{"L3 (CDN)", "#059669", func(s CacheSecond) *float64 { return s.L3 }},
	}
	for _, tier := range tiers {
		s := series{name: tier.name, color: tier.color}
		for _, p := range r.CacheSeries {
			if v := tier.get(p); v != nil && inMeasured(r, p.T, 0) {
				s.pts = append(s.pts, point{x: float64(p.T), y: 100 * *v})
			}
		}
		if len(s.pts) > 0 {
			c.series = append(c.series, s)
		}
	}
	if len(c.series) == 0 {
		return nil
	}
	c.y.max = 100
	return c
}

// replicaChart draws each replica's lag and write-to-visible delay per
// second; nil when the run did not record them.
func replicaChart(r *Result) *chart {
	c := timeChart(r, "Replica lag and write-to-visible delay per second, in milliseconds", "ms (log scale)", "ms")
	var values []float64
	for i, rep := range r.Replicas {
		lag := series{name: rep.Name + " lag", color: paletteColor(i), dash: true}
		vis := series{name: rep.Name + " write-to-visible p99", color: paletteColor(i)}
		for _, p := range rep.Series {
			if !inMeasured(r, p.T, 0) {
				continue
			}
			lag.pts = append(lag.pts, point{x: float64(p.T), y: p.LagMS})
			values = append(values, p.LagMS)
			if p.VisibleMSP99 != nil {
				vis.pts = append(vis.pts, point{x: float64(p.T), y: *p.VisibleMSP99})
				values = append(values, *p.VisibleMSP99)
			}
		}
		for _, s := range []series{lag, vis} {
			if len(s.pts) > 0 {
				c.series = append(c.series, s)
			}
		}
	}
	if len(c.series) == 0 {
		return nil
	}
	logAxis(&c.y, values)
	return c
}

func distributionChart(r *Result) *chart {
	c := &chart{
		title: "Latency distribution of all requests by percentile, in milliseconds",
		x:     axis{label: "percentile"},
		y:     axis{label: "ms (log scale)"},
	}
	// The axis runs to the highest finite nines among the points, at least
	// 99.99% and at most 99.9999%; the maximum (100%) sits at its end.
	last := 4.0
	var values []float64
	for _, p := range r.LatencyDistribution {
		if n := nines(p.Percentile); !math.IsInf(n, 1) {
			last = math.Max(last, math.Ceil(n-1e-9))
		}
		values = append(values, p.ValueMS)
	}
	last = math.Min(last, 6)
	c.x.max = last
	for i := 0; i <= int(last); i++ {
		label := "0%"
		if i > 0 {
			label = strconv.FormatFloat(100-100*math.Pow(10, -float64(i)), 'f', max(0, i-2), 64) + "%"
		}
		c.x.ticks = append(c.x.ticks, tick{v: float64(i), label: label})
	}
	s := series{name: "all requests", color: "#7c3aed", dots: true}
	for _, p := range r.LatencyDistribution {
		name := "p" + strconv.FormatFloat(p.Percentile, 'f', -1, 64)
		if p.Percentile >= 100 {
			name = "max"
		}
		s.pts = append(s.pts, point{x: math.Min(nines(p.Percentile), last), y: p.ValueMS, label: name + ": " + fmtMS(p.ValueMS) + " ms"})
	}
	c.series = []series{s}
	logAxis(&c.y, values)
	return c
}
