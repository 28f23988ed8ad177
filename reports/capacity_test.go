package reports

import (
	"encoding/json"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// steps builds capacity steps whose components cost exactly
// background + demand·rate cores at each achieved rate.
func linearSteps(rates []float64, demand, background map[string]float64) []CapacityStep {
	var out []CapacityStep
	for _, x := range rates {
		s := CapacityStep{Offered: x, Achieved: x, CPUUSPerRequest: map[string]float64{}}
		for name, d := range demand {
			s.CPUUSPerRequest[name] = (background[name] + d*x) / x * 1e6
		}
		out = append(out, s)
	}
	return out
}

func TestComputeDemandsRegression(t *testing.T) {
	demand := map[string]float64{"app-1": 200e-6, "redis": 50e-6, "prometheus": 1e-6}
	background := map[string]float64{"app-1": 0.02, "prometheus": 0.01}
	steps := linearSteps([]float64{500, 1000, 2000, 4000}, demand, background)
	// Above the knee the app spends more per request (contention): left
	// out.
	steps = append(steps, CapacityStep{Offered: 8000, Achieved: 6000, CPUUSPerRequest: map[string]float64{"app-1": 330, "redis": 60, "prometheus": 2}})
	d, err := ComputeDemands(steps, 4000)
	if err != nil {
		t.Fatalf("ComputeDemands: %v", err)
	}
	if d.Method != MethodRegression || d.Steps != 4 {
		t.Errorf("method %q over %d steps, want regression over 4", d.Method, d.Steps)
	}
	approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))+1e-15 })
	if diff := cmp.Diff(demand, d.PerRequest, approx); diff != "" {
		t.Errorf("PerRequest (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(background, d.Background, approx); diff != "" {
		t.Errorf("Background (-want +got):\n%s", diff)
	}
	if len(d.Ratio) != 0 {
		t.Errorf("components on the ratio: %q, want none", d.Ratio)
	}
	// The per-step ratio at 500/s would say 240 µs for the app: the
	// background spread over few requests.
	if r := steps[0].CPUUSPerRequest["app-1"]; math.Abs(r-240) > 1e-9 {
		t.Errorf("ratio at 500/s = %v µs, want 240", r)
	}
}

func TestComputeDemandsNegativeInterceptFitsThroughOrigin(t *testing.T) {
	// CPU per request that falls a little with rate by noise: the fit's
	// intercept comes out negative, so the line goes through the origin.
	steps := []CapacityStep{
		{Offered: 1000, Achieved: 1000, CPUUSPerRequest: map[string]float64{"app-1": 100}},
		{Offered: 2000, Achieved: 2000, CPUUSPerRequest: map[string]float64{"app-1": 104}},
		{Offered: 3000, Achieved: 3000, CPUUSPerRequest: map[string]float64{"app-1": 106}},
	}
	d, err := ComputeDemands(steps, 3000)
	if err != nil {
		t.Fatalf("ComputeDemands: %v", err)
	}
	// Σxy/Σxx = (0.1·1000 + 0.208·2000 + 0.318·3000)/(1000²+2000²+3000²).
	want := (0.1*1000 + 0.208*2000 + 0.318*3000) / 14e6
	if got := d.PerRequest["app-1"]; math.Abs(got-want) > 1e-12 {
		t.Errorf("app-1 = %v, want %v", got, want)
	}
	if b, ok := d.Background["app-1"]; ok {
		t.Errorf("background = %v, want none", b)
	}
}

