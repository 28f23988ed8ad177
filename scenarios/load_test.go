package scenarios

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLoadBad(t *testing.T) {
	tests := map[string]string{
		"bad-duration":             `testdata/bad-duration.bad.yaml:5: duration: invalid duration "30" (want a Go duration such as 30s or 1m30s)`,
		"fault-bad-action":         `testdata/fault-bad-action.bad.yaml:11: faults[0].action: unknown action "explode" (want stop, kill, pause, resume, restart)`,
		"fault-after-end":          `testdata/fault-after-end.bad.yaml:9: faults[0].at: 12s is outside the measured run (0 to 10s)`,
		"bad-name":                 `testdata/bad-name.bad.yaml:1: name: "Read Heavy": use lower-case letters, digits and dashes`,
		"bad-stage-duration":       `testdata/bad-stage-duration.bad.yaml:6: executor.stages[1].duration: invalid duration "ten seconds" (want a Go duration such as 30s or 1m30s)`,
		"duplicate-op":             `testdata/duplicate-op.bad.yaml:9: mix[1].op: get-user is already in mix[0]`,
		"hot-keys-too-many":        `testdata/hot-keys-too-many.bad.yaml:11: keys.hot_keys: 20 is more than users (10)`,
		"missing-executor":         `testdata/missing-executor.bad.yaml:1: executor: required (a mapping with type: constant-arrival-rate, ramping-arrival-rate, constant-vus)`,
		"duplicate-key":            `testdata/duplicate-key.bad.yaml:5: executor.rate: given twice (first at line 4)`,
		"fractional-integer":       `testdata/fractional-integer.bad.yaml:4: executor.vus: want an integer, got "2.5"`,
		"missing-executor-type":    `testdata/missing-executor-type.bad.yaml:2: executor.type: required (constant-arrival-rate, ramping-arrival-rate, constant-vus)`,
		"warmup-at-zero-rate":      `testdata/warmup-at-zero-rate.bad.yaml:6: warmup: the warm-up runs at executor.start_rate, which is 0: set a start rate or leave the warm-up out`,
		"missing-rate":             `testdata/missing-rate.bad.yaml:2: executor.rate: required for constant-arrival-rate (requests per second)`,
		"missing-stages":           `testdata/missing-stages.bad.yaml:2: executor.stages: required for ramping-arrival-rate`,
		"missing-vus":              `testdata/missing-vus.bad.yaml:2: executor.vus: required for constant-vus`,
		"mix-not-a-list":           `testdata/mix-not-a-list.bad.yaml:7: mix: want a list, got a mapping`,
		"negative-rate":            `testdata/negative-rate.bad.yaml:4: executor.rate: must be > 0`,
		"negative-weight":          `testdata/negative-weight.bad.yaml:10: mix[1].weight: must be >= 0`,
		"no-users-for-reads":       `testdata/no-users-for-reads.bad.yaml:6: users: must be >= 1: the mix reads or changes existing users`,
		"stages-duration-mismatch": `testdata/stages-duration-mismatch.bad.yaml:7: duration: 20s differs from the sum of executor.stages (15s): leave it out or make them agree`,
		"syntax":                   `testdata/syntax.bad.yaml:4: mapping values are not allowed in this context`,
		"theta-out-of-range":       `testdata/theta-out-of-range.bad.yaml:10: keys.theta: 1.5 is out of range: want 0 < theta < 1`,
		"theta-unused":             `testdata/theta-unused.bad.yaml:10: keys.theta: not used by uniform`,
		"threshold-errors-unit":    `testdata/threshold-errors-unit.bad.yaml:9: thresholds[0]: "errors < 0.1": errors needs a percentage from 0% to 100%, such as 0.1%, got "0.1"`,
		"threshold-metric":         `testdata/threshold-metric.bad.yaml:9: thresholds[0]: "p98 < 50ms": unknown metric "p98" (want p50, p90, p99, p999, max, mean, errors, rate, lost_writes, ryw_violations, monotonic_violations, late_overwrites, final_read_failures, staleness_p99 or staleness_max)`,
		"threshold-op-not-in-mix":  `testdata/threshold-op-not-in-mix.bad.yaml:9: thresholds[0]: "update-user.p99 < 20ms": operation update-user is not in the mix`,
		"threshold-syntax":         `testdata/threshold-syntax.bad.yaml:10: thresholds[1]: "p99 << 50ms": want [OP.]METRIC < VALUE, e.g. "p99 < 50ms", "errors < 0.1%", "rate > 1000"`,
		"too-many-connections":     `testdata/too-many-connections.bad.yaml:7: connections: 32 is more than max_workers (16): the extra connections would stay idle`,
		"two-documents":            `testdata/two-documents.bad.yaml:8: more than one YAML document: one scenario per file`,
		"unknown-distribution":     `testdata/unknown-distribution.bad.yaml:9: keys.distribution: unknown distribution "pareto" (want uniform, zipfian, latest or hotspot)`,
		"unknown-executor":         `testdata/unknown-executor.bad.yaml:3: executor.type: unknown executor "per-vu-iterations" (want constant-arrival-rate, ramping-arrival-rate, constant-vus)`,
		"unknown-field":            `testdata/unknown-field.bad.yaml:5: duraton: unknown field (want one of name, description, executor, duration, warmup, users, max_workers, connections, mix, keys, thresholds, faults, check_consistency)`,
		"unknown-nested-field":     `testdata/unknown-nested-field.bad.yaml:10: keys.thetha: unknown field (want one of distribution, theta, scrambled, hot_keys, hot_fraction, hot_op_fraction)`,
		"unknown-op":               `testdata/unknown-op.bad.yaml:9: mix[1].op: unknown operation "delete-user" (want get-user, update-user, create-user, read-after-write, create-record, list-records, get-record, write-batch, write-singles, write-large-record, get-large-record, get-large-record-gzip, get-large-record-zstd, export, delete-account)`,
		"unused-executor-field":    `testdata/unused-executor-field.bad.yaml:5: executor.vus: not used by constant-arrival-rate`,
		"wrong-type":               `testdata/wrong-type.bad.yaml:6: users: want an integer, got "many"`,
		"zero-weights":             `testdata/zero-weights.bad.yaml:6: mix: weights sum to 0: give at least one operation a positive weight`,
		"several-errors": `testdata/several-errors.bad.yaml:4: executor.rate: must be > 0
testdata/several-errors.bad.yaml:6: warmup: must be >= 0
testdata/several-errors.bad.yaml:10: mix[1].op: unknown operation "fetch-user" (want get-user, update-user, create-user, read-after-write, create-record, list-records, get-record, write-batch, write-singles, write-large-record, get-large-record, get-large-record-gzip, get-large-record-zstd, export, delete-account)`,
	}

	// Every bad file has an expectation, and every expectation a file.
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".bad.yaml"))
	}
	slices.Sort(names)
	var want []string
	for name := range tests {
		want = append(want, name)
	}
	slices.Sort(want)
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("testdata/*.bad.yaml and the table differ (-table +files):\n%s", diff)
	}

	for name, wantErr := range tests {
		t.Run(name, func(t *testing.T) {
			path := "testdata/" + name + ".bad.yaml"
			s, err := Load(path)
			if err == nil {
				t.Fatalf("Load(%q) = %+v, want error %q", path, s, wantErr)
			}
			if got := err.Error(); got != wantErr {
				t.Errorf("Load(%q) error:\n got %s\nwant %s", path, got, wantErr)
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.File != path || fe.Line == 0 {
				t.Errorf("Load(%q) error %v: want a *FieldError naming the file and a line", path, err)
			}
		})
	}
}

