package reports

import (
	"bytes"
	"math"
	"regexp"
	"strings"
	"testing"
)

// readAfterWrite is a run whose one operation sends two HTTP requests
// (a PUT, then a GET), 500 operations/s for 30 s, ending with an
// 8-request sliver of a 31st second as the graceful stop left it.
func readAfterWrite() *Result {
	r := &Result{SchemaVersion: SchemaVersion, Phase: 3, Scenario: "read-after-write", DurationS: 30}
	op := Operation{Name: "read-after-write", Count: 15000, Rate: 500}
	for i := 0; i < 30; i++ {
		r.Series = append(r.Series, Second{T: i, Requests: 1000, Rate: 1000, Offered: 500, P50MS: 2, P99MS: 10})
		op.Series = append(op.Series, OpSecond{T: i, Requests: 500, Rate: 500, P50MS: 2, P99MS: 10})
	}
	r.Series = append(r.Series, Second{T: 30, Requests: 8, Rate: 1193.3, Offered: 149.2, P50MS: 6, P99MS: 8})
	op.Series = append(op.Series, OpSecond{T: 30, Requests: 4, Rate: 596.7, P50MS: 6, P99MS: 8})
	r.Operations = []Operation{op}
	r.Requests = []Operation{{Name: "PUT /api/v1/users/{id}", Count: 15000, Rate: 500}, {Name: "GET /api/v1/users/{id} (after write)", Count: 15000, Rate: 500}}
	r.Totals = Totals{Requests: 30000, Rate: 1000, OfferedRate: 500, LatencyMS: Latency{P50: 2, P99: 10}}
	return r
}

func seriesMax(c *chart, name string) float64 {
	top := math.Inf(-1)
	for _, s := range c.series {
		if s.name == name {
			for _, p := range s.pts {
				top = math.Max(top, p.y)
			}
		}
	}
	return top
}

// Operations and HTTP requests are apart: offered counts operations, so
// achieved operations/s is drawn against it and requests/s on its own line.
func TestOperationsApartFromRequests(t *testing.T) {
	r := readAfterWrite()
	c := throughputChart(r)
	if got := seriesMax(c, "operations/s achieved"); got != 500 {
		t.Errorf("operations/s achieved peaks at %v, want 500 (the offered rate)", got)
	}
	if got := seriesMax(c, "HTTP requests/s"); got != 1000 {
		t.Errorf("HTTP requests/s peaks at %v, want 1000 (two per operation)", got)
	}
	var b bytes.Buffer
	if err := RenderMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| operations | ops/s | offered (ops/s) | HTTP requests | req/s |",
		"| 15,000 | 500.0 | 500.0 | 30,000 | 1000.0 |",
		"| operation | count | rate (ops/s) |",
		"It completed 500.0 operations/s of the 500.0 offered (1000.0 HTTP requests/s: an operation sends more than one request), with a median latency (p50) of 2.00 ms",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// The total over all requests sits with the requests, not the operations.
	ops := b.String()[strings.Index(b.String(), "## Operations"):strings.Index(b.String(), "## HTTP requests")]
	if strings.Contains(ops, "all requests") {
		t.Errorf("the operations table has the all-requests row:\n%s", ops)
	}
}

// A sliver of a second after the measured part is not drawn as a second.
func TestTailSliverNotPlotted(t *testing.T) {
	r := readAfterWrite()
	if got := seriesMax(throughputChart(r), "HTTP requests/s"); got > 1000 {
		t.Errorf("throughput peaks at %v: the tail sliver (1193/s) was plotted", got)
	}
	if n := len(measuredSeconds(r)); n != 30 {
		t.Errorf("measuredSeconds kept %d seconds, want 30", n)
	}
	if n := len(measuredOpSeconds(r, &r.Operations[0])); n != 30 {
		t.Errorf("measuredOpSeconds kept %d seconds, want 30", n)
	}
	// With the interval recorded, a last short second goes; a long one stays.
	r.DurationS = 30.5
	r.Series[30].IntervalS = 0.1
	if n := len(measuredSeconds(r)); n != 30 {
		t.Errorf("a 0.1 s last second kept: %d seconds, want 30", n)
	}
	r.Series[30].IntervalS = 0.5
	if n := len(measuredSeconds(r)); n != 31 {
		t.Errorf("a 0.5 s last second dropped: %d seconds, want 31", n)
	}
}

