package plan

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func defaults(users int64) Workload {
	return Workload{Users: users, DailyActive: 0.2, RequestsPerUser: 50, PeakFactor: 3, WriteShare: 0.05, CoresPerMachine: 8, TargetUtilization: 0.6}
}

func mustLoad(t *testing.T) []Measured {
	t.Helper()
	m, skipped, err := Load([]string{filepath.Join("testdata", "runs")})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0], "phase-3-small") {
		t.Errorf("skipped = %q, want the smaller phase-3 run", skipped)
	}
	return m
}

func TestLoad(t *testing.T) {
	ms := mustLoad(t)
	var got []string
	for _, m := range ms {
		got = append(got, filepath.Base(filepath.Dir(m.Source))+" "+m.DemandsFrom)
	}
	want := []string{"phase-1 " + FromComponents, "phase-3 " + FromComponents, "phase-4 " + FromCapacity}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("runs kept (-want +got):\n%s", diff)
	}
	p3 := ms[1]
	if p3.Requests != 20000 || p3.Writes != 1000 {
		t.Errorf("phase 3: %d requests, %d writes, want 20000, 1000", p3.Requests, p3.Writes)
	}
	// components[].cpu_s / totals.requests
	if got := p3.Demands["app-1"]; math.Abs(got-150e-6) > 1e-15 {
		t.Errorf("phase 3 app-1 demand = %v, want 150e-6", got)
	}
	// The capacity section wins over the components.
	if got := ms[2].Demands["app-1"]; got != 100e-6 {
		t.Errorf("phase 4 app-1 demand = %v, want the capacity section's 100e-6", got)
	}
	if ms[2].DataBytesPerUser != 1000 {
		t.Errorf("phase 4 data bytes per user = %v, want 1000", ms[2].DataBytesPerUser)
	}
}

type tierRow struct {
	Name      string
	Instances int
	Basis     string
	DemandUS  float64
}

func rows(tiers []Tier) []tierRow {
	var out []tierRow
	for _, t := range tiers {
		out = append(out, tierRow{t.Name, t.Instances, t.Basis, math.Round(t.DemandUS*10) / 10})
	}
	return out
}

func TestMake(t *testing.T) {
	ms := mustLoad(t)
	big := defaults(10_000_000)
	big.RequestsPerUser = 100
	phase4 := []tierRow{
		{"cdn", 1, "request", 50},
		{"lb", 1, "request", 20},
		{"app", 2, "request", 200},
		// 6 single-threaded processes of the cluster, 120 µs in all:
		// 5,000/s per instance at 60%; the cluster the lab ran is 6.
		{"redis", 6, "request", 120},
		// 60 µs per request over 5% writes.
		{"primary", 1, "write", 1200},
		{"replicas", 1, "read", 42.1},
	}
	for _, tc := range []struct {
		name      string
		w         Workload
		minPhase  int
		tiers     []tierRow
		reasons   []string // substrings, in order
		peakRate  float64
		shortfall map[int]string
	}{
		{
			// 347 requests/s: only availability rules out phase 1.
			name: "1M users", w: defaults(1_000_000), minPhase: 3, peakRate: 347.22,
			tiers: []tierRow{
				{"lb", 1, "request", 50},
				{"app", 2, "request", 300},
				{"redis", 1, "request", 100},
				{"primary", 1, "write", 1000},
				{"replicas", 1, "read", 100},
			},
			reasons: []string{
				"= 347 requests/s (17 writes/s at 5% writes, 330 reads/s)",
				"phase 1 falls short: availability",
				"phase 2: no measured run among the results, not considered",
				"phase 3 is the smallest measured phase that meets it: 1 lb, 2 app, 1 redis, 1 primary, 1 replicas",
				"cache: phase 3's demands hold at the hit rates measured in its run (L1 60%, L2 20%",
				"data size: 1,000,000 users × 1000 bytes per user",
				"which fits in one machine's memory (16.0 GiB",
				"CPU only",
			},
			shortfall: map[int]string{1: "availability"},
		},
		{
			// 6,944 requests/s: one Redis thread at 100 µs serves
			// 6,000/s at 60%.
			name: "Redis outgrows phase 3", w: big, minPhase: 4, peakRate: 6944.44,
			tiers: phase4,
			reasons: []string{
				"phase 1 falls short: availability",
				"phase 3 falls short: Redis: 6944 requests/s × 100 µs = 0.69 cores, but one Redis executes commands on one thread: at 60% of one core it serves 6000 requests/s, so 2 are needed and this phase has one",
				"phase 4 is the smallest",
				"L3 (CDN) 70%",
			},
			shortfall: map[int]string{1: "availability", 3: "Redis"},
		},
		{
			// 20M users × 1000 bytes = 18.6 GiB, more than 16 GiB.
			name: "data outgrows one machine", w: defaults(20_000_000), minPhase: 0, peakRate: 6944.44,
			tiers: []tierRow{
				{"cdn", 1, "request", 50}, {"lb", 1, "request", 20}, {"app", 2, "request", 200},
				{"redis", 6, "request", 120}, {"primary", 1, "write", 1200}, {"replicas", 1, "read", 42.1},
			},
			reasons: []string{
				"phase 4 falls short: data size: 20,000,000 users × 1000 bytes = 18.6 GiB, more than one machine's memory (16.0 GiB)",
				"no measured phase meets it",
				"does not fit in one machine's memory",
			},
			shortfall: map[int]string{1: "data size", 3: "data size", 4: "data size"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Make(tc.w, ms)
			if err != nil {
				t.Fatalf("Make: %v", err)
			}
			if p.MinPhase != tc.minPhase {
				t.Errorf("min phase = %d, want %d\nreasons: %q", p.MinPhase, tc.minPhase, p.Reasons)
			}
			if math.Abs(p.Workload.PeakRate-tc.peakRate) > 0.01 {
				t.Errorf("peak rate = %v, want %v", p.Workload.PeakRate, tc.peakRate)
			}
			if diff := cmp.Diff(tc.tiers, rows(p.Tiers)); diff != "" {
				t.Errorf("tiers (-want +got):\n%s", diff)
			}
			all := strings.Join(p.Reasons, "\n")
			at := 0
			for _, want := range tc.reasons {
				i := strings.Index(all[at:], want)
				if i < 0 {
					t.Errorf("reasons lack %q (in order) in:\n%s", want, all)
					continue
				}
				at += i + len(want)
			}
			for _, ph := range p.Phases {
				want, ok := tc.shortfall[ph.Phase]
				if ph.Meets == ok {
					t.Errorf("phase %d meets = %v, shortfalls %q", ph.Phase, ph.Meets, ph.Shortfalls)
				}
				if ok && !strings.Contains(strings.Join(ph.Shortfalls, "; "), want) {
					t.Errorf("phase %d shortfalls %q lack %q", ph.Phase, ph.Shortfalls, want)
				}
			}
		})
	}
}

