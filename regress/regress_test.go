package regress

import (
	"bytes"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// These tests cover the check's arithmetic and its baseline file; the
// measurement itself is timing and is exercised by `make regress`, never
// by a unit test.

func TestJudge(t *testing.T) {
	b := &Baseline{Ratio: 0.8, Tolerance: 0.1} // floor 0.72
	tests := []struct {
		name  string
		ratio float64
		pass  bool
		line  string
	}{
		{"above the baseline", 0.9, true, "pass: ratio 0.900 >= baseline 0.800 × (1 − 0.10) = 0.720"},
		{"within the tolerance", 0.75, true, "pass: ratio 0.750 >= baseline 0.800 × (1 − 0.10) = 0.720"},
		{"at the floor", 0.72, true, "pass: ratio 0.720 >= baseline 0.800 × (1 − 0.10) = 0.720"},
		{"below the floor", 0.64, false, "throughput regression: ratio 0.640 < baseline 0.800 × (1 − 0.10) = 0.720"},
		{"nothing measured", 0, false, "throughput regression: ratio 0.000 < baseline 0.800 × (1 − 0.10) = 0.720"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := judge(tt.ratio, b)
			if v.pass != tt.pass || v.line != tt.line {
				t.Errorf("judge(%v, %+v) = %v %q, want %v %q", tt.ratio, *b, v.pass, v.line, tt.pass, tt.line)
			}
			if math.Abs(v.floor-0.72) > 1e-12 {
				t.Errorf("judge(%v).floor = %v, want 0.72", tt.ratio, v.floor)
			}
		})
	}
}

func TestParseBaseline(t *testing.T) {
	good := `{"ratio": 0.85, "tolerance": 0.1, "measured_on": "ci box", "command": "scalelab regress --update-baseline",
		"setup": "s", "rounds": [0.8, 0.9]}`
	b, err := parseBaseline([]byte(good))
	if err != nil {
		t.Fatalf("parseBaseline(good) error %v", err)
	}
	want := &Baseline{Ratio: 0.85, Tolerance: 0.1, MeasuredOn: "ci box", Command: "scalelab regress --update-baseline",
		Setup: "s", Rounds: []float64{0.8, 0.9}}
	if diff := cmp.Diff(want, b); diff != "" {
		t.Errorf("parseBaseline(good) mismatch (-want +got):\n%s", diff)
	}

	bad := map[string]struct{ data, err string }{
		"unknown field":     {`{"ratio": 0.8, "tolerance": 0.1, "tolerence": 0.2}`, `unknown field "tolerence"`},
		"trailing data":     {`{"ratio": 0.8, "tolerance": 0.1} {}`, "trailing data"},
		"malformed":         {`{"ratio": 0.8,`, "unexpected EOF"},
		"wrong type":        {`{"ratio": "0.8", "tolerance": 0.1}`, "cannot unmarshal string"},
		"no ratio":          {`{"tolerance": 0.1}`, "ratio 0: want a positive ratio"},
		"negative ratio":    {`{"ratio": -1, "tolerance": 0.1}`, "ratio -1: want a positive ratio"},
		"absurd ratio":      {`{"ratio": 50, "tolerance": 0.1}`, "ratio 50: want a positive ratio"},
		"negative tol":      {`{"ratio": 0.8, "tolerance": -0.1}`, "tolerance -0.1: want a fraction in [0, 1)"},
		"tolerance of one":  {`{"ratio": 0.8, "tolerance": 1}`, "tolerance 1: want a fraction in [0, 1)"},
		"percent tolerance": {`{"ratio": 0.8, "tolerance": 10}`, "tolerance 10: want a fraction in [0, 1)"},
	}
	for name, tt := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := parseBaseline([]byte(tt.data))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("parseBaseline(%s) error %v, want one containing %q", tt.data, err, tt.err)
			}
		})
	}
}

func TestReadBaselineNamesTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	if _, err := ReadBaseline(missing); err == nil || !strings.Contains(err.Error(), missing+" does not exist") {
		t.Errorf("ReadBaseline(missing) error %v, want one saying %s does not exist", err, missing)
	}
	badFile := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badFile, []byte(`{"ratio": 2, "tolerance": 2}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBaseline(badFile); err == nil || !strings.Contains(err.Error(), "baseline "+badFile+": tolerance 2") {
		t.Errorf("ReadBaseline(bad) error %v, want one naming %s and the tolerance", err, badFile)
	}
}

func TestWriteBaselineRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reports", "baseline", "regress.json")
	want := &Baseline{Ratio: 0.846, Tolerance: 0.1, MeasuredOn: "here, now", Command: "scalelab regress --update-baseline",
		Setup: "GET", Rounds: []float64{0.8, 0.846, 0.9}}
	if err := WriteBaseline(path, want); err != nil {
		t.Fatalf("writeBaseline error %v", err)
	}
	got, err := ReadBaseline(path)
	if err != nil {
		t.Fatalf("readBaseline after writeBaseline error %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("baseline round trip mismatch (-want +got):\n%s", diff)
	}
	if err := WriteBaseline(path, &Baseline{Ratio: 0, Tolerance: 0.1}); err == nil {
		t.Error("WriteBaseline(ratio 0) succeeded, want an error")
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want summary
	}{
		{"one", []float64{0.8}, summary{median: 0.8, min: 0.8, max: 0.8, q1: 0.8, q3: 0.8}},
		{"odd", []float64{0.9, 0.7, 0.8, 1.0, 0.6}, summary{median: 0.8, min: 0.6, max: 1.0, q1: 0.7, q3: 0.9}},
		{"even", []float64{0.9, 0.7, 0.8, 0.6}, summary{median: 0.75, min: 0.6, max: 0.9, q1: 0.675, q3: 0.825}},
		{"empty", nil, summary{}},
	}
	approx := cmp.Comparer(func(a, b float64) bool { return math.Abs(a-b) < 1e-9 })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]float64(nil), tt.in...)
			got := summarize(in)
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(summary{}), approx); diff != "" {
				t.Errorf("summarize(%v) mismatch (-want +got):\n%s", tt.in, diff)
			}
			if !cmp.Equal(in, tt.in) {
				t.Errorf("summarize reordered its input: %v, was %v", in, tt.in)
			}
		})
	}
}

func TestRoundRatios(t *testing.T) {
	// The server did 800 requests on 20ms of CPU (25µs each), the bare
	// handler 1000 on 20ms (20µs each): 0.8 per CPU-second. Per
	// wall-clock second the server had the machine to itself for longer.
	r := round{
		server: segment{requests: 800, wall: 500 * time.Millisecond, cpu: 20 * time.Millisecond},
		bare:   segment{requests: 1000, wall: 250 * time.Millisecond, cpu: 20 * time.Millisecond},
	}
	if got := r.ratio(); math.Abs(got-0.8) > 1e-9 {
		t.Errorf("ratio() = %v, want 0.8", got)
	}
	if got := r.wallRatio(); math.Abs(got-0.4) > 1e-9 {
		t.Errorf("wallRatio() = %v, want 0.4", got)
	}
	if got := r.server.cpuPerRequest(); got != 25*time.Microsecond {
		t.Errorf("server cpuPerRequest() = %v, want 25µs", got)
	}
	if got := (round{server: r.server}).ratio(); got != 0 {
		t.Errorf("ratio() with nothing measured for bare = %v, want 0", got)
	}
	if got := (segment{}).cpuPerRequest(); got != 0 {
		t.Errorf("empty segment cpuPerRequest() = %v, want 0", got)
	}
}

func TestPlantedCost(t *testing.T) {
	tests := []struct {
		cpu  time.Duration
		f    float64
		want time.Duration
	}{
		{24 * time.Microsecond, 0.2, 6 * time.Microsecond}, // 24/(24+6) = 0.8
		{24 * time.Microsecond, 0.5, 24 * time.Microsecond},
		{24 * time.Microsecond, 0, 0},
		{24 * time.Microsecond, 1, 0},
	}
	for _, tt := range tests {
		if got := plantedCost(tt.cpu, tt.f); got != tt.want {
			t.Errorf("plantedCost(%v, %v) = %v, want %v", tt.cpu, tt.f, got, tt.want)
		}
	}
	b := &burner{perIteration: 0.5}
	if got := b.iterationsFor(6 * time.Microsecond); got != 12000 {
		t.Errorf("iterationsFor(6µs) at 0.5ns per iteration = %d, want 12000", got)
	}
}

func TestBareHandlerWritesTheCapturedResponse(t *testing.T) {
	header := http.Header{"Content-Type": {"application/json"}, "Etag": {`"abc"`}}
	body := []byte(`{"id":"x"}`)
	h := bareHandler(header, body)
	header.Set("Content-Type", "text/plain") // the handler keeps its own copy
	for range 2 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/users/anything", nil))
		if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), body) {
			t.Errorf("bare GET = %d %q, want 200 %q", rec.Code, rec.Body.Bytes(), body)
		}
		want := http.Header{"Content-Type": {"application/json"}, "Etag": {`"abc"`}}
		if diff := cmp.Diff(want, rec.Header()); diff != "" {
			t.Errorf("bare GET headers mismatch (-want +got):\n%s", diff)
		}
	}
}

func TestScaleBurn(t *testing.T) {
	tests := []struct {
		name  string
		guess int
		grew  float64
		f     float64
		want  int
	}{
		// A 20% cut needs the CPU per request to grow by 25%.
		{"guess grew too much", 4000, 0.40, 0.2, 2500},
		{"guess was right", 4000, 0.25, 0.2, 4000},
		{"guess grew too little", 4000, 0.125, 0.2, 8000},
		{"nothing measured", 4000, 0, 0.2, 4000},
		{"noise shrank it", 4000, -0.05, 0.2, 4000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scaleBurn(tt.guess, tt.grew, tt.f); got != tt.want {
				t.Errorf("scaleBurn(%d, %v, %v) = %d, want %d", tt.guess, tt.grew, tt.f, got, tt.want)
			}
		})
	}
}