// Prose with `code` spans is code in both formats, never backslashes.
func TestCodeSpansInProse(t *testing.T) {
	r := &Result{Phase: 1, Scenario: "read-heavy", ScenarioDescription: "The default scenario of `make phase-1`.",
		Counters: map[string]int64{"stale_reads": 0}, Notes: []string{"see the stale_reads counter"}}
	var md, page bytes.Buffer
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := RenderHTML(&page, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), "The default scenario of `make phase-1`.") {
		t.Errorf("Markdown lacks the code span:\n%s", md.String())
	}
	if strings.Contains(md.String(), `\`+"`") || strings.Contains(md.String(), `stale\_reads`) {
		t.Errorf("Markdown has backslash escapes where none are needed")
	}
	if !strings.Contains(page.String(), "The default scenario of <code>make phase-1</code>.") {
		t.Errorf("HTML lacks <code>make phase-1</code>")
	}
	if strings.Contains(page.String(), `\`) || strings.Contains(page.String(), "`") {
		t.Errorf("HTML has a literal backslash or backtick")
	}
}

func TestDurationRounded(t *testing.T) {
	r := &Result{Phase: 1, DurationS: 29.999961026, WarmupS: 5}
	var b bytes.Buffer
	if err := RenderMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "for 30 s after a 5 s warm-up") || strings.Contains(b.String(), "29.99") {
		t.Errorf("duration not rounded:\n%s", b.String())
	}
}

// The CPU table runs busiest first, with a total row.
func TestCPUTableOrder(t *testing.T) {
	r := &Result{Phase: 3, Totals: Totals{Requests: 1000},
		Components: []Component{{Name: "redis", CPUS: 0.5}, {Name: "app-1", CPUS: 2}, {Name: "haproxy", CPUS: 1}, {Name: "app-2", CPUS: 2}}}
	s := componentsSection(r)
	var names []string
	for _, row := range s.table.rows {
		names = append(names, row[0].text)
	}
	if got, want := strings.Join(names, ","), "app-1,app-2,haproxy,redis,all components"; got != want {
		t.Errorf("CPU rows %s, want %s", got, want)
	}
	if last := s.table.rows[len(s.table.rows)-1]; last[1].text != "5.50" || last[3].text != "5500.0" || !last[0].strong {
		t.Errorf("total row %+v, want 5.50 s, 5500.0 µs per request, strong", last)
	}
}

// The page says why HAProxy's counts differ from the requests sent.
func TestBackendsExplained(t *testing.T) {
	r := &Result{Phase: 3, Totals: Totals{Requests: 60000},
		Backends: []Backend{{Name: "app-1", Requests: 20176}, {Name: "app-2", Requests: 20175}, {Name: "app-3", Requests: 20174}}}
	s := backendsSection(r)
	for _, want := range []string{"answered 60,525 requests; the load generator sent 60,000", "here 525 more", "once a second", "warm-up", "Health checks", "retried"} {
		if !strings.Contains(s.after, want) {
			t.Errorf("explanation lacks %q: %s", want, s.after)
		}
	}
	r.Cache.L3HitRate = Float(0.745)
	if s := backendsSection(r); !strings.Contains(s.after, "Varnish") {
		t.Errorf("phase 4's explanation does not mention the CDN: %s", s.after)
	}
}

