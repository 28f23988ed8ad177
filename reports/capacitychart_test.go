package reports

import (
	"bytes"
	"strings"
	"testing"
)

func capacityResult() *Result {
	return &Result{
		SchemaVersion: SchemaVersion, Phase: 1, Scenario: "read-heavy",
		Capacity: &Capacity{
			SLO: "p99<50ms, errors+dropped<=0.1%, achieved>=95% of offered",
			Steps: []CapacityStep{
				{Offered: 1000, Achieved: 999, P50MS: 0.5, P99MS: 4, CPUUSPerRequest: map[string]float64{"app-1": 220}, OtherCores: Float(0.25)},
				{Offered: 4000, Achieved: 3100, P50MS: 80, P99MS: 900, Dropped: 5000},
				{Offered: 2000, Achieved: 1998, P50MS: 0.7, P99MS: 9},
				{Offered: 3000, Achieved: 2990, P50MS: 2, P99MS: 31},
			},
			MaxRate:          3000,
			Demands:          map[string]float64{"app-1": 300e-6, "loadgen": 250e-6},
			PredictedMaxRate: 3300,
			Model:            CapacityModel{Name: "bounds", Bottleneck: "cores", Inputs: map[string]float64{"cores": 2, "background_cores": 0.2, "other_work_cores": 0.15}},
			DataBytesPerUser: 437.2,
		},
	}
}

func TestRenderCapacity(t *testing.T) {
	r := capacityResult()
	var md bytes.Buffer
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## Capacity",
		"Capacity: 3000.0 requests/s under the SLO `p99<50ms",
		"| **3000.0** |",
		"the knee is the highest rate within the SLO",
		"| **knee** |",
		"gives 3300.0 requests/s, limited by cores; measured 3000.0 requests/s: error +10.0% (within 15%)",
		"# scalelab capacity: read-heavy on phase 1",
		"(0.15 of them other work on the machine)",
		"## Demands per request",
		"| app-1 | 300.0 |",
		"| **all, load generator included** | **550.0** |",
		"437 bytes per user",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md.String())
		}
	}
	// Steps are listed by rate, whatever order the search measured them in.
	if i, j := strings.Index(md.String(), "| 2000.0 |"), strings.Index(md.String(), "| **3000.0** |"); i < 0 || j < i {
		t.Errorf("steps not in order of rate:\n%s", md.String())
	}
	var html bytes.Buffer
	if err := RenderHTML(&html, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Latency against offered load", "Throughput against offered load", "knee 3000.0/s", "model 3300.0/s", "SLO p99"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}

	r.Capacity.PredictedMaxRate = 4500
	md.Reset()
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if want := "error +50.0% (outside 15% by 35.0 points)"; !strings.Contains(md.String(), want) {
		t.Errorf("report.md lacks %q", want)
	}
	// The miss is explained from the first failing step: 5,000 dropped
	// arrivals with the cores mostly idle (no CPU measured in it).
	if want := "At the first rate that failed (4000.0/s) 5,000 arrivals were dropped, while the machine's cores were 0% busy"; !strings.Contains(md.String(), want) {
		t.Errorf("report.md lacks %q:\n%s", want, md.String())
	}
	r.Capacity.Steps[1].CPUUSPerRequest = map[string]float64{"app-1": 600}
	md.Reset()
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if want := "5,000 arrivals were dropped, with the cores 93% busy (1.86 of 2, other work included)."; !strings.Contains(md.String(), want) {
		t.Errorf("report.md lacks %q:\n%s", want, md.String())
	}
	// Its failed requests are named by class, the most common first.
	r.Capacity.Steps[1].ErrorRate = 0.02
	r.Capacity.Steps[1].ErrorsByClass = map[string]int64{"timeout": 2, "http 503": 1200, "connection reset": 2}
	md.Reset()
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if want := "(4000.0/s) 2% of requests failed (http 503: 1,200, connection reset: 2, timeout: 2) and 5,000 arrivals were dropped"; !strings.Contains(md.String(), want) {
		t.Errorf("report.md lacks %q:\n%s", want, md.String())
	}
	// An earlier attempt at a lower failed rate, measured again, is not
	// the rate's verdict: the explanation stays with the last attempts.
	r.Capacity.Steps = append(r.Capacity.Steps, CapacityStep{Offered: 3500, Achieved: 3000, P99MS: 400, ErrorRate: 0.2, Retried: true})
	md.Reset()
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if want := "At the first rate that failed (4000.0/s)"; !strings.Contains(md.String(), want) {
		t.Errorf("report.md lacks %q:\n%s", want, md.String())
	}
}