func TestComputeDemandsFallsBackToMedianRatio(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []CapacityStep
		knee  float64
		want  float64
	}{
		{
			name: "two steps",
			steps: []CapacityStep{
				{Offered: 1000, Achieved: 1000, CPUUSPerRequest: map[string]float64{"app-1": 100}},
				{Offered: 2000, Achieved: 2000, CPUUSPerRequest: map[string]float64{"app-1": 120}},
			},
			knee: 2000, want: 110e-6,
		},
		{
			name: "rates too close to fit",
			steps: []CapacityStep{
				{Offered: 1000, Achieved: 1000, CPUUSPerRequest: map[string]float64{"app-1": 100}},
				{Offered: 1050, Achieved: 1050, CPUUSPerRequest: map[string]float64{"app-1": 300}},
				{Offered: 1100, Achieved: 1100, CPUUSPerRequest: map[string]float64{"app-1": 110}},
			},
			knee: 1100, want: 110e-6,
		},
		{
			// A search whose knee is near its first step: 250 to 360/s
			// is too narrow a range to tell fixed from per-request cost.
			name: "rates spanning less than a factor of two",
			steps: []CapacityStep{
				{Offered: 250, Achieved: 250, CPUUSPerRequest: map[string]float64{"app-1": 400}},
				{Offered: 313, Achieved: 313, CPUUSPerRequest: map[string]float64{"app-1": 290}},
				{Offered: 344, Achieved: 344, CPUUSPerRequest: map[string]float64{"app-1": 270}},
				{Offered: 360, Achieved: 360, CPUUSPerRequest: map[string]float64{"app-1": 260}},
			},
			knee: 360, want: 280e-6,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ComputeDemands(tc.steps, tc.knee)
			if err != nil {
				t.Fatalf("ComputeDemands: %v", err)
			}
			if d.Method != MethodRatio {
				t.Errorf("method = %q, want the ratio", d.Method)
			}
			if got := d.PerRequest["app-1"]; math.Abs(got-tc.want) > 1e-15 {
				t.Errorf("app-1 = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestComputeDemandsNoStep(t *testing.T) {
	steps := []CapacityStep{{Offered: 5000, Achieved: 4000, CPUUSPerRequest: map[string]float64{"app-1": 100}}}
	if _, err := ComputeDemands(steps, 1000); err == nil {
		t.Error("ComputeDemands with no step below the knee: nil error, want one")
	}
}

func TestCapacityRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := &Result{Phase: 3, Scenario: "read-heavy", Capacity: &Capacity{
		SLO:              "p99<50ms",
		Steps:            []CapacityStep{{Offered: 1000, Achieved: 999, P50MS: 0.5, P99MS: 3, CPUUSPerRequest: map[string]float64{"app-1": 100}}},
		MaxRate:          1000,
		Demands:          map[string]float64{"app-1": 100e-6},
		PredictedMaxRate: 1100,
		Model:            CapacityModel{Name: "bounds", Bottleneck: "cores", Inputs: map[string]float64{"cores": 2}},
		DataBytesPerUser: 812,
	}}
	if err := r.Write(dir); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err := Read(filepath.Join(dir, ResultFile))
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if diff := cmp.Diff(r.Capacity, got.Capacity); diff != "" {
		t.Errorf("capacity after a round trip (-want +got):\n%s", diff)
	}
}

// TestCapacityJSONNames pins the binding JSON names of the section.
func TestCapacityJSONNames(t *testing.T) {
	data, err := json.Marshal(Capacity{Steps: []CapacityStep{{}}})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"slo", "steps", "max_rate", "demands", "predicted_max_rate", "model"} {
		if _, ok := got[k]; !ok {
			t.Errorf("capacity JSON has no %q: %s", k, data)
		}
	}
	var steps []map[string]json.RawMessage
	if err := json.Unmarshal(got["steps"], &steps); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"offered", "achieved", "p50_ms", "p99_ms", "error_rate", "dropped", "cpu_us_per_request"} {
		if _, ok := steps[0][k]; !ok {
			t.Errorf("capacity step JSON has no %q: %s", k, got["steps"])
		}
	}
}

func TestComputeDemandsFlatComponentFallsBack(t *testing.T) {
	// The app's CPU grows with the rate; the replica's busy cores stay
	// flat (its slope would be 0): the replica falls back to its median
	// ratio and says so.
	steps := []CapacityStep{
		{Offered: 1000, Achieved: 1000, CPUUSPerRequest: map[string]float64{"app-1": 100, "replica-1": 40}},
		{Offered: 2000, Achieved: 2000, CPUUSPerRequest: map[string]float64{"app-1": 100, "replica-1": 20}},
		{Offered: 4000, Achieved: 4000, CPUUSPerRequest: map[string]float64{"app-1": 100, "replica-1": 10}},
	}
	d, err := ComputeDemands(steps, 4000)
	if err != nil {
		t.Fatalf("ComputeDemands: %v", err)
	}
	if d.Method != MethodRegression || !slices.Equal(d.Ratio, []string{"replica-1"}) {
		t.Errorf("method %q, ratio components %q, want the regression with replica-1 on its ratio", d.Method, d.Ratio)
	}
	if got := d.PerRequest["replica-1"]; math.Abs(got-20e-6) > 1e-15 {
		t.Errorf("replica-1 = %v, want its median ratio 20e-6", got)
	}
	if got := d.PerRequest["app-1"]; math.Abs(got-100e-6) > 1e-12 {
		t.Errorf("app-1 = %v, want 100e-6", got)
	}
}