// "What this run shows" gives the phase's addition, the change against a
// baseline with verdicts and the reason, definitions and links.
func TestWhatThisRunShows(t *testing.T) {
	base := run(1, 2000, 1, 5)
	base.Totals.OfferedRate = 2000
	r := run(2, 2000, 0.8, 7)
	r.Phase = 2
	r.Totals.OfferedRate = 2000
	r.Cache.L1HitRate = Float(0.71)
	r.Operations[0].Rate = r.Totals.Rate
	var b bytes.Buffer
	err := RenderMarkdown(&b, r, WithBaseline(base, "../phase-1-read-heavy/report.html"),
		WithLinks("../../../README.md", Link{"next phase", "../phase-3-read-heavy/report.html"}))
	if err != nil {
		t.Fatal(err)
	}
	md := b.String()
	shows := md[strings.Index(md, "## What this run shows"):strings.Index(md, "## Totals")]
	for _, want := range []string{
		"Phase 2. Adds a separate PostgreSQL",
		"| figure | phase 1 | phase 2 (this run) | change |",
		"| p50 (ms) | 1.00 | 0.805 | -19.7% faster (p<0.001) |",
		"| L1 hit rate | — | 71.0% | new in this phase |",
		"because the L1 cache arrived",
		"The system kept up with the offered load",
		"[the baseline: phase 1, read-heavy](../phase-1-read-heavy/report.md)",
		"[next phase](../phase-3-read-heavy/report.md)",
		"[the scalelab README](../../../README.md)",
		"- **offered:**", "- **hit rate (per tier):** Hits per lookup", "- **p50, p90, p99",
	} {
		if !strings.Contains(shows, want) {
			t.Errorf("What this run shows lacks %q:\n%s", want, shows)
		}
	}
	if strings.Index(md, "## What this run shows") > strings.Index(md, "## Totals") {
		t.Error("What this run shows is not at the top")
	}
}

// The HTML page has the charts over time with fault markers, values on
// hover, and the per-second tier and replica series when the run has them.
func TestCharts(t *testing.T) {
	r := readAfterWrite()
	r.Faults = []Fault{{AtS: 10, Fault: "kill redis"}, {AtS: 20, Fault: "restart redis"}}
	r.Series[12].Errors, r.Series[13].Throttled = 7, 3
	for i := 0; i < 30; i++ {
		r.CacheSeries = append(r.CacheSeries, CacheSecond{T: i, L1: Float(0.5), L2: Float(0.2)})
	}
	r.Replicas = []Replica{{Name: "replica-1", LagSMax: 0.002, Series: []ReplicaSecond{{T: 0, LagMS: 0.4, VisibleMSP99: Float(3)}, {T: 1, LagMS: 0.5}}}}
	var b bytes.Buffer
	if err := RenderHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1)
	titles := map[string]string{}
	for _, svg := range svgs {
		if err := wellFormed(svg); err != nil {
			t.Errorf("chart not well-formed: %v", err)
		}
		title := regexp.MustCompile(`aria-label="([^"]*)"`).FindStringSubmatch(svg)[1]
		titles[title] = svg
	}
	want := []string{
		"Throughput over time: operations completed and offered per second",
		"Errors, throttled and dropped per second",
		"Latency over time: p50 and p99 of the requests completed each second, in milliseconds",
		"p99 latency of each operation per second, in milliseconds",
		"Cache hit rate per tier per second: hits per lookup, in percent",
		"Replica lag and write-to-visible delay per second, in milliseconds",
		"Latency distribution of all requests by percentile, in milliseconds",
	}
	for _, w := range want {
		svg, ok := titles[w]
		if !ok {
			t.Errorf("no chart %q", w)
			continue
		}
		if !strings.Contains(w, "distribution") && strings.Count(svg, "kill redis") < 2 {
			t.Errorf("chart %q has no marker for the fault", w)
		}
	}
	if svg := titles[want[1]]; !strings.Contains(svg, "<title>errors at 12 s: 7 </title>") && !strings.Contains(svg, "<title>errors at 12 s: 7</title>") {
		t.Errorf("errors chart has no hover value for second 12")
	}
	if svg := titles[want[0]]; !strings.Contains(svg, "<title>operations/s achieved at 3 s: 500 /s</title>") {
		t.Errorf("throughput chart has no hover value for second 3")
	}
	if strings.Contains(page, "did not record") {
		t.Error("page says the run did not record series it has")
	}
}
