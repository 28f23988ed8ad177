package lab_test

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"scalelab/lab"
	"scalelab/reports"
	"scalelab/scenarios"
)

// kneeAt is a fake system that meets a 50 ms p99 up to knee requests/s and
// misses it above.
func kneeAt(knee float64, rates *[]float64) func(context.Context, float64) (reports.CapacityStep, error) {
	return func(_ context.Context, rate float64) (reports.CapacityStep, error) {
		*rates = append(*rates, rate)
		p99 := 5.0
		if rate > knee {
			p99 = 400
		}
		return reports.CapacityStep{Offered: rate, Achieved: rate, P50MS: 1, P99MS: p99}, nil
	}
}

func TestSearch(t *testing.T) {
	slo := lab.SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	judge := func(s reports.CapacityStep) lab.Verdict { return slo.Judge(s, 10*time.Second) }
	policy := lab.SearchPolicy{Start: 250, Factor: 2, Precision: 0.05, MaxSteps: 14, Floor: 10}
	tests := []struct {
		name      string
		knee      float64
		policy    lab.SearchPolicy
		wantRates []float64
		wantMax   float64
	}{
		{
			// Doubles to the first fail at 2000, then halves the gap
			// until fail and pass are within 5%.
			name: "grow then bisect", knee: 1234, policy: policy,
			wantRates: []float64{250, 500, 1000, 2000, 1500, 1250, 1130, 1190, 1220},
			wantMax:   1220,
		},
		{
			// The first step already fails: halve until one passes,
			// then bisect between it and the lowest fail.
			name: "first step fails", knee: 100, policy: policy,
			wantRates: []float64{250, 125, 62.5, 93.8, 109, 101, 97.4},
			wantMax:   97.4,
		},
		{
			// At low rates the midpoints keep their decimals.
			name: "knee at a low rate", knee: 16.5, policy: policy,
			wantRates: []float64{250, 125, 62.5, 31.25, 15.625, 23.4, 19.5, 17.6, 16.6, 16.1},
			wantMax:   16.1,
		},
		{
			name: "nothing passes above the floor", knee: 5, policy: policy,
			wantRates: []float64{250, 125, 62.5, 31.25, 15.625},
			wantMax:   0,
		},
		{
			name: "step budget spent", knee: 1234, policy: lab.SearchPolicy{Start: 250, Factor: 2, Precision: 0.05, MaxSteps: 5, Floor: 10},
			wantRates: []float64{250, 500, 1000, 2000, 1500},
			wantMax:   1000,
		},
		{
			name: "every step passes within the budget", knee: 1e9, policy: lab.SearchPolicy{Start: 100, Factor: 3, Precision: 0.05, MaxSteps: 3, Floor: 10},
			wantRates: []float64{100, 300, 900},
			wantMax:   900,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rates []float64
			steps, maxRate, err := lab.Search(context.Background(), tt.policy, kneeAt(tt.knee, &rates), judge)
			if err != nil {
				t.Fatalf("Search: %v", err)
			}
			if diff := cmp.Diff(tt.wantRates, rates); diff != "" {
				t.Errorf("rates measured (-want +got):\n%s", diff)
			}
			if maxRate != tt.wantMax {
				t.Errorf("Search max rate = %v, want %v", maxRate, tt.wantMax)
			}
			if len(steps) != len(rates) {
				t.Fatalf("Search returned %d steps for %d measurements", len(steps), len(rates))
			}
			for _, s := range steps {
				if want := s.Step.Offered <= tt.knee; s.Pass != want {
					t.Errorf("step at %v/s: pass %v, want %v", s.Step.Offered, s.Pass, want)
				}
				if !s.Pass && s.Why == "" {
					t.Errorf("step at %v/s failed without a reason", s.Step.Offered)
				}
			}
		})
	}
}

