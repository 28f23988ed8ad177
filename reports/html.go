package reports

import (
	"html/template"
	"io"
	"strconv"
	"strings"
)

// RenderHTML writes r as one self-contained HTML page: the tables of the
// Markdown report, and charts drawn as inline SVG (throughput and latency
// over time, and the latency distribution on a percentile axis). It loads
// nothing from the network: no scripts, no fonts, no images.
func RenderHTML(w io.Writer, r *Result) error {
	t, err := template.New("report").Parse(htmlTemplate)
	if err != nil {
		return err
	}
	d := buildDocument(r)
	v := htmlView{
		Title:         d.title,
		Verdict:       d.verdict,
		Passed:        d.passed,
		SchemaVersion: strconv.Itoa(SchemaVersion),
	}
	for _, f := range d.facts {
		v.Facts = append(v.Facts, htmlFact{Key: f.key, Value: f.value, Code: f.code})
	}
	for i, s := range d.sections {
		hs := htmlSection{Title: s.title, Text: s.text, Items: s.items, Empty: s.empty}
		if s.table != nil {
			for j, h := range s.table.head {
				cl := htmlCell{Text: h}
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
					hr.Cells = append(hr.Cells, htmlCell{Text: cl.text, Code: cl.code, Class: strings.Join(class, " ")})
					hr.Strong = hr.Strong || cl.strong
				}
				hs.Rows = append(hs.Rows, hr)
			}
		}
		// The charts go right after the totals.
		if i == 0 {
			v.Before = append(v.Before, hs)
		} else {
			v.After = append(v.After, hs)
		}
	}
	for _, ch := range []struct {
		c       *chart
		caption string
	}{
		{throughputChart(r), "Throughput: requests completed each second (achieved) against arrivals scheduled (offered). Where achieved falls below offered, the server or the generator fell behind."},
		{latencyChart(r), "Latency over time: p50 and p99 of the requests completed each second, in ms, measured from each request's scheduled start."},
		{distributionChart(r), "Latency distribution of all requests (HDR histogram). The percentile axis is in nines: each step right is ten times rarer; the end is the maximum."},
	} {
		// The SVG is built by chart.svg, which escapes every text it writes.
		v.Charts = append(v.Charts, htmlChart{SVG: template.HTML(ch.c.svg()), Caption: ch.caption})
	}
	return t.Execute(w, v)
}

type htmlView struct {
	Title         string
	Facts         []htmlFact
	Verdict       string
	Passed        bool
	Before, After []htmlSection
	Charts        []htmlChart
	SchemaVersion string
}

type htmlFact struct {
	Key, Value string
	Code       bool
}

type htmlSection struct {
	Title, Text string
	Head        []htmlCell
	Rows        []htmlRow
	Items       []string
	Empty       string
}

type htmlRow struct {
	Cells  []htmlCell
	Strong bool
}

type htmlCell struct {
	Text  string
	Code  bool
	Class string
}

type htmlChart struct {
	SVG     template.HTML
	Caption string
}

const htmlTemplate = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #111827; background: #f3f4f6; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px 32px 40px; background: #fff; min-height: 100vh; box-sizing: border-box; }
h1 { font-size: 22px; margin: 0 0 14px; }
h2 { font-size: 16px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid #e5e7eb; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dt { color: #6b7280; }
dd { margin: 0; }
code { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; background: #f3f4f6; padding: 1px 4px; border-radius: 3px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e5e7eb; text-align: left; white-space: nowrap; }
th { font-weight: 600; color: #374151; background: #f9fafb; }
.num { text-align: right; }
tr.strong td { font-weight: 600; }
.pass { color: #047857; font-weight: 600; }
.fail { color: #b91c1c; font-weight: 600; }
p.verdict { padding: 8px 12px; border-radius: 4px; margin: 16px 0 0; }
p.verdict.pass { background: #ecfdf5; }
p.verdict.fail { background: #fef2f2; }
.muted, figcaption, footer { color: #6b7280; }
figure { margin: 10px 0 22px; }
figcaption { font-size: 12.5px; max-width: 720px; }
svg { max-width: 100%; height: auto; display: block; font-family: inherit; }
.scroll { overflow-x: auto; }
footer { margin-top: 32px; font-size: 12px; }
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<dl>
{{- range .Facts}}
<dt>{{.Key}}</dt><dd>{{if .Code}}<code>{{.Value}}</code>{{else}}{{.Value}}{{end}}</dd>
{{- end}}
</dl>
{{- if .Verdict}}
<p class="verdict {{if .Passed}}pass{{else}}fail{{end}}">{{.Verdict}}</p>
{{- end}}
{{- range .Before}}{{template "section" .}}{{end}}
<section>
<h2>Charts</h2>
{{- range .Charts}}
<figure>
{{.SVG}}
<figcaption>{{.Caption}}</figcaption>
</figure>
{{- end}}
</section>
{{- range .After}}{{template "section" .}}{{end}}
<footer>Written by scalelab from result.json (schema version {{.SchemaVersion}}). This page is self-contained: it loads nothing from the network.</footer>
</main>
</body>
</html>
{{define "section"}}
<section>
<h2>{{.Title}}</h2>
{{- if .Text}}
<p class="muted">{{.Text}}</p>
{{- end}}
{{- if .Head}}
<div class="scroll"><table>
<thead><tr>{{range .Head}}<th{{if .Class}} class="{{.Class}}"{{end}}>{{.Text}}</th>{{end}}</tr></thead>
<tbody>
{{- range .Rows}}
<tr{{if .Strong}} class="strong"{{end}}>{{range .Cells}}<td{{if .Class}} class="{{.Class}}"{{end}}>{{if .Code}}<code>{{.Text}}</code>{{else}}{{.Text}}{{end}}</td>{{end}}</tr>
{{- end}}
</tbody>
</table></div>
{{- else if .Items}}
<ul>
{{- range .Items}}
<li>{{.}}</li>
{{- end}}
</ul>
{{- else}}
<p class="muted">{{.Empty}}</p>
{{- end}}
</section>
{{- end}}
`