func TestLoadGood(t *testing.T) {
	tests := []struct {
		path string
		want *Scenario
	}{
		{
			path: "testdata/full.yaml",
			want: &Scenario{
				Name:        "full",
				Description: "Every field of the format.",
				Source:      "testdata/full.yaml",
				Executor:    Executor{Kind: ConstantArrivalRate, Rate: 1500.5},
				Duration:    90 * time.Second,
				Warmup:      2 * time.Second,
				Users:       5000,
				MaxWorkers:  64,
				Connections: 32,
				Mix: Mix{
					{OpGetUser, 90}, {OpUpdateUser, 5}, {OpCreateUser, 0}, {OpReadAfterWrite, 5},
				},
				Keys: Keys{Distribution: Zipfian, Theta: 0.8},
				Thresholds: []Threshold{
					{Metric: MetricP50, Cmp: "<", Bound: 5, Latency: 5 * time.Millisecond},
					{Op: OpGetUser, Metric: MetricP999, Cmp: "<=", Bound: 40, Latency: 40 * time.Millisecond},
					{Metric: MetricErrors, Cmp: "<", Bound: 0.5},
					{Metric: MetricRate, Cmp: ">=", Bound: 1400},
				},
			},
		},
		{
			// Absent fields get their defaults.
			path: "testdata/minimal.yaml",
			want: &Scenario{
				Name:        "minimal",
				Source:      "testdata/minimal.yaml",
				Executor:    Executor{Kind: ConstantVUs, VUs: 8},
				Duration:    10 * time.Second,
				Users:       DefaultUsers,
				MaxWorkers:  8,
				Connections: 8,
				Mix:         Mix{{OpGetUser, DefaultWeight}},
				Keys:        Keys{Distribution: Hotspot, HotFraction: DefaultHotFraction, HotOpFraction: DefaultHotOpFraction},
			},
		},
		{
			// A ramping scenario's duration is the sum of its stages.
			path: "testdata/ramping.yaml",
			want: &Scenario{
				Name:   "ramping",
				Source: "testdata/ramping.yaml",
				Executor: Executor{Kind: RampingArrivalRate, StartRate: 10, Stages: []Stage{
					{100, 10 * time.Second}, {100, 20 * time.Second}, {0, 10 * time.Second},
				}},
				Duration:    40 * time.Second,
				Users:       DefaultUsers,
				MaxWorkers:  DefaultMaxWorkers,
				Connections: DefaultMaxWorkers,
				Mix:         Mix{{OpCreateUser, 1}, {OpGetUser, 1}},
				Keys:        Keys{Distribution: Latest, Theta: DefaultTheta},
			},
		},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.path), func(t *testing.T) {
			got, err := Load(tt.path)
			if err != nil {
				t.Fatalf("Load(%q): %v", tt.path, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load(%q) mismatch (-want +got):\n%s", tt.path, diff)
			}
		})
	}
}

