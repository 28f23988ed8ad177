package reports

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// RenderMarkdown writes r as a Markdown report: what ran and on which
// machine, totals, a table per operation, thresholds with PASS/FAIL, cache
// hit rates by tier, replicas and notes. The charts are in the HTML report.
func RenderMarkdown(w io.Writer, r *Result) error {
	d := buildDocument(r)
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, "# %s\n\n", mdText(d.title))
	for _, f := range d.facts {
		v := mdText(f.value)
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
			fmt.Fprintf(b, "%s\n\n", mdText(s.text))
		}
		switch {
		case s.table != nil:
			mdTable(b, s.table)
			b.WriteString("\n")
		case len(s.items) > 0:
			for _, it := range s.items {
				fmt.Fprintf(b, "- %s\n", mdText(it))
			}
			b.WriteString("\n")
		default:
			fmt.Fprintf(b, "%s\n\n", mdText(s.empty))
		}
	}
	b.WriteString("Charts of throughput and latency over time, and of the latency distribution, are in `report.html`.\n")
	return b.Flush()
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
			v := mdText(cl.text)
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
// characters Markdown would read as markup.
func mdText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	r := strings.NewReplacer(`\`, `\\`, "|", `\|`, "*", `\*`, "_", `\_`, "`", "\\`", "[", `\[`)
	s = r.Replace(s)
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