// TestSearchConfirmsFailures: one stall fails a step at a rate the system
// serves; measured again, the rate passes twice (after a failure even a
// clear pass is one vote), and the search goes on to the real knee instead
// of stopping below it. A rate that fails twice fails.
func TestSearchConfirmsFailures(t *testing.T) {
	slo := lab.SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	judge := func(s reports.CapacityStep) lab.Verdict { return slo.Judge(s, 10*time.Second) }
	var rates []float64
	measure := kneeAt(1234, &rates)
	stalled := false
	flaky := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		s, err := measure(ctx, rate)
		if rate == 500 && !stalled {
			stalled = true
			s.P99MS, s.Dropped = 300, 50
		}
		return s, err
	}
	policy := lab.SearchPolicy{Start: 250, Factor: 2, Precision: 0.05, MaxSteps: 20, Floor: 10, Votes: 3}
	steps, maxRate, err := lab.Search(context.Background(), policy, flaky, judge)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	want := []float64{250, 500, 500, 500, 1000, 2000, 2000, 1500, 1500, 1250, 1250, 1130, 1190, 1220}
	if diff := cmp.Diff(want, rates); diff != "" {
		t.Errorf("rates measured (-want +got):\n%s", diff)
	}
	if maxRate != 1220 {
		t.Errorf("Search max rate = %v, want 1220", maxRate)
	}
	var retried []float64
	for _, s := range steps {
		if s.Step.Retried {
			retried = append(retried, s.Step.Offered)
			if !strings.Contains(s.Why, "measured again") {
				t.Errorf("retried step at %v/s: pass %v, why %q", s.Step.Offered, s.Pass, s.Why)
			}
		}
	}
	if diff := cmp.Diff([]float64{500, 500, 2000, 1500, 1250}, retried); diff != "" {
		t.Errorf("retried steps (-want +got):\n%s", diff)
	}
}

// TestSearchRechecksFailures: a disturbance longer than two steps fails
// both attempts at 1,000/s, which the system serves; measured again where
// the search would have stopped (at 969/s), the rate passes twice (a
// recheck is a vote of its own, clear passes included), and the search
// goes on to the real knee. There the lowest failed rate, 1,250/s, fails
// its recheck too and the search ends. Only a rate's last attempt counts.
func TestSearchRechecksFailures(t *testing.T) {
	slo := lab.SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	judge := func(s reports.CapacityStep) lab.Verdict { return slo.Judge(s, 10*time.Second) }
	var rates []float64
	measure := kneeAt(1234, &rates)
	disturbed := 0
	flaky := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		s, err := measure(ctx, rate)
		if rate == 1000 && disturbed < 2 {
			disturbed++
			s.P99MS = 252
		}
		return s, err
	}
	policy := lab.SearchPolicy{Start: 250, Factor: 2, Precision: 0.05, MaxSteps: 30, Floor: 10, Votes: 3, Recheck: 2}
	steps, maxRate, err := lab.Search(context.Background(), policy, flaky, judge)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	want := []float64{250, 500, 1000, 1000, 750, 875, 938, 969, 1000, 1000, 2000, 2000, 1500, 1500, 1250, 1250, 1130, 1190, 1220, 1250, 1250}
	if diff := cmp.Diff(want, rates); diff != "" {
		t.Errorf("rates measured (-want +got):\n%s", diff)
	}
	if maxRate != 1220 {
		t.Errorf("Search max rate = %v, want 1220", maxRate)
	}
	counted := map[float64]int{}
	for _, s := range steps {
		if !s.Step.Retried {
			counted[s.Step.Offered]++
			if want := s.Step.Offered <= 1234; s.Pass != want {
				t.Errorf("counted step at %v/s: pass %v, want %v", s.Step.Offered, s.Pass, want)
			}
		} else if s.Pass && s.Step.Offered != 1000 {
			t.Errorf("a passing step at %v/s is marked retried; only the recheck's first pass at 1000/s may be", s.Step.Offered)
		}
	}
	for rate, n := range counted {
		if n != 1 {
			t.Errorf("%d attempts at %v/s count, want only the last", n, rate)
		}
	}
	if why := steps[3].Why; !strings.Contains(why, "at the end of the search") {
		t.Errorf("the second attempt at 1000/s says %q; want it to say it was measured again at the end", why)
	}

	// With no rechecks the disturbance sets the knee.
	rates, disturbed = nil, 0
	policy.Recheck = 0
	if _, maxRate, _ := lab.Search(context.Background(), policy, flaky, judge); maxRate != 969 {
		t.Errorf("without rechecks: max rate %v, want 969", maxRate)
	}
}