func TestMakeWithoutDataSize(t *testing.T) {
	var ms []Measured
	for _, m := range mustLoad(t) {
		if m.Phase != 4 {
			ms = append(ms, m)
		}
	}
	p, err := Make(defaults(1_000_000_000), ms)
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	all := strings.Join(p.Reasons, "\n")
	if !strings.Contains(all, "data size: not judged: no result.json records capacity.data_bytes_per_user") {
		t.Errorf("reasons do not say the data size was not judged:\n%s", all)
	}
}

func TestWorkloadValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Workload)
		want string
	}{
		{"no users", func(w *Workload) { w.Users = 0 }, "users 0"},
		{"daily active over 1", func(w *Workload) { w.DailyActive = 1.5 }, "daily active 1.5"},
		{"peak under 1", func(w *Workload) { w.PeakFactor = 0.5 }, "peak factor 0.5"},
		{"write share negative", func(w *Workload) { w.WriteShare = -0.1 }, "write share -0.1"},
		{"no cores", func(w *Workload) { w.CoresPerMachine = 0 }, "cores per machine 0"},
		{"utilization 0", func(w *Workload) { w.TargetUtilization = 0 }, "target utilization 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := defaults(1000)
			tc.edit(&w)
			err := w.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	p, err := Make(defaults(1_000_000), mustLoad(t))
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	dir := t.TempDir()
	if err := p.Write(dir); err != nil {
		t.Fatalf("Write: %v", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Workload map[string]any `json:"workload"`
		Tiers    []struct {
			Name      string `json:"name"`
			Instances int    `json:"instances"`
		} `json:"tiers"`
		MinPhase int      `json:"min_phase"`
		Reasons  []string `json:"reasons"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("plan.json: %v", err)
	}
	if got.Workload["users"] != float64(1_000_000) || got.MinPhase != 3 || len(got.Tiers) != 5 || got.Tiers[1].Name != "app" || got.Tiers[1].Instances != 2 || len(got.Reasons) == 0 {
		t.Errorf("plan.json = %s", data)
	}
	var table strings.Builder
	if err := p.WriteTable(&table); err != nil {
		t.Fatalf("WriteTable: %v", err)
	}
	for _, want := range []string{"smallest phase that meets it: 3", "app               2  request      347", "reasons:"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// A few runs left out are named; many are counted, so that a folder of
// runs does not bury the plan.
func TestWriteTableSkipped(t *testing.T) {
	p, err := Make(defaults(1_000_000), mustLoad(t))
	if err != nil {
		t.Fatalf("Make: %v", err)
	}
	for _, tc := range []struct {
		skipped int
		want    string
	}{
		{2, "  not used: run-1\n"},
		{5, "  not used: 5 other runs of these phases"},
	} {
		p.Skipped = nil
		for i := range tc.skipped {
			p.Skipped = append(p.Skipped, "run-"+string(rune('0'+i)))
		}
		var table strings.Builder
		if err := p.WriteTable(&table); err != nil {
			t.Fatalf("WriteTable: %v", err)
		}
		if !strings.Contains(table.String(), tc.want) {
			t.Errorf("%d skipped: table lacks %q:\n%s", tc.skipped, tc.want, table.String())
		}
	}
}

// A run against a deployment the lab did not start (--target) has no
// component to plan with: found in a folder it is left out and said so;
// named on its own it is an error.
func TestLoadSkipsTargetRuns(t *testing.T) {
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("testdata", "runs", "phase-3", "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "components")
	doc["target"] = "http://127.0.0.1:8080"
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "target", "result.json")
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(target, b, 0o644); err != nil {
		t.Fatal(err)
	}
	kept, skipped, err := Load([]string{filepath.Join("testdata", "runs"), dir})
	if err != nil {
		t.Fatalf("Load with a --target run in a folder: %v", err)
	}
	if len(kept) != 3 || !slices.ContainsFunc(skipped, func(s string) bool { return strings.Contains(s, "(--target) measured no component") }) {
		t.Errorf("kept %d runs, skipped %q; want 3 kept and the --target run skipped", len(kept), skipped)
	}
	if _, _, err := Load([]string{target}); err == nil {
		t.Error("Load of a --target result named on its own: no error")
	}
}