func TestBuiltinScenarios(t *testing.T) {
	names := Names()
	for _, want := range []string{"read-heavy", "write-heavy", "read-only", "signup-burst", "hot-key", "read-after-write"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() = %v, want it to include %q", names, want)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s, err := LoadNamed(name)
			if err != nil {
				t.Fatalf("LoadNamed(%q): %v", name, err)
			}
			if s.Name != name {
				t.Errorf("LoadNamed(%q).Name = %q, want the file's name", name, s.Name)
			}
			if want := "scenarios/" + name + ".yaml"; s.Source != want {
				t.Errorf("LoadNamed(%q).Source = %q, want %q", name, s.Source, want)
			}
			if s.Description == "" || len(s.Thresholds) == 0 {
				t.Errorf("LoadNamed(%q): want a description and thresholds", name)
			}
			// make phase-1 runs in about a minute: keep each run short.
			if total := s.Warmup + s.Duration; total > 40*time.Second {
				t.Errorf("LoadNamed(%q): warm-up + duration = %s, want at most 40s", name, total)
			}
			// The file on disk and the embedded copy are the same scenario.
			fromFile, err := Load(name + ".yaml")
			if err != nil {
				t.Fatalf("Load(%q): %v", name+".yaml", err)
			}
			fromFile.Source = s.Source
			if diff := cmp.Diff(s, fromFile); diff != "" {
				t.Errorf("embedded and file differ (-embedded +file):\n%s", diff)
			}
		})
	}
}

func TestLoadNamed(t *testing.T) {
	t.Run("path", func(t *testing.T) {
		s, err := LoadNamed("testdata/minimal.yaml")
		if err != nil || s.Name != "minimal" {
			t.Fatalf(`LoadNamed("testdata/minimal.yaml") = %v, %v; want the minimal scenario`, s, err)
		}
	})
	t.Run("unknown name", func(t *testing.T) {
		_, err := LoadNamed("read-mostly")
		if err == nil || !strings.Contains(err.Error(), `unknown scenario "read-mostly"`) ||
			!strings.Contains(err.Error(), "read-heavy") {
			t.Fatalf(`LoadNamed("read-mostly") error = %v, want one naming it and listing the built-in scenarios`, err)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		_, err := LoadNamed("testdata/nope.yaml")
		if err == nil || !strings.Contains(err.Error(), "nope.yaml") {
			t.Fatalf(`LoadNamed("testdata/nope.yaml") error = %v, want one naming the file`, err)
		}
	})
	t.Run("empty file", func(t *testing.T) {
		_, err := Parse("empty.yaml", []byte("# nothing\n"))
		if err == nil || err.Error() != "empty.yaml: empty scenario file" {
			t.Fatalf("Parse(empty) error = %v, want %q", err, "empty.yaml: empty scenario file")
		}
	})
}