// TestSearchVotes: near the knee one step says little, so a rate is judged
// by the majority of up to three attempts, unless one passes with room to
// spare. A lucky pass above the knee (1,250/s) is outvoted by two fails,
// an unlucky fail below it (1,130/s) by two passes; passes without room to
// spare take two attempts (1,190/s), a clear pass one. With one vote a
// rate the system does not serve would have been its capacity.
func TestSearchVotes(t *testing.T) {
	slo := lab.SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	judge := func(s reports.CapacityStep) lab.Verdict { return slo.Judge(s, 10*time.Second) }
	script := map[float64][]float64{ // p99s of the first attempts at a rate
		1250: {45, 400, 400},
		1130: {400, 40, 40},
		1190: {40, 40},
	}
	run := func(votes int) ([]float64, []lab.SearchStep, float64) {
		var rates []float64
		measure := kneeAt(1234, &rates)
		attempts := map[float64]int{}
		scripted := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
			s, err := measure(ctx, rate)
			if n := attempts[rate]; n < len(script[rate]) {
				s.P99MS = script[rate][n]
			}
			attempts[rate]++
			return s, err
		}
		policy := lab.SearchPolicy{Start: 250, Factor: 2, Precision: 0.05, MaxSteps: 30, Floor: 10, Votes: votes}
		steps, maxRate, err := lab.Search(context.Background(), policy, scripted, judge)
		if err != nil {
			t.Fatalf("Search with %d votes: %v", votes, err)
		}
		return rates, steps, maxRate
	}

	rates, steps, maxRate := run(3)
	want := []float64{250, 500, 1000, 2000, 2000, 1500, 1500, 1250, 1250, 1250, 1130, 1130, 1130, 1190, 1190, 1220}
	if diff := cmp.Diff(want, rates); diff != "" {
		t.Errorf("rates measured (-want +got):\n%s", diff)
	}
	if maxRate != 1220 {
		t.Errorf("max rate %v, want 1220", maxRate)
	}
	verdict := map[float64]bool{}
	for _, s := range steps {
		if !s.Step.Retried {
			if _, twice := verdict[s.Step.Offered]; twice {
				t.Errorf("two attempts at %v/s count", s.Step.Offered)
			}
			verdict[s.Step.Offered] = s.Pass
		}
	}
	for rate, pass := range map[float64]bool{1250: false, 1130: true, 1190: true, 1220: true} {
		if verdict[rate] != pass {
			t.Errorf("%v/s: the attempt that counts passed %v, want %v", rate, verdict[rate], pass)
		}
	}
	if s := steps[7]; !s.Pass || !s.Step.Retried || !strings.Contains(s.Why, "without room to spare") {
		t.Errorf("the lucky pass at 1250/s: %+v; want a retried pass without room to spare", s)
	}

	if _, _, maxRate := run(1); maxRate <= 1234 {
		t.Errorf("with one vote: max rate %v; want the lucky pass above the knee (1250/s or more)", maxRate)
	}
}

