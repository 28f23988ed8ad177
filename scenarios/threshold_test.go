package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseThreshold(t *testing.T) {
	tests := []struct {
		in     string
		want   Threshold
		String string // canonical form; "" means the input
	}{
		{in: "p99 < 50ms", want: Threshold{Metric: MetricP99, Cmp: "<", Bound: 50, Latency: 50 * time.Millisecond}},
		{in: "p50<1.5ms", want: Threshold{Metric: MetricP50, Cmp: "<", Bound: 1.5, Latency: 1500 * time.Microsecond}, String: "p50 < 1.5ms"},
		{in: "p999 <= 1s", want: Threshold{Metric: MetricP999, Cmp: "<=", Bound: 1000, Latency: time.Second}},
		{in: "p99.9 < 100ms", want: Threshold{Metric: MetricP999, Cmp: "<", Bound: 100, Latency: 100 * time.Millisecond}, String: "p999 < 100ms"},
		{in: "get-user.p99.9 < 100ms", want: Threshold{Op: OpGetUser, Metric: MetricP999, Cmp: "<", Bound: 100, Latency: 100 * time.Millisecond}, String: "get-user.p999 < 100ms"},
		{in: "max < 2s", want: Threshold{Metric: MetricMax, Cmp: "<", Bound: 2000, Latency: 2 * time.Second}},
		{in: "mean < 800us", want: Threshold{Metric: MetricMean, Cmp: "<", Bound: 0.8, Latency: 800 * time.Microsecond}, String: "mean < 800µs"},
		{in: "errors < 0.1%", want: Threshold{Metric: MetricErrors, Cmp: "<", Bound: 0.1}},
		{in: "errors <= 0%", want: Threshold{Metric: MetricErrors, Cmp: "<=", Bound: 0}},
		{in: "rate > 1000", want: Threshold{Metric: MetricRate, Cmp: ">", Bound: 1000}},
		{in: "rate >= 99.5/s", want: Threshold{Metric: MetricRate, Cmp: ">=", Bound: 99.5}, String: "rate >= 99.5"},
		{in: "get-user.p99 < 20ms", want: Threshold{Op: OpGetUser, Metric: MetricP99, Cmp: "<", Bound: 20, Latency: 20 * time.Millisecond}},
		{in: "update-user.errors < 1%", want: Threshold{Op: OpUpdateUser, Metric: MetricErrors, Cmp: "<", Bound: 1}},
		{in: "lost_writes == 0", want: Threshold{Metric: MetricLostWrites, Cmp: "==", Bound: 0}},
		{in: "ryw_violations<=2", want: Threshold{Metric: MetricRYWViolations, Cmp: "<=", Bound: 2}, String: "ryw_violations <= 2"},
		{in: "staleness_p99 < 1s", want: Threshold{Metric: MetricStalenessP99, Cmp: "<", Bound: 1000, Latency: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseThreshold(tt.in)
			if err != nil {
				t.Fatalf("ParseThreshold(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseThreshold(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
			want := tt.String
			if want == "" {
				want = tt.in
			}
			if s := got.String(); s != want {
				t.Errorf("String() = %q, want %q", s, want)
			}
			again, err := ParseThreshold(got.String())
			if err != nil || again != got {
				t.Errorf("ParseThreshold(String()) = %+v, %v; want it to round-trip", again, err)
			}
		})
	}
}

func TestParseThresholdErrors(t *testing.T) {
	tests := map[string]string{
		"no operator":               "want [OP.]METRIC < VALUE",
		"p99 << 5ms":                "want [OP.]METRIC < VALUE",
		"p99 < 5 ms":                "want [OP.]METRIC < VALUE",
		"p99 <":                     "want [OP.]METRIC < VALUE",
		"< 5ms":                     "want [OP.]METRIC < VALUE",
		"p98 < 5ms":                 `unknown metric "p98"`,
		"p99 < 5":                   "p99 needs a positive duration such as 50ms",
		"p99 < -5ms":                "p99 needs a positive duration",
		"errors < 0.1":              "errors needs a percentage",
		"errors < 101%":             "errors needs a percentage",
		"rate > fast":               "rate needs requests per second",
		"rate > -1":                 "rate needs requests per second",
		"get-users.p99 < 5ms":       `unknown operation "get-users"`,
		".p99 < 5ms":                `empty operation`,
		"get-user.lost_writes == 0": "judged on the whole run",
		"lost_writes == -1":         "lost_writes needs a count",
		"lost_writes == 0.5":        "lost_writes needs a count",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			_, err := ParseThreshold(in)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("ParseThreshold(%q) error = %v, want one containing %q", in, err, want)
			}
		})
	}
}

