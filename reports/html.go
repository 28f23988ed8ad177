package reports

import (
	"html"
	"html/template"
	"io"
	"strconv"
	"strings"
)

// RenderHTML writes r as one self-contained HTML page: the tables of the
// Markdown report, and charts drawn as inline SVG (throughput, errors,
// latency and each operation's p99 over time, cache hit rates and replicas
// over time when the run recorded them, and the latency distribution on a
// percentile axis), with fault markers and values on hover. It loads
// nothing from the network: no scripts, no fonts, no images.
func RenderHTML(w io.Writer, r *Result, opts ...Option) error {
	t, err := template.New("report").Parse(htmlTemplate)
	if err != nil {
		return err
	}
	d := buildDocument(r, newOptions(opts))
	v := htmlView{
		Title:         d.title,
		Verdict:       d.verdict,
		Passed:        d.passed,
		SchemaVersion: strconv.Itoa(SchemaVersion),
	}
	for _, f := range d.facts {
		val := inlineHTML(f.value)
		if f.code {
			val = template.HTML("<code>" + html.EscapeString(f.value) + "</code>")
		}
		v.Facts = append(v.Facts, htmlFact{Key: f.key, Value: val})
	}
	for _, s := range d.sections {
		hs := htmlSectionOf(s)
		if s.charts {
			hs.Charts, hs.Missing = reportCharts(r)
		}
		if s.capacity {
			hs.Charts = capacityCharts(r)
		}
		v.Sections = append(v.Sections, hs)
	}
	return t.Execute(w, v)
}

// reportCharts are the report's charts, and a line on the ones the run did
// not record.
func reportCharts(r *Result) ([]htmlChart, string) {
	faults := ""
	if len(r.Faults) > 0 {
		faults = " Red dashed lines mark the faults."
	}
	var charts []htmlChart
	add := func(c *chart, caption string) {
		if c != nil {
			// The SVG is built by chart.svg, which escapes every text it writes.
			charts = append(charts, htmlChart{SVG: template.HTML(c.svg()), Caption: caption})
		}
	}
	add(throughputChart(r), "Throughput: operations completed each second (achieved) against operations scheduled (offered), and HTTP requests per second where an operation sends more than one. Where achieved falls below offered, the server or the generator fell behind. Hover over a line for its values."+faults)
	add(errorsChart(r), "Errors, throttled (429) and dropped arrivals in each second."+faults)
	add(latencyChart(r), "Latency over time: p50 and p99 of the requests completed each second, in ms, measured from each request's scheduled start."+faults)
	add(operationsChart(r), "p99 of each operation per second, in ms: which operation's tail moves, and when."+faults)
	add(cacheChart(r), "Cache hit rate per tier in each second: hits per lookup, summed over the tier's instances."+faults)
	add(replicaChart(r), "Replica lag (dashed) and the write-to-visible delay of probe writes (p99 per second, solid), in ms."+faults)
	add(distributionChart(r), "Latency distribution of all requests (HDR histogram); each dot is a sampled percentile. The percentile axis is in nines: each step right is ten times rarer; the end is the maximum.")
	var missing []string
	if len(r.CacheSeries) == 0 && (r.Cache.L1HitRate != nil || r.Cache.L2HitRate != nil || r.Cache.L3HitRate != nil) {
		missing = append(missing, "cache hit rates")
	}
	if len(r.Replicas) > 0 && replicaChart(r) == nil {
		missing = append(missing, "replica lag and write-to-visible")
	}
	if len(missing) == 0 {
		return charts, ""
	}
	return charts, "This run did not record " + strings.Join(missing, " or ") + " per second: their totals are in the tables below."
}

func htmlSectionOf(s section) htmlSection {
	hs := htmlSection{Title: s.title, Text: inlineHTML(s.text), After: inlineHTML(s.after)}
	for _, p := range s.paras {
		hs.Paras = append(hs.Paras, inlineHTML(p))
	}
	for _, df := range s.defs {
		hs.Defs = append(hs.Defs, htmlDef{Term: df.term, Text: inlineHTML(df.text)})
	}
	for _, it := range s.items {
		hs.Items = append(hs.Items, inlineHTML(it))
	}
	hs.Links = s.links
	if s.table == nil && len(s.items) == 0 && len(s.paras) == 0 && len(s.defs) == 0 {
		hs.Empty = inlineHTML(s.empty)
	}
	if s.table != nil {
		for j, h := range s.table.head {
			cl := htmlCell{Text: inlineHTML(h)}
			if j < len(s.table.num) && s.table.num[j] {
				cl.Class = "num"
			}
			hs.Head = append(hs.Head, cl)
		}
		for _, row := range s.table.rows {
			var hr htmlRow
			for j, cl := range row {
				var class []string
				if j < len(s.table.num) && s.table.num[j] {
					class = append(class, "num")
				}
				if cl.status != "" {
					class = append(class, cl.status)
				}
				text := inlineHTML(cl.text)
				if cl.code {
					text = template.HTML("<code>" + html.EscapeString(cl.text) + "</code>")
				}
				hr.Cells = append(hr.Cells, htmlCell{Text: text, Class: strings.Join(class, " ")})
				hr.Strong = hr.Strong || cl.strong
			}
			hs.Rows = append(hs.Rows, hr)
		}
	}
	return hs
}