func TestSearchStops(t *testing.T) {
	slo := lab.SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	judge := func(s reports.CapacityStep) lab.Verdict { return slo.Judge(s, time.Second) }
	t.Run("measure error", func(t *testing.T) {
		boom := errors.New("boom")
		_, _, err := lab.Search(context.Background(), lab.DefaultPolicy(),
			func(context.Context, float64) (reports.CapacityStep, error) { return reports.CapacityStep{}, boom }, judge)
		if !errors.Is(err, boom) {
			t.Errorf("Search error = %v, want %v", err, boom)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		var rates []float64
		measure := kneeAt(1e9, &rates)
		_, _, err := lab.Search(ctx, lab.DefaultPolicy(), func(ctx context.Context, r float64) (reports.CapacityStep, error) {
			if len(rates) == 2 {
				cancel()
			}
			return measure(ctx, r)
		}, judge)
		if !errors.Is(err, context.Canceled) || len(rates) != 3 {
			t.Errorf("Search after cancel: err %v after %d steps, want context.Canceled after 3", err, len(rates))
		}
	})
	t.Run("invalid policy", func(t *testing.T) {
		if _, _, err := lab.Search(context.Background(), lab.SearchPolicy{Start: 100, Factor: 1}, nil, judge); err == nil {
			t.Error("Search with factor 1: no error")
		}
	})
}

func TestSLOJudge(t *testing.T) {
	slo := lab.SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	ok := reports.CapacityStep{Offered: 1000, Achieved: 1000, P50MS: 1, P99MS: 20}
	tests := []struct {
		name        string
		edit        func(*reports.CapacityStep)
		want, clear bool
	}{
		{"within", func(*reports.CapacityStep) {}, true, true},
		{"p99 at half the bound", func(s *reports.CapacityStep) { s.P99MS = 25 }, true, true},
		{"p99 over half the bound", func(s *reports.CapacityStep) { s.P99MS = 25.1 }, true, false},
		{"p99 at the bound", func(s *reports.CapacityStep) { s.P99MS = 50 }, true, false},
		{"p99 over", func(s *reports.CapacityStep) { s.P99MS = 50.1 }, false, false},
		// 10 s at 1000/s is 10,000 arrivals: 10 lost is 0.1%.
		{"errors at 0.05%", func(s *reports.CapacityStep) { s.ErrorRate = 0.0005 }, true, true},
		{"errors at 0.1%", func(s *reports.CapacityStep) { s.ErrorRate = 0.001 }, true, false},
		{"errors over", func(s *reports.CapacityStep) { s.ErrorRate = 0.0011 }, false, false},
		{"dropped at 0.1%", func(s *reports.CapacityStep) { s.Dropped = 10 }, true, false},
		{"errors and dropped together over", func(s *reports.CapacityStep) { s.Dropped = 6; s.ErrorRate = 0.0005 }, false, false},
		{"achieved 97.5%", func(s *reports.CapacityStep) { s.Achieved = 975 }, true, true},
		{"achieved 95%", func(s *reports.CapacityStep) { s.Achieved = 950 }, true, false},
		{"achieved under 95%", func(s *reports.CapacityStep) { s.Achieved = 949 }, false, false},
		{"nothing offered", func(s *reports.CapacityStep) { s.Offered = 0 }, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.edit(&s)
			v := slo.Judge(s, 10*time.Second)
			if v.Pass != tt.want || v.Clear != tt.clear {
				t.Errorf("Judge(%+v) = %+v, want pass %v, clear %v", s, v, tt.want, tt.clear)
			}
			if !v.Pass && v.Why == "" {
				t.Errorf("Judge(%+v) failed without a reason", s)
			}
		})
	}
}

func TestSLOFromScenarioAndFlag(t *testing.T) {
	sc, err := scenarios.Parse("t.yaml", []byte(`
name: t
executor: {type: constant-arrival-rate, rate: 10}
duration: 1s
users: 10
mix: [{op: get-user, weight: 1}]
thresholds: ["get-user.p99 < 5ms", "p99 < 20ms"]
`))
	if err != nil {
		t.Fatal(err)
	}
	def := lab.DefaultSLO(sc)
	if def.P99 != 20*time.Millisecond || def.MaxLost != 0.001 || def.MinAchieved != 0.95 {
		t.Errorf("DefaultSLO = %+v, want p99 20ms (the all-requests threshold), 0.1%% lost, 95%% achieved", def)
	}
	got, err := lab.ParseSLO("p99 < 75ms", def)
	if err != nil || got.P99 != 75*time.Millisecond || got.MaxLost != def.MaxLost {
		t.Errorf("ParseSLO(p99 < 75ms) = %+v, %v; want p99 75ms and the rest of the default", got, err)
	}
	for _, bad := range []string{"p50<10ms", "get-user.p99<10ms", "p99>10ms", "errors<1%", "nonsense"} {
		if _, err := lab.ParseSLO(bad, def); err == nil {
			t.Errorf("ParseSLO(%q): no error", bad)
		}
	}
	if got := lab.DefaultSLO(&scenarios.Scenario{}).P99; got != 50*time.Millisecond {
		t.Errorf("DefaultSLO of a scenario without a p99 threshold: p99 %v, want 50ms", got)
	}
}

