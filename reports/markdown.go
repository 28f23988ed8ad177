package reports

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// RenderMarkdown writes r as a Markdown report: what the run shows and how
// to read it, what ran and on which machine, totals, a table per operation,
// thresholds with PASS/FAIL, cache hit rates by tier, replicas and notes.
// The charts are in the HTML report.
func RenderMarkdown(w io.Writer, r *Result, opts ...Option) error {
	d := buildDocument(r, newOptions(opts))
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "# %s\n\n", mdText(d.title))
	for _, f := range d.facts {
		v := mdInline(f.value)
		if f.code {
			v = mdCode(f.value)
		}
		fmt.Fprintf(b, "- **%s:** %s\n", f.key, v)
	}
	b.WriteString("\n")
	if d.verdict != "" {
		fmt.Fprintf(b, "**%s**\n\n", mdText(d.verdict))
	}
	for _, s := range d.sections {
		fmt.Fprintf(b, "## %s\n\n", mdText(s.title))
		if s.text != "" {
			fmt.Fprintf(b, "%s\n\n", mdInline(s.text))
		}
		for _, p := range s.paras {
			fmt.Fprintf(b, "%s\n\n", mdInline(p))
		}
		for _, df := range s.defs {
			fmt.Fprintf(b, "- **%s:** %s\n", mdText(df.term), mdInline(df.text))
		}
		if len(s.defs) > 0 {
			b.WriteString("\n")
		}
		if s.table != nil {
			mdTable(b, s.table)
			b.WriteString("\n")
		}
		for _, it := range s.items {
			fmt.Fprintf(b, "- %s\n", mdInline(it))
		}
		if len(s.items) > 0 {
			b.WriteString("\n")
		}
		if s.after != "" {
			fmt.Fprintf(b, "%s\n\n", mdInline(s.after))
		}
		if len(s.links) > 0 {
			var ls []string
			for _, l := range s.links {
				ls = append(ls, fmt.Sprintf("[%s](%s)", mdText(l.Label), mdHref(mdLinkTarget(l.Href))))
			}
			fmt.Fprintf(b, "Read on: %s.\n\n", strings.Join(ls, " · "))
		}
		if s.empty != "" && s.table == nil && len(s.items) == 0 {
			fmt.Fprintf(b, "%s\n\n", mdInline(s.empty))
		}
	}
	b.WriteString("Charts over time (throughput, errors, latency per operation, cache hit rates, replicas) and the latency distribution are in `report.html`.\n")
	return b.Flush()
}

// mdLinkTarget points a Markdown report's link at the neighbour's Markdown
// report when the HTML page links to its HTML report.
func mdLinkTarget(href string) string {
	if strings.HasSuffix(href, HTMLFile) {
		return strings.TrimSuffix(href, HTMLFile) + MarkdownFile
	}
	return href
}

func mdHref(s string) string {
	return strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29").Replace(s)
}

// span is a piece of prose: text, or a `code` span.
type span struct {
	text string
	code bool
}

// spans splits s at backticks into text and code spans; with an odd number
// of backticks it is all text.
func spans(s string) []span {
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 {
		return []span{{text: s}}
	}
	var out []span
	for i, p := range parts {
		if p == "" {
			continue
		}
		out = append(out, span{text: p, code: i%2 == 1})
	}
	return out
}

// mdInline writes prose with its code spans as Markdown.
func mdInline(s string) string {
	s = strings.TrimSpace(s)
	var b strings.Builder
	for _, sp := range spans(s) {
		if sp.code {
			b.WriteString(mdCode(sp.text))
		} else {
			b.WriteString(mdText(sp.text))
		}
	}
	return b.String()
}

func mdTable(b *bufio.Writer, t *table) {
	b.WriteString("|")
	for _, h := range t.head {
		fmt.Fprintf(b, " %s |", mdText(h))
	}
	b.WriteString("\n|")
	for i := range t.head {
		if i < len(t.num) && t.num[i] {
			b.WriteString("---:|")
		} else {
			b.WriteString("---|")
		}
	}
	b.WriteString("\n")
	for _, row := range t.rows {
		b.WriteString("|")
		for _, cl := range row {
			v := mdInline(cl.text)
			switch {
			case cl.code:
				v = mdCode(cl.text)
			case cl.status == "fail", cl.strong && cl.text != "":
				v = "**" + v + "**"
			}
			fmt.Fprintf(b, " %s |", v)
		}
		b.WriteString("\n")
	}
}

// mdText escapes what would break a line or a table cell, and the
// characters Markdown would read as markup. An underscore inside a word
// (stale_reads) is not emphasis in CommonMark and stays as it is.
func mdText(s string) string {
	s = collapseSpace(s)
	r := strings.NewReplacer(`\`, `\\`, "|", `\|`, "*", `\*`, "`", "\\`", "[", `\[`)
	s = escapeUnderscores(r.Replace(s))
	// "<" starts an HTML tag only before a letter, "/", "!" or "?": leave
	// "p99 < 50ms" readable.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '<' && i+1 < len(s) && strings.IndexByte("/!?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", s[i+1]) >= 0 {
			b.WriteString("&lt;")
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// collapseSpace turns every run of white space into one space, keeping one
// at either end: a text span may sit between two code spans.
func collapseSpace(s string) string {
	out := strings.Join(strings.Fields(s), " ")
	if out == "" {
		return out
	}
	if strings.TrimLeftFunc(s, unicode.IsSpace) != s {
		out = " " + out
	}
	if strings.TrimRightFunc(s, unicode.IsSpace) != s {
		out += " "
	}
	return out
}

// escapeUnderscores escapes the underscores that could open or close
// emphasis: those not between two letters or digits.
func escapeUnderscores(s string) string {
	word := func(i int) bool {
		if i < 0 || i >= len(s) {
			return false
		}
		ch := s[i]
		return ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch >= 0x80
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '_' && !(word(i-1) && word(i+1)) {
			b.WriteString(`\_`)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mdCode writes s as a code span, with enough backticks to hold any in s.
func mdCode(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	s = strings.ReplaceAll(s, "|", `\|`) // a pipe ends a table cell even in code
	return fence + s + fence
}
