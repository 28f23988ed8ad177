package scenarios

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func mustLoad(t *testing.T, nameOrPath string) *Scenario {
	t.Helper()
	s, err := LoadNamed(nameOrPath)
	if err != nil {
		t.Fatalf("LoadNamed(%q): %v", nameOrPath, err)
	}
	return s
}

func TestApply(t *testing.T) {
	tests := []struct {
		name     string
		scenario string
		o        Overrides
		change   func(s *Scenario) // what the overrides should do; nil when Apply fails
		wantErr  string
	}{
		{
			name:     "nothing",
			scenario: "read-heavy",
			change:   func(*Scenario) {},
		},
		{
			name:     "duration rate users",
			scenario: "read-heavy",
			o:        Overrides{Duration: 5 * time.Second, Rate: 300, Users: 1000},
			change: func(s *Scenario) {
				s.Duration, s.Executor.Rate, s.Users = 5*time.Second, 300, 1000
				for i, th := range s.Thresholds {
					if th.Metric == MetricRate {
						s.Thresholds[i].Bound = 285 // was 1900 of 2000/s
					}
				}
			},
		},
		{
			name:     "ramping stretches stages and scales rates to the peak",
			scenario: "testdata/ramping.yaml", // 10/s; 100/s in 10s, 20s; 0/s in 10s
			o:        Overrides{Duration: 20 * time.Second, Rate: 50},
			change: func(s *Scenario) {
				s.Duration = 20 * time.Second
				s.Executor.StartRate = 5
				s.Executor.Stages = []Stage{{50, 5 * time.Second}, {50, 10 * time.Second}, {0, 5 * time.Second}}
			},
		},
		{
			name:     "rate thresholds scale with the rate",
			scenario: "read-after-write", // 500/s, read-after-write.rate > 475
			o:        Overrides{Rate: 100},
			change: func(s *Scenario) {
				s.Executor.Rate = 100
				for i, th := range s.Thresholds {
					if th.Metric == MetricRate {
						s.Thresholds[i].Bound = 95
					}
				}
			},
		},
		{
			name:     "constant-vus has no rate",
			scenario: "testdata/minimal.yaml",
			o:        Overrides{Rate: 100},
			wantErr:  "scenario minimal with overrides: executor.rate: cannot override the rate of constant-vus (it has vus, not a rate)",
		},
		{
			name:     "negative",
			scenario: "read-heavy",
			o:        Overrides{Duration: -time.Second},
			wantErr:  "scenario read-heavy with overrides: duration: override must be > 0",
		},
		{
			name:     "fewer users than hot keys",
			scenario: "testdata/full.yaml",
			o:        Overrides{Users: 1},
			change: func(s *Scenario) {
				s.Users = 1
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustLoad(t, tt.scenario)
			want := mustLoad(t, tt.scenario)
			err := s.Apply(tt.o)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Apply(%+v) error = %v, want %q", tt.o, err, tt.wantErr)
				}
				if diff := cmp.Diff(want, s); diff != "" {
					t.Errorf("Apply failed but changed the scenario (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply(%+v): %v", tt.o, err)
			}
			tt.change(want)
			if diff := cmp.Diff(want, s); diff != "" {
				t.Errorf("Apply(%+v) mismatch (-want +got):\n%s", tt.o, diff)
			}
		})
	}

	t.Run("rate threshold reads scaled", func(t *testing.T) {
		s := mustLoad(t, "read-after-write")
		before := s.Thresholds
		if err := s.Apply(Overrides{Rate: 100}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, th := range s.Thresholds {
			got = append(got, th.String())
		}
		want := []string{"read-after-write.p99 < 100ms", "errors < 0.1%", "read-after-write.rate > 95"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("thresholds after --rate 100 (-want +got):\n%s", diff)
		}
		if before[2].Bound != 475 {
			t.Errorf("Apply changed the thresholds slice it was given: rate bound %v, was 475", before[2].Bound)
		}
	})

	t.Run("does not share stages with the original", func(t *testing.T) {
		s := mustLoad(t, "signup-burst")
		orig := s.Executor.Stages
		before := orig[0]
		if err := s.Apply(Overrides{Rate: 500}); err != nil {
			t.Fatal(err)
		}
		if orig[0] != before {
			t.Errorf("Apply changed the stages slice it was given: %+v, was %+v", orig[0], before)
		}
	})

	t.Run("hot keys revalidated", func(t *testing.T) {
		s := mustLoad(t, "hot-key")
		s.Keys.HotKeys = 50
		err := s.Apply(Overrides{Users: 10})
		if err == nil || !strings.Contains(err.Error(), "keys.hot_keys: 50 is more than users (10)") {
			t.Fatalf("Apply(Users: 10) with 50 hot keys: error = %v, want one about keys.hot_keys", err)
		}
	})
}

func TestValidate(t *testing.T) {
	s := mustLoad(t, "read-heavy")
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate() of a loaded scenario = %v", err)
	}
	s.Mix[1].Weight = -1
	s.Executor.Rate = 0
	want := "scenario read-heavy: executor.rate: must be > 0\nscenario read-heavy: mix[1].weight: must be >= 0"
	if err := s.Validate(); err == nil || err.Error() != want {
		t.Fatalf("Validate() = %v, want %q", err, want)
	}
}

func TestExecutor(t *testing.T) {
	e := Executor{Kind: RampingArrivalRate, StartRate: 10, Stages: []Stage{
		{100, 10 * time.Second}, {100, 10 * time.Second}, {0, 10 * time.Second},
	}}
	if got := e.PeakRate(); got != 100 {
		t.Errorf("PeakRate() = %v, want 100", got)
	}
	want := "ramping-arrival-rate 10/s → 100/s in 10s → 100/s in 10s → 0/s in 10s"
	if got := e.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