// A capacity search on phase 1 end to end, with tiny steps: the topology
// up once, seeded, warmed up, three rates measured with every component's
// CPU and the generator's, and a capacity section that survives
// result.json and renders.
func TestCapacityPhase1(t *testing.T) {
	c, out := config(t, `
name: e2e-capacity
executor: {type: constant-arrival-rate, rate: 100}
duration: 2s
warmup: 500ms
users: 300
max_workers: 32
mix:
  - {op: get-user, weight: 9}
  - {op: update-user, weight: 1}
keys: {distribution: zipfian}
`)
	ctx := context.Background()
	s, err := lab.Up(ctx, c)
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Down(context.Background()); err != nil {
			t.Errorf("Down: %v", err)
		}
	})
	if err := s.Seed(ctx); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	if err := s.WarmUp(ctx); err != nil {
		t.Fatalf("WarmUp: %v", err)
	}
	// A generous SLO so that a busy test machine (whose starved generator
	// drops arrivals) still passes the three low rates: the point is the
	// section, not the figure.
	slo := lab.SLO{P99: 5 * time.Second, MaxLost: 0.5, MinAchieved: 0.5}
	res, err := s.Capacity(ctx, lab.CapacityConfig{
		SLO: slo, Step: time.Second,
		Policy: lab.SearchPolicy{Start: 40, Factor: 2, Precision: 0.05, MaxSteps: 3, Floor: 10},
	})
	if err != nil {
		t.Fatalf("Capacity: %v\n%s", err, out)
	}
	dir := t.TempDir()
	if err := res.WriteAll(dir); err != nil {
		t.Fatalf("WriteAll: %v", err)
	}
	back, err := reports.Read(dir)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	cp := back.Capacity
	if cp == nil {
		t.Fatalf("result.json has no capacity section\n%s", out)
	}
	if len(cp.Steps) != 3 || cp.Steps[0].Offered != 40 || cp.Steps[2].Offered != 160 {
		t.Fatalf("steps %+v, want 40, 80 and 160/s", cp.Steps)
	}
	if cp.MaxRate != 160 {
		t.Errorf("max_rate = %v, want 160 (every step within the generous SLO)\n%s", cp.MaxRate, out)
	}
	for _, st := range cp.Steps {
		if math.Abs(st.Achieved-st.Offered) > 0.5*st.Offered {
			t.Errorf("step at %v/s achieved %v/s", st.Offered, st.Achieved)
		}
		for _, name := range []string{"app-1", "loadgen"} {
			if st.CPUUSPerRequest[name] <= 0 {
				t.Errorf("step at %v/s: CPU per request of %s = %v, want > 0", st.Offered, name, st.CPUUSPerRequest[name])
			}
		}
		if st.OtherCores == nil {
			t.Errorf("step at %v/s: no other-work figure", st.Offered)
		}
		if st.MachinePausedMS == nil && !slices.ContainsFunc(back.Notes, func(n string) bool { return strings.Contains(n, "not measured: the machine's pauses") }) {
			t.Errorf("step at %v/s: no machine_paused_ms, and no note says why", st.Offered)
		}
	}
	if cp.Demands["app-1"] <= 0 || cp.Demands["loadgen"] <= 0 {
		t.Errorf("demands %v, want app-1 and loadgen > 0", cp.Demands)
	}
	if !(cp.PredictedMaxRate > 0) || cp.Model.Name == "" || cp.Model.Inputs["cores"] < 1 {
		t.Errorf("prediction %v, model %+v", cp.PredictedMaxRate, cp.Model)
	}
	// 300 users in SQLite: a few hundred bytes each, and the file's
	// fixed pages spread over only 300 users.
	if cp.DataBytesPerUser < 100 || cp.DataBytesPerUser > 100_000 {
		t.Errorf("data_bytes_per_user = %v, want a few hundred to a few thousand", cp.DataBytesPerUser)
	}
	if len(back.Thresholds) != 3 {
		t.Errorf("thresholds %+v, want the SLO's three parts at the knee", back.Thresholds)
	}
	// The machine's own ceiling: a real bare server, searched the same
	// way, its knee the model's utilization.
	box := cp.Box
	if box == nil {
		t.Fatalf("no box section\n%s", out)
	}
	if want := 1e6 * (cp.Demands["app-1"]); math.Abs(box.WorkUS-want) > 1e-6*want {
		t.Errorf("box work %v µs, want the demands less the load generator's, %v", box.WorkUS, want)
	}
	if len(box.Steps) != 3 || box.MaxRate != box.Steps[2].Offered || box.Steps[1].Offered != 1.25*box.Steps[0].Offered {
		t.Errorf("box steps %+v, max_rate %v: want three, each 25%% above the last, all within the generous SLO", box.Steps, box.MaxRate)
	}
	for _, st := range box.Steps {
		if st.CPUUSPerRequest[reports.BoxMachine] <= 0 || st.Achieved <= 0 {
			t.Errorf("box step at %v/s: achieved %v/s, machine CPU per request %v µs", st.Offered, st.Achieved, st.CPUUSPerRequest[reports.BoxMachine])
		}
	}
	if !(box.KneeBusy > 0) || box.Utilization != box.KneeBusy || cp.Model.Inputs["utilization"] != box.Utilization || !strings.Contains(cp.Model.Name, "bare server") {
		t.Errorf("box knee busy %v, utilization %v; the model's %v (%s): want the box's knee", box.KneeBusy, box.Utilization, cp.Model.Inputs["utilization"], cp.Model.Name)
	}
	// Searched against the room the phase leaves: the bound less its p99
	// with no load, to the tenth of a millisecond.
	bound, _, _ := strings.Cut(box.SLO, ",")
	room, err := lab.ParseSLO(bound, slo)
	if err != nil {
		t.Fatalf("box slo %q: %v", box.SLO, err)
	}
	if p0 := cp.Model.Inputs["low_load_p99_ms"]; math.Abs(float64(slo.P99-room.P99)/float64(time.Millisecond)-p0) > 0.1 {
		t.Errorf("box slo %q: want the p99 bound %v less the phase's p99 with no load, %v ms", box.SLO, slo.P99, p0)
	}
	if want := cp.MaxRate / box.MaxRate; box.PhaseShare != want {
		t.Errorf("phase_share %v, want %v", box.PhaseShare, want)
	}
	md, err := os.ReadFile(filepath.Join(dir, reports.MarkdownFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "The machine's own ceiling") {
		t.Errorf("report.md has no section for the machine's own ceiling")
	}
	html, err := os.ReadFile(filepath.Join(dir, reports.HTMLFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Latency against offered load", "Throughput against offered load", "knee 160.0/s"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

// A step that failed while the load generator itself was late (the machine
// stalled) is measured again without counting as a vote, up to
// StallRetries times; then the votes decide.
func TestSearchRemeasuresStalls(t *testing.T) {
	slo := lab.SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	judge := func(s reports.CapacityStep) lab.Verdict { return slo.Judge(s, 10*time.Second) }
	var rates []float64
	measure := kneeAt(1234, &rates)
	stalls := 0
	stalling := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		s, err := measure(ctx, rate)
		if rate == 500 && stalls < 3 {
			stalls++ // three stalled attempts in a row: two stall retries, then a vote
			s.Dropped, s.GeneratorLate = 2400, 2400
		}
		return s, err
	}
	policy := lab.SearchPolicy{Start: 250, Factor: 2, Precision: 0.05, MaxSteps: 30, Floor: 10, Votes: 3, StallRetries: 2}
	steps, maxRate, err := lab.Search(context.Background(), policy, stalling, judge)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if maxRate != 1220 {
		t.Errorf("Search max rate = %v, want 1220: the stalls at 500/s must not end the search", maxRate)
	}
	want := []float64{250, 500, 500, 500, 500, 500, 1000} // two stall retries, then F, P, P
	if diff := cmp.Diff(want, rates[:len(want)]); diff != "" {
		t.Errorf("first rates measured (-want +got):\n%s", diff)
	}
	var whys []string
	for _, s := range steps[1:4] {
		whys = append(whys, s.Why)
		if !s.Step.Retried || s.Pass {
			t.Errorf("step at %v/s: retried %v, pass %v; want a retried failure", s.Step.Offered, s.Step.Retried, s.Pass)
		}
	}
	if !strings.Contains(whys[0], "machine stalled") || !strings.Contains(whys[1], "machine stalled") || strings.Contains(whys[2], "stalled") {
		t.Errorf("whys = %q, want two stall retries, then a vote", whys)
	}

	// Stalls at every attempt still end in a failure: the retries are bounded.
	rates = nil
	always := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		s, err := measure(ctx, rate)
		if rate >= 500 {
			s.Dropped, s.GeneratorLate = 2400, 2400
		}
		return s, err
	}
	_, maxRate, err = lab.Search(context.Background(), policy, always, judge)
	if err != nil || maxRate != 485 {
		t.Errorf("Search with a stall at every attempt from 500/s: max %v, err %v; want 485 (500/s failed, then bisected)", maxRate, err)
	}
	if n := slices.Index(rates, 1000); n >= 0 {
		t.Errorf("rates %v: went past 500/s though every attempt there failed", rates)
	}

	// A late generator on busy cores is saturation, not a stall: two
	// votes.
	rates = nil
	saturated := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		s, err := measure(ctx, rate)
		if rate >= 500 {
			s.Dropped, s.GeneratorLate = 2400, 2400
			s.CPUUSPerRequest = map[string]float64{"app-1": 1.8e6 / s.Achieved} // 1.8 of 2 cores
		}
		return s, err
	}
	policy.Cores = 2
	if _, _, err := lab.Search(context.Background(), policy, saturated, judge); err != nil {
		t.Fatal(err)
	}
	if n := len(slices.DeleteFunc(slices.Clone(rates), func(r float64) bool { return r != 500 })); n != 2 {
		t.Errorf("rates %v: 500/s measured %d times, want 2 (saturated: two votes, no stall retry)", rates, n)
	}
}

