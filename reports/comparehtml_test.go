package reports

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// When the offered load differs, a lower rate is "lower (offered load
// differs)", never "slower", and it fails no check.
func TestCompareOfferedLoadDiffers(t *testing.T) {
	a, b := run(1, 2000, 1, 5), run(2, 1000, 1, 5)
	a.Totals.OfferedRate, b.Totals.OfferedRate = 2000, 1000
	c := Compare([]*Result{a, b})
	if got := verdicts(c, 1)["rate"]; got != Lower {
		t.Errorf("rate verdict %q, want %q", got, Lower)
	}
	if f := c.Failures(FailOnWorse); len(f) != 0 {
		t.Errorf("Failures(worse) = %v, want none", f)
	}
	b.Totals.OfferedRate = 2000
	if got := verdicts(Compare([]*Result{a, b}), 1)["rate"]; got != Slower {
		t.Errorf("same offered load: rate verdict %q, want %q", got, Slower)
	}
}

func TestCompareFailures(t *testing.T) {
	base := run(1, 2000, 1, 5)
	slow := run(2, 2000, 1.5, 8)
	if f := Compare([]*Result{base, slow}).Failures(FailOnSlower); len(f) == 0 || !strings.Contains(f[0], "B vs A: p50 +") {
		t.Errorf("Failures(slower) on a slowdown = %v, want p50 first", f)
	}
	if f := Compare([]*Result{base, run(3, 2000, 1, 5)}).Failures(FailOnSlower); len(f) != 0 {
		t.Errorf("Failures(slower) on two clean runs = %v, want none", f)
	}
	worse := run(4, 2000, 1, 5)
	for i := range worse.Series {
		worse.Series[i].Errors = worse.Series[i].Requests / 100
		worse.Totals.Errors += worse.Series[i].Errors
	}
	c := Compare([]*Result{base, worse})
	if f := c.Failures(FailOnSlower); len(f) != 0 {
		t.Errorf("Failures(slower) on more errors = %v, want none", f)
	}
	if f := c.Failures(FailOnWorse); len(f) != 1 || !strings.Contains(f[0], "error rate") {
		t.Errorf("Failures(worse) on more errors = %v, want the error rate", f)
	}
}

func TestCompareRows(t *testing.T) {
	a, b := run(1, 2000, 1, 5), run(2, 2000, 1, 5)
	b.Phase = 3
	a.Components = []Component{{Name: "app-1", CPUS: 6}}
	b.Components = []Component{{Name: "app-1", CPUS: 4}, {Name: "app-2", CPUS: 4}, {Name: "redis-master-0", CPUS: 1}, {Name: "redis-replica-0", CPUS: 1}, {Name: "replica-1", CPUS: 2}}
	b.Replicas = []Replica{{Name: "replica-1", LagSMax: 0.004, VisibleMSP99: 7, VisibleProbes: 300}}
	c := Compare([]*Result{a, b})
	got := map[string]string{}
	for _, m := range c.Metrics {
		got[m.Name] = fmtCompared(m.Values[1], m.Unit)
	}
	per := func(cpu float64) string { return fmtRate(1e6 * cpu / float64(b.Totals.Requests)) }
	for name, want := range map[string]string{
		"CPU per request": per(12), "CPU per request: app": per(8), "CPU per request: redis": per(2),
		"CPU per request: replica": per(2), "replica lag max": "4.00", "write-to-visible p99": "7.00",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
}

func TestRenderComparisonJSON(t *testing.T) {
	var b bytes.Buffer
	if err := RenderComparisonJSON(&b, Compare([]*Result{run(1, 2000, 1, 5), run(4, 2000, 1.25, 7)})); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Runs    []struct{ Label string }
		Metrics []struct {
			Name    string
			Values  []*float64
			Changes []*struct {
				Verdict string
				P       *float64
			}
		}
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, b.String())
	}
	if len(doc.Runs) != 2 || doc.Metrics[1].Name != "p50" || doc.Metrics[1].Changes[0] != nil || doc.Metrics[1].Changes[1].Verdict != Slower {
		t.Errorf("unexpected JSON comparison:\n%s", b.String())
	}
}

func TestRenderComparisonHTML(t *testing.T) {
	var results []*Result
	for _, p := range []string{"published/phase-1-read-heavy", "published/phase-2-read-heavy", "published/phase-3-read-heavy", "published/phase-4-read-heavy"} {
		results = append(results, mustRead(t, p))
	}
	var b bytes.Buffer
	if err := RenderComparisonHTML(&b, Compare(results)); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	svgs := regexp.MustCompile(`(?s)<svg.*?</svg>`).FindAllString(page, -1)
	if len(svgs) != 5 {
		t.Errorf("page has %d charts, want 5", len(svgs))
	}
	for _, svg := range svgs {
		if err := wellFormed(svg); err != nil {
			t.Errorf("chart not well-formed: %v", err)
		}
		for _, run := range []string{"A: phase 1", "D: phase 4"} {
			if !strings.Contains(svg, run) {
				t.Errorf("chart lacks the line of %s", run)
			}
		}
	}
	for _, want := range []string{"CPU per request: varnish (µs)", "replica lag max (ms)", "write-to-visible p99 (ms)", "L3 hit rate", "Mann-Whitney"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if regexp.MustCompile(`(?i)<script|<link|(src|href)\s*=\s*["']?(https?:)?//`).MatchString(page) {
		t.Error("page loads something from elsewhere")
	}
}
