package reports

import (
	"bytes"
	"encoding/xml"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestRenderMarkdown(t *testing.T) {
	for _, name := range []string{"phase1-read-heavy", "phase3-hot-key", "empty"} {
		t.Run(name, func(t *testing.T) {
			r := mustRead(t, "testdata/"+name+".json")
			var b bytes.Buffer
			if err := RenderMarkdown(&b, r); err != nil {
				t.Fatalf("RenderMarkdown: %v", err)
			}
			golden := "testdata/" + name + ".md.golden"
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), b.String()); diff != "" {
				t.Errorf("RenderMarkdown mismatch (-%s +got):\n%s", golden, diff)
			}
		})
	}
}

func TestRenderHTML(t *testing.T) {
	for _, name := range []string{"phase1-read-heavy", "phase3-hot-key", "empty"} {
		t.Run(name, func(t *testing.T) {
			r := mustRead(t, "testdata/"+name+".json")
			var b bytes.Buffer
			if err := RenderHTML(&b, r); err != nil {
				t.Fatalf("RenderHTML: %v", err)
			}
			page := b.String()

			svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1)
			if len(svgs) < 4 {
				t.Fatalf("page has %d inline SVG charts, want at least 4", len(svgs))
			}
			for i, svg := range svgs {
				if err := wellFormed(svg); err != nil {
					t.Errorf("chart %d is not well-formed XML: %v", i, err)
				}
			}
			if len(r.Series) > 0 && strings.Count(page, "<polyline") < 4 {
				t.Errorf("page has %d lines drawn, want achieved, offered, p50, p99 and the distribution", strings.Count(page, "<polyline"))
			}

			// Self-contained: nothing is fetched.
			fetch := regexp.MustCompile(`(?i)(src|href|xlink:href|action)\s*=\s*["']?\s*(https?:)?//|@import|url\(|<script|<link|<iframe|<img`)
			if m := fetch.FindString(page); m != "" {
				t.Errorf("page fetches from elsewhere: %q", m)
			}
			if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
				t.Errorf("page mentions a URL; want none in a self-contained report")
			}

			// The same facts as the Markdown report.
			for _, want := range []string{r.Command, r.Machine.GoVersion, "Thresholds", "Cache hit rate"} {
				if !strings.Contains(page, htmlEscape(want)) {
					t.Errorf("page lacks %q", want)
				}
			}
			for _, op := range r.Operations {
				if !strings.Contains(page, op.Name) {
					t.Errorf("page lacks operation %q", op.Name)
				}
			}
		})
	}
	t.Run("escapes", func(t *testing.T) {
		r := &Result{Scenario: `<script>alert("x")</script>`, Notes: []string{"a < b & c"}}
		var b bytes.Buffer
		if err := RenderHTML(&b, r); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(b.String(), "<script>") {
			t.Error("RenderHTML wrote a scenario name unescaped")
		}
	})
}

func htmlEscape(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "&#39;", "&#39;")
}

func wellFormed(doc string) error {
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		_, err := d.Token()
		if err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
	}
}

func TestNiceTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		n      int
		want   []string
	}{
		{0, 100, 5, []string{"0", "25", "50", "75", "100"}},
		{0, 29, 8, []string{"0", "5", "10", "15", "20", "25"}},
		{0, 1, 5, []string{"0", "0.25", "0.5", "0.75", "1"}},
		{0, 2500, 5, []string{"0", "1000", "2000"}},
	}
	for _, tt := range tests {
		var got []string
		for _, tk := range niceTicks(tt.lo, tt.hi, tt.n) {
			got = append(got, tk.label)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("niceTicks(%v, %v, %d) mismatch (-want +got):\n%s", tt.lo, tt.hi, tt.n, diff)
		}
	}
	if got := niceCeil(1995.8 * 1.05); got != 2500 {
		t.Errorf("niceCeil(2095.6) = %v, want 2500", got)
	}
}

func TestNines(t *testing.T) {
	for p, want := range map[float64]float64{0: 0, 90: 1, 99: 2, 99.9: 3, 99.99: 4} {
		if got := nines(p); got < want-1e-9 || got > want+1e-9 {
			t.Errorf("nines(%v) = %v, want %v", p, got, want)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{fmtMS(0), "0"}, {fmtMS(0.4567), "0.457"}, {fmtMS(4.3), "4.30"}, {fmtMS(61.53), "61.5"}, {fmtMS(1003.4), "1003"},
		{fmtFraction(0.0000668), "0.00668%"}, {fmtFraction(0.25), "25%"}, {fmtHitRate(0.912), "91.2%"},
		{groupDigits(0), "0"}, {groupDigits(999), "999"}, {groupDigits(1000), "1,000"}, {groupDigits(-1234567), "-1,234,567"},
		{seconds(30), "30 s"}, {seconds(0.5), "0.5 s"}, {seconds(120), "2 min"},
		{CommandLine([]string{"scalelab", "run", "--out", "my dir", "--x=it's"}), `scalelab run --out 'my dir' '--x=it'\''s'`},
		{CommandLine([]string{"a", ""}), `a ''`},
		{mdCode("a | b"), "`a \\| b`"}, {mdCode("x `y`"), "`` x `y` ``"},
		{mdText("p99 < 50ms | *x*"), `p99 < 50ms \| \*x\*`}, {mdText("<b>a</b>"), `&lt;b>a&lt;/b>`},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("case %d: got %q, want %q", i, tt.got, tt.want)
		}
	}
}

// A result written before the probe counted its writes has only the p99 of
// the write-to-visible delay: the other columns say "not measured". Lag is
// in ms, as write-to-visible is, not in seconds with six decimals.
func TestRenderReplicaWithoutProbeCounts(t *testing.T) {
	r := &Result{Phase: 3, Replicas: []Replica{{Name: "replica1", LagSP50: 0.0003, LagSMax: 0.021, VisibleMSP99: 4.2}}}
	var b bytes.Buffer
	if err := RenderMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	const want = "| replica1 | 0.300 | 21.0 | — | 4.20 | — | — | — |"
	if !strings.Contains(b.String(), want) {
		t.Errorf("RenderMarkdown lacks the row %q:\n%s", want, b.String())
	}
}
