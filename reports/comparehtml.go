package reports

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"time"
)

// RenderComparisonJSON writes c as JSON for scripts and CI: the runs, and
// per metric each run's value and change against the first, with the
// verdict and, where there is none, the reason. Missing values are null.
func RenderComparisonJSON(w io.Writer, c *Comparison) error {
	type jsonChange struct {
		Relative *float64 `json:"relative"`
		Delta    *float64 `json:"delta"`
		P        *float64 `json:"p"`
		Samples  [2]int   `json:"samples"`
		Verdict  string   `json:"verdict"`
		Reason   string   `json:"reason,omitempty"`
	}
	type jsonMetric struct {
		Name           string        `json:"name"`
		Unit           string        `json:"unit"`
		HigherIsBetter bool          `json:"higher_is_better"`
		Values         []*float64    `json:"values"`
		Changes        []*jsonChange `json:"changes"` // null for the baseline
	}
	type jsonRun struct {
		Label     string    `json:"label"`
		Phase     int       `json:"phase"`
		Scenario  string    `json:"scenario"`
		StartedAt time.Time `json:"started_at"`
		GitCommit string    `json:"git_commit"`
		Machine   string    `json:"machine"`
	}
	doc := struct {
		Runs    []jsonRun    `json:"runs"`
		Metrics []jsonMetric `json:"metrics"`
		Notes   []string     `json:"notes"`
		Method  string       `json:"method"`
	}{Runs: []jsonRun{}, Metrics: []jsonMetric{}, Notes: c.Notes, Method: Method}
	if doc.Notes == nil {
		doc.Notes = []string{}
	}
	num := func(v float64) *float64 {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		return &v
	}
	for _, r := range c.Runs {
		doc.Runs = append(doc.Runs, jsonRun(r))
	}
	for _, m := range c.Metrics {
		jm := jsonMetric{Name: m.Name, Unit: m.Unit, HigherIsBetter: m.HigherIsBetter, Values: m.Values}
		for _, ch := range m.Changes {
			if ch == nil {
				jm.Changes = append(jm.Changes, nil)
				continue
			}
			jm.Changes = append(jm.Changes, &jsonChange{Relative: num(ch.Relative), Delta: num(ch.Delta), P: num(ch.P), Samples: ch.Samples, Verdict: ch.Verdict, Reason: ch.Reason})
		}
		doc.Metrics = append(doc.Metrics, jm)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// RenderComparisonHTML writes c as one self-contained page: the runs, the
// metrics side by side with their verdicts, and the same charts as the
// reports with one line per run.
func RenderComparisonHTML(w io.Writer, c *Comparison) error {
	t, err := template.New("compare").Parse(compareTemplate)
	if err != nil {
		return err
	}
	v := compareView{Title: fmt.Sprintf("scalelab compare: %d runs", len(c.Runs)), Method: Method, Notes: c.Notes, SchemaVersion: strconv.Itoa(SchemaVersion)}
	for i, r := range c.Runs {
		started := "—"
		if !r.StartedAt.IsZero() {
			started = r.StartedAt.UTC().Format("2006-01-02 15:04 UTC")
		}
		role := ""
		if i == 0 && len(c.Runs) > 1 {
			role = "baseline"
		}
		v.Runs = append(v.Runs, compareRun{Label: r.Label, Phase: r.Phase, Scenario: orDash(r.Scenario), Started: started,
			Commit: orDash(r.GitCommit), Role: role, Adds: inlineHTML(PhaseAdds(r.Phase))})
	}
	v.Head = append(v.Head, "metric")
	for _, r := range c.Runs {
		v.Head = append(v.Head, r.Label)
	}
	for _, r := range c.Runs[min(1, len(c.Runs)):] {
		v.Head = append(v.Head, r.Label+" vs "+c.Runs[0].Label)
	}
	for _, m := range c.Metrics {
		name := m.Name
		if m.Unit != "%" {
			name += " (" + m.Unit + ")"
		}
		row := compareRow{Cells: []compareCell{{Text: name, Class: "metric"}}}
		for _, val := range m.Values {
			row.Cells = append(row.Cells, compareCell{Text: fmtCompared(val, m.Unit), Class: "num"})
		}
		for _, ch := range m.Changes[min(1, len(m.Changes)):] {
			cl := compareCell{Text: fmtChange(ch, m.Unit), Class: "change"}
			switch ch.Verdict {
			case Slower, Worse:
				cl.Class += " fail"
			case Faster, Better:
				cl.Class += " pass"
			}
			row.Cells = append(row.Cells, cl)
		}
		v.Rows = append(v.Rows, row)
	}
	if len(c.results) > 0 {
		for _, ch := range []struct {
			c       *chart
			caption string
		}{
			{overlay(c, "Operations completed per second, one line per run", "operations/s", "/s", false, func(r *Result) []point {
				ops, hasOps := opRates(r)
				var pts []point
				for _, s := range measuredSeconds(r) {
					v := s.Rate
					if hasOps {
						v = ops[s.T]
					}
					pts = append(pts, point{x: float64(s.T), y: v})
				}
				return pts
			}), "Throughput: operations completed each second in each run."},
			{overlay(c, "p50 latency per second, one line per run", "ms (log scale)", "ms", true, func(r *Result) []point {
				return secondPoints(r, func(s Second) float64 { return s.P50MS })
			}), "p50 of the requests completed each second, in ms."},
			{overlay(c, "p99 latency per second, one line per run", "ms (log scale)", "ms", true, func(r *Result) []point {
				return secondPoints(r, func(s Second) float64 { return s.P99MS })
			}), "p99 of the requests completed each second, in ms."},
			{overlay(c, "Errors per second, one line per run", "errors per second", "", false, func(r *Result) []point {
				return secondPoints(r, func(s Second) float64 { return float64(s.Errors) })
			}), "Errors in each second of each run."},
			{distributionOverlay(c), "Latency distribution of all requests in each run; the percentile axis is in nines, each step right ten times rarer."},
		} {
			v.Charts = append(v.Charts, htmlChart{SVG: template.HTML(ch.c.svg()), Caption: ch.caption})
		}
	}
	return t.Execute(w, v)
}

func secondPoints(r *Result, f func(Second) float64) []point {
	var pts []point
	for _, s := range measuredSeconds(r) {
		if s.Requests == 0 {
			continue
		}
		pts = append(pts, point{x: float64(s.T), y: f(s)})
	}
	return pts
}

// overlay draws one series per compared run.
func overlay(c *Comparison, title, yLabel, yUnit string, log bool, pts func(*Result) []point) *chart {
	ch := &chart{title: title, x: axis{label: "seconds"}, y: axis{label: yLabel}, xUnit: "s", yUnit: yUnit}
	var values []float64
	top := 0.0
	for i, r := range c.results {
		s := series{name: fmt.Sprintf("%s: phase %d", c.Runs[i].Label, r.Phase), color: paletteColor(i), pts: pts(r)}
		for _, p := range s.pts {
			values = append(values, p.y)
			top = math.Max(top, p.y)
			ch.x.max = math.Max(ch.x.max, p.x)
		}
		ch.series = append(ch.series, s)
	}
	if log {
		logAxis(&ch.y, values)
	} else {
		ch.y.max = niceCeil(math.Max(top*1.05, 1))
	}
	return ch
}

func distributionOverlay(c *Comparison) *chart {
	var ch *chart
	for i, r := range c.results {
		d := distributionChart(r)
		d.series[0].name = fmt.Sprintf("%s: phase %d", c.Runs[i].Label, r.Phase)
		d.series[0].color = paletteColor(i)
		if ch == nil || d.x.max > ch.x.max {
			if ch != nil {
				d.series = append(ch.series, d.series...)
			}
			ch = d
			continue
		}
		ch.series = append(ch.series, d.series...)
	}
	var values []float64
	for _, s := range ch.series {
		for _, p := range s.pts {
			values = append(values, p.y)
		}
	}
	ch.title = "Latency distribution of all requests by percentile, one line per run, in milliseconds"
	logAxis(&ch.y, values)
	return ch
}

type compareRun struct {
	Label, Scenario, Started, Commit, Role string
	Phase                                  int
	Adds                                   template.HTML
}

type compareView struct {
	Title         string
	Runs          []compareRun
	Head          []string
	Rows          []compareRow
	Charts        []htmlChart
	Notes         []string
	Method        string
	SchemaVersion string
}

type compareRow struct{ Cells []compareCell }

type compareCell struct{ Text, Class string }

const compareTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
` + htmlStyle + `
<style>td.change, td.metric { white-space: normal; } td.change { min-width: 6em; font-size: 12.5px; } th, td { padding: 4px 6px; }</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<section>
<h2>Runs</h2>
<div class="scroll"><table>
<thead><tr><th>run</th><th class="num">phase</th><th>scenario</th><th>started</th><th>commit</th><th></th></tr></thead>
<tbody>
{{- range .Runs}}
<tr><td>{{.Label}}</td><td class="num">{{.Phase}}</td><td>{{.Scenario}}</td><td>{{.Started}}</td><td><code>{{.Commit}}</code></td><td>{{.Role}}</td></tr>
{{- end}}
</tbody>
</table></div>
<ul>
{{- range .Runs}}{{if .Adds}}
<li>{{.Label}}, phase {{.Phase}}: {{.Adds}}</li>
{{- end}}{{end}}
</ul>
</section>
<section>
<h2>Side by side</h2>
<p class="muted">Each run against the first. {{.Method}}</p>
<div class="scroll"><table>
<thead><tr>{{range .Head}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rows}}
<tr>{{range .Cells}}<td{{if .Class}} class="{{.Class}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table></div>
{{- if .Notes}}
<ul>
{{- range .Notes}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
</section>
{{- if .Charts}}
<section>
<h2>Charts</h2>
{{- range .Charts}}
<figure>
{{.SVG}}
<figcaption>{{.Caption}}</figcaption>
</figure>
{{- end}}
</section>
{{- end}}
<footer>Written by scalelab compare from result.json files (schema version {{.SchemaVersion}}). This page is self-contained: it loads nothing from the network.</footer>
</main>
</body>
</html>
`