// TestRenderCapacityBox renders the machine's own ceiling as a result
// records it: searched against the room the phase leaves, its knee the
// model's share of the cores; and, in a result from before that room was
// recorded, searched against the phase's own SLO and read off its steps.
func TestRenderCapacityBox(t *testing.T) {
	r := capacityResult()
	r.Capacity.Model.Inputs["utilization"] = 0.85
	r.Capacity.Model.Inputs["low_load_p99_ms"] = 7.4
	r.Capacity.PredictedMaxRate = 4500 // outside 15%: the report explains the miss
	r.Capacity.Steps[1].CPUUSPerRequest = map[string]float64{"app-1": 600}
	r.Capacity.Box = &CapacityBox{
		SLO: "p99<42.6ms, errors+dropped<=0.1%, achieved>=95% of offered", WorkUS: 300,
		Steps: []CapacityStep{
			{Offered: 2400, Achieved: 2400, P99MS: 5, CPUUSPerRequest: map[string]float64{BoxMachine: 340}},
			{Offered: 3000, Achieved: 3000, P99MS: 30, CPUUSPerRequest: map[string]float64{BoxMachine: 330}},
			{Offered: 3750, Achieved: 3600, P99MS: 180, CPUUSPerRequest: map[string]float64{BoxMachine: 320}},
		},
		MaxRate: 3000, KneeBusy: 0.85, Utilization: 0.85, PhaseShare: 1,
	}
	var md bytes.Buffer
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"## The machine's own ceiling",
		"against the room this phase leaves in its objective: p99<42.6ms, errors+dropped<=0.1%, achieved>=95% of offered, the p99 bound less this phase's p99 with no load (7.40 ms)",
		"It met that up to 3000.0 requests/s, with 85% of the cores busy",
		"The model let this phase's requests keep that share of the cores busy, 85%.",
		"This phase's capacity is 100% of the bare server's, a ratio of two searches",
		"The model expected the SLO to break at 85% of the cores (where a bare server on this machine, each request costing 300.0 µs, reached its knee against the room this phase leaves",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report.md lacks %q:\n%s", want, md.String())
		}
	}
	r.Capacity.Box.SLO, r.Capacity.Box.PhaseShare = "", 0
	md.Reset()
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"with the same SLO. It met the SLO up to 3000.0 requests/s",
		"keep 85% of the cores busy, read off these steps",
		"had busy while adding no more than the SLO's bound less this phase's p99₀ of 7.40 ms to its p99",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report.md of an older result lacks %q:\n%s", want, md.String())
		}
	}
}

func TestRenderCapacityRetried(t *testing.T) {
	r := capacityResult()
	r.Capacity.Steps = append(r.Capacity.Steps, CapacityStep{Offered: 2000, Achieved: 1800, P50MS: 0.7, P99MS: 300, Dropped: 900, Retried: true})
	var md bytes.Buffer
	if err := RenderMarkdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if want := "| measured again |"; !strings.Contains(md.String(), want) {
		t.Errorf("report.md lacks %q:\n%s", want, md.String())
	}
	if charts := capacityCharts(r); len(charts) == 0 {
		t.Fatal("no capacity charts")
	}
}

func TestSLOP99(t *testing.T) {
	for slo, want := range map[string]float64{
		"p99<50ms, errors+dropped<=0.1%": 50,
		"p99<1.5s":                       1500,
		"p99<500µs, x":                   0.5,
		"errors<1%":                      0,
		"":                               0,
	} {
		if got := sloP99(slo); got != want {
			t.Errorf("sloP99(%q) = %v, want %v", slo, got, want)
		}
	}
}
