package reports

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// run builds a result whose per-second rate, p50 and p99 scatter around the
// given centers by ±2%, and whose get-user operation has a series too.
func run(seed uint64, rate, p50, p99 float64) *Result {
	r := &Result{SchemaVersion: SchemaVersion, Phase: 1, Scenario: "read-heavy"}
	rates := noisy(seed, 30, rate, rate/50)
	p50s := noisy(seed+100, 30, p50, p50/50)
	p99s := noisy(seed+200, 30, p99, p99/50)
	get := Operation{Name: "get-user"}
	for i := range rates {
		req := int64(rates[i])
		r.Series = append(r.Series, Second{T: i, Requests: req, Rate: rates[i], Offered: rate, P50MS: p50s[i], P99MS: p99s[i]})
		get.Series = append(get.Series, OpSecond{T: i, Requests: req, Rate: rates[i], P50MS: p50s[i], P99MS: p99s[i]})
		r.Totals.Requests += req
		get.Count += req
	}
	r.Totals.Rate = median(rates)
	r.Totals.LatencyMS = Latency{P50: median(p50s), P99: median(p99s)}
	get.LatencyMS = r.Totals.LatencyMS
	r.Operations = []Operation{get}
	return r
}

func verdicts(c *Comparison, run int) map[string]string {
	v := map[string]string{}
	for _, m := range c.Metrics {
		v[m.Name] = m.Changes[run].Verdict
	}
	return v
}

func TestCompare(t *testing.T) {
	base := run(1, 2000, 1, 5)
	tests := []struct {
		name string
		cand *Result
		want map[string]string
	}{
		{
			name: "identical",
			cand: base,
			want: map[string]string{"rate": NoChange, "p50": NoChange, "p99": NoChange, "error rate": NoChange,
				"get-user p50": NoChange, "get-user p99": NoChange},
		},
		{
			name: "same load, other noise",
			cand: run(2, 2000, 1, 5),
			want: map[string]string{"rate": NoChange, "p50": NoChange, "p99": NoChange, "error rate": NoChange,
				"get-user p50": NoChange, "get-user p99": NoChange},
		},
		{
			name: "more throughput, lower latency",
			cand: run(3, 2200, 0.8, 4),
			want: map[string]string{"rate": Faster, "p50": Faster, "p99": Faster, "error rate": NoChange,
				"get-user p50": Faster, "get-user p99": Faster},
		},
		{
			name: "higher latency",
			cand: run(4, 2000, 1.25, 7),
			want: map[string]string{"rate": NoChange, "p50": Slower, "p99": Slower, "error rate": NoChange,
				"get-user p50": Slower, "get-user p99": Slower},
		},
		{
			// 1.5% more is real (30 seconds of ±2% noise show it) but below
			// the minimum effect worth reporting.
			name: "a real but tiny change",
			cand: run(5, 2030, 1, 5),
			want: map[string]string{"rate": NoChange, "p50": NoChange, "p99": NoChange, "error rate": NoChange,
				"get-user p50": NoChange, "get-user p99": NoChange},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Compare([]*Result{base, tt.cand})
			if diff := cmp.Diff(tt.want, verdicts(c, 1)); diff != "" {
				t.Errorf("verdicts mismatch (-want +got):\n%s", diff)
			}
			for _, m := range c.Metrics {
				if m.Changes[0] != nil {
					t.Errorf("%s: the baseline has a change %+v, want nil", m.Name, m.Changes[0])
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		bad := run(6, 2000, 1, 5)
		for i := range bad.Series {
			bad.Series[i].Errors = bad.Series[i].Requests / 100 // 1%
			bad.Totals.Errors += bad.Series[i].Errors
		}
		got := verdicts(Compare([]*Result{base, bad}), 1)["error rate"]
		if got != Worse {
			t.Errorf("error rate 0%% → 1%%: verdict %q, want %q", got, Worse)
		}
	})

	t.Run("no samples", func(t *testing.T) {
		a, b := run(7, 2000, 1, 5), run(8, 2000, 1, 5)
		b.Operations[0].Series = nil
		a.Cache.L1HitRate = Float(0.9)
		b.Cache.L1HitRate, b.Cache.L2HitRate = Float(0.95), Float(0.5)
		c := Compare([]*Result{a, b})
		reasons := map[string]string{}
		for _, m := range c.Metrics {
			if ch := m.Changes[1]; ch.Verdict == NoVerdict {
				reasons[m.Name] = ch.Reason
			}
		}
		want := map[string]string{
			"get-user p50": "no per-second samples",
			"get-user p99": "no per-second samples",
			"L1 hit rate":  "no per-second samples",
			"L2 hit rate":  "not in A",
		}
		if diff := cmp.Diff(want, reasons); diff != "" {
			t.Errorf("n/a reasons mismatch (-want +got):\n%s", diff)
		}
		for _, m := range c.Metrics {
			if m.Name == "L3 hit rate" {
				t.Errorf("L3 hit rate compared, but no run has an L3 tier")
			}
		}
	})

	t.Run("too few samples", func(t *testing.T) {
		a, b := run(9, 2000, 1, 5), run(10, 3000, 1, 5)
		a.Series, b.Series = a.Series[:3], b.Series[:3]
		ch := Compare([]*Result{a, b}).Metrics[0].Changes[1]
		if ch.Verdict != NoVerdict || ch.Reason != "fewer than 4 per-second samples" {
			t.Errorf("rate with 3 samples each: %+v, want n/a for too few samples", ch)
		}
	})
}

func TestRenderComparison(t *testing.T) {
	var results []*Result
	for _, name := range []string{"phase1-read-heavy", "phase3-hot-key", "empty"} {
		results = append(results, mustRead(t, "testdata/"+name+".json"))
	}
	var b bytes.Buffer
	if err := RenderComparison(&b, Compare(results)); err != nil {
		t.Fatal(err)
	}
	golden := "testdata/compare.txt.golden"
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
		t.Errorf("RenderComparison mismatch (-%s +got):\n%s", golden, diff)
	}
	if !strings.Contains(b.String(), "Mann-Whitney U") {
		t.Error("the comparison does not say which test it used")
	}
}

func TestRenderComparisonEdges(t *testing.T) {
	for _, tt := range []struct {
		name    string
		results []*Result
		want    string
	}{
		{"none", nil, "scalelab compare: 0 runs"},
		{"one", []*Result{run(1, 2000, 1, 5)}, "scalelab compare: 1 run\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := RenderComparison(&b, Compare(tt.results)); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(b.String(), tt.want) {
				t.Errorf("RenderComparison = %q, want it to start with %q", b.String(), tt.want)
			}
		})
	}
}