// inlineHTML writes prose with its `code` spans as HTML, escaped.
func inlineHTML(s string) template.HTML {
	var b strings.Builder
	for _, sp := range spans(s) {
		if sp.code {
			b.WriteString("<code>" + html.EscapeString(sp.text) + "</code>")
		} else {
			b.WriteString(html.EscapeString(sp.text))
		}
	}
	return template.HTML(b.String())
}

type htmlView struct {
	Title         string
	Facts         []htmlFact
	Verdict       string
	Passed        bool
	Sections      []htmlSection
	SchemaVersion string
}

type htmlFact struct {
	Key   string
	Value template.HTML
}

type htmlSection struct {
	Title       string
	Text, After template.HTML
	Paras       []template.HTML
	Defs        []htmlDef
	Head        []htmlCell
	Rows        []htmlRow
	Items       []template.HTML
	Links       []Link
	Empty       template.HTML
	Charts      []htmlChart
	Missing     string
}

type htmlDef struct {
	Term string
	Text template.HTML
}

type htmlRow struct {
	Cells  []htmlCell
	Strong bool
}

type htmlCell struct {
	Text  template.HTML
	Class string
}

type htmlChart struct {
	SVG     template.HTML
	Caption string
}

// htmlStyle is shared by the report and the comparison page. Tables wrap
// their headers and scroll inside their box rather than widen the page;
// numbers never wrap, but a row's name (the first cell: an operation or a
// request such as "POST /api/v1/users/{id}/data:batch (delete-account)")
// may, so that long names do not make a table scroll.
const htmlStyle = `<style>
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #111827; background: #f3f4f6; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px 32px 40px; background: #fff; min-height: 100vh; box-sizing: border-box; overflow-wrap: anywhere; }
h1 { font-size: 22px; margin: 0 0 14px; }
h2 { font-size: 16px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #e5e7eb; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 16px; margin: 0; }
dl.facts dt { color: #6b7280; }
dl.facts dd { margin: 0; min-width: 0; }
dl.defs dt { font-weight: 600; margin-top: 6px; }
dl.defs dd { margin: 0 0 0 16px; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6; padding: 1px 4px; border-radius: 3px; overflow-wrap: anywhere; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: left; overflow-wrap: normal; }
td { white-space: nowrap; }
td:first-child { white-space: normal; }
td code { white-space: normal; }
th { font-weight: 600; color: #374151; background: #f9fafb; vertical-align: bottom; }
.num { text-align: right; }
tr.strong td { font-weight: 600; }
.pass { color: #047857; font-weight: 600; }
.fail { color: #b91c1c; font-weight: 600; }
p.verdict { padding: 8px 12px; border-radius: 4px; margin: 16px 0 0; }
p.verdict.pass { background: #ecfdf5; }
p.verdict.fail { background: #fef2f2; }
section.shows { background: #f0f9ff; border: 1px solid #bae6fd; border-radius: 6px; padding: 2px 16px 10px; margin-top: 20px; }
.muted, figcaption, footer { color: #6b7280; }
figure { margin: 10px 0 22px; }
figcaption { font-size: 12.5px; max-width: 720px; }
svg { max-width: 100%; height: auto; display: block; font-family: inherit; }
.scroll { overflow-x: auto; max-width: 100%; }
footer { margin-top: 32px; font-size: 12px; }
</style>`

const htmlTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
` + htmlStyle + `
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<dl class="facts">
{{- range .Facts}}
<dt>{{.Key}}</dt><dd>{{.Value}}</dd>
{{- end}}
</dl>
{{- if .Verdict}}
<p class="verdict {{if .Passed}}pass{{else}}fail{{end}}">{{.Verdict}}</p>
{{- end}}
{{- range $i, $s := .Sections}}{{template "section" $s}}
{{- if $s.Charts}}
<section>
<h2>Charts</h2>
{{- range $s.Charts}}
<figure>
{{.SVG}}
<figcaption>{{.Caption}}</figcaption>
</figure>
{{- end}}
{{- if $s.Missing}}
<p class="muted">{{$s.Missing}}</p>
{{- end}}
</section>
{{- end}}
{{- end}}
<footer>Written by scalelab from result.json (schema version {{.SchemaVersion}}). This page is self-contained: it loads nothing from the network.</footer>
</main>
</body>
</html>
{{define "section"}}
<section{{if eq .Title "What this run shows"}} class="shows"{{end}}>
<h2>{{.Title}}</h2>
{{- if .Text}}
<p class="muted">{{.Text}}</p>
{{- end}}
{{- range .Paras}}
<p>{{.}}</p>
{{- end}}
{{- if .Defs}}
<dl class="defs">
{{- range .Defs}}
<dt>{{.Term}}</dt><dd>{{.Text}}</dd>
{{- end}}
</dl>
{{- end}}
{{- if .Head}}
<div class="scroll"><table>
<thead><tr>{{range .Head}}<th{{if .Class}} class="{{.Class}}"{{end}}>{{.Text}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rows}}
<tr{{if .Strong}} class="strong"{{end}}>{{range .Cells}}<td{{if .Class}} class="{{.Class}}"{{end}}>{{.Text}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table></div>
{{- end}}
{{- if .Items}}
<ul>
{{- range .Items}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- end}}
{{- if .After}}
<p class="muted">{{.After}}</p>
{{- end}}
{{- if .Links}}
<p>Read on: {{range $i, $l := .Links}}{{if $i}} · {{end}}<a href="{{$l.Href}}">{{$l.Label}}</a>{{end}}.</p>
{{- end}}
{{- if .Empty}}
<p class="muted">{{.Empty}}</p>
{{- end}}
</section>
{{- end}}
`