func TestEvaluate(t *testing.T) {
	obs := Observed{
		Total: Stats{Requests: 10000, Errors: 5, Rate: 1995.5, P50: 2 * time.Millisecond,
			P99: 40 * time.Millisecond, Max: 900 * time.Millisecond, Mean: 3 * time.Millisecond},
		Ops: map[Op]Stats{
			OpGetUser:    {Requests: 9500, Rate: 1900, P99: 30 * time.Millisecond},
			OpUpdateUser: {},
		},
	}
	tests := []struct {
		threshold string
		pass      bool
		value     float64
		noData    bool
		String    string
	}{
		{"p99 < 50ms", true, 40, false, "PASS p99 < 50ms (observed 40ms)"},
		{"p99 < 40ms", false, 40, false, "FAIL p99 < 40ms (observed 40ms)"},
		{"p99 <= 40ms", true, 40, false, "PASS p99 <= 40ms (observed 40ms)"},
		{"max < 1s", true, 900, false, "PASS max < 1s (observed 900ms)"},
		{"mean < 2ms", false, 3, false, "FAIL mean < 2ms (observed 3ms)"},
		{"errors < 0.1%", true, 0.05, false, "PASS errors < 0.1% (observed 0.05%)"},
		{"errors < 0.01%", false, 0.05, false, "FAIL errors < 0.01% (observed 0.05%)"},
		{"rate > 1990", true, 1995.5, false, "PASS rate > 1990 (observed 1995.5 req/s)"},
		{"rate > 2000", false, 1995.5, false, "FAIL rate > 2000 (observed 1995.5 req/s)"},
		{"get-user.p99 < 20ms", false, 30, false, "FAIL get-user.p99 < 20ms (observed 30ms)"},
		{"update-user.p99 < 20ms", false, 0, true, "FAIL update-user.p99 < 20ms (observed no data)"},
		{"create-user.rate > 1", false, 0, true, "FAIL create-user.rate > 1 (observed no data)"},
	}
	for _, tt := range tests {
		t.Run(tt.threshold, func(t *testing.T) {
			th, err := ParseThreshold(tt.threshold)
			if err != nil {
				t.Fatal(err)
			}
			got := th.Evaluate(obs)
			if got.Pass != tt.pass || got.NoData != tt.noData || (!tt.noData && got.Value != tt.value) {
				t.Errorf("Evaluate = pass %v value %v no data %v, want %v %v %v",
					got.Pass, got.Value, got.NoData, tt.pass, tt.value, tt.noData)
			}
			if s := got.String(); s != tt.String {
				t.Errorf("String() = %q, want %q", s, tt.String)
			}
		})
	}

	t.Run("all", func(t *testing.T) {
		var ts []Threshold
		for _, s := range []string{"p99 < 50ms", "rate > 2000"} {
			th, _ := ParseThreshold(s)
			ts = append(ts, th)
		}
		outs, ok := Evaluate(ts, obs)
		if ok || len(outs) != 2 || !outs[0].Pass || outs[1].Pass {
			t.Errorf("Evaluate(p99 < 50ms, rate > 2000) = %v, %v; want the second to fail", outs, ok)
		}
	})
}

// Consistency thresholds judge the run's consistency check, and have no
// data (so fail) in a run that did not check.
func TestEvaluateConsistency(t *testing.T) {
	lost, _ := ParseThreshold("lost_writes == 0")
	stale, _ := ParseThreshold("staleness_p99 < 1s")
	if out := lost.Evaluate(Observed{}); !out.NoData || out.Pass {
		t.Errorf("lost_writes == 0 without a check = %+v, want no data and a failure", out)
	}
	clean := Observed{Consistency: &Consistency{StalenessP99: 300 * time.Millisecond}}
	for _, th := range []Threshold{lost, stale} {
		if out := th.Evaluate(clean); !out.Pass {
			t.Errorf("%s on a clean check = %s, want PASS", th, out)
		}
	}
	bad := Observed{Consistency: &Consistency{LostWrites: 2, StalenessP99: 1500 * time.Millisecond}}
	for _, th := range []Threshold{lost, stale} {
		if out := th.Evaluate(bad); out.Pass {
			t.Errorf("%s on %+v = %s, want FAIL", th, *bad.Consistency, out)
		}
	}
	if out := lost.Evaluate(bad); out.Observed() != "2" {
		t.Errorf("Observed() = %q, want \"2\"", out.Observed())
	}
}