// A step that failed while the whole machine was paused for PauseStall or
// more is measured again like a stalled one, even on busy cores: the pause
// says nothing about the system under test. Shorter pauses do not count.
func TestSearchRemeasuresPausedSteps(t *testing.T) {
	slo := lab.SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	judge := func(s reports.CapacityStep) lab.Verdict { return slo.Judge(s, 10*time.Second) }
	policy := lab.SearchPolicy{Start: 250, Factor: 2, Precision: 0.05, MaxSteps: 30, Floor: 10, Votes: 3, StallRetries: 2,
		PauseStall: 10 * time.Millisecond, OverloadLoss: 0.05, Cores: 2}
	for _, tc := range []struct {
		name      string
		pausedMS  float64
		errorRate float64
		want      int // attempts at 500/s
	}{
		{"paused 40ms", 40, 0, 5}, // two stall retries, then F, P, P
		{"paused 5ms", 5, 0, 2},
		// A pause does not fail 10% of ten seconds' requests: with the
		// cores saturated that is an overload, and the step counts.
		{"paused 40ms, 10% failed", 40, 0.1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rates []float64
			measure := kneeAt(1234, &rates)
			failed := 0
			pausing := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
				s, err := measure(ctx, rate)
				if rate == 500 && failed < 3 {
					failed++ // failed on busy cores, with the machine paused
					s.P99MS, s.ErrorRate = 120, tc.errorRate
					s.CPUUSPerRequest = map[string]float64{"app-1": 1.8e6 / s.Achieved}
					s.MachinePausedMS, s.MachinePauseMaxMS = reports.Float(tc.pausedMS), reports.Float(tc.pausedMS)
				}
				return s, err
			}
			_, maxRate, err := lab.Search(context.Background(), policy, pausing, judge)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(slices.DeleteFunc(slices.Clone(rates), func(r float64) bool { return r != 500 })); n != tc.want {
				t.Errorf("rates %v: 500/s measured %d times, want %d", rates, n, tc.want)
			}
			wantMax := 485.0 // both attempts failed: bisected below 500
			if tc.want == 5 {
				wantMax = 1220 // the fourth and fifth attempts passed
			}
			if maxRate != wantMax {
				t.Errorf("max rate %v, want %v", maxRate, wantMax)
			}
		})
	}
}
