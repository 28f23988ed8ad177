package lab_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"scalelab/lab"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies/topotest"
)

const phase1Target = `
name: target-e2e
executor: {type: constant-arrival-rate, rate: 100}
duration: 2s
warmup: 300ms
users: 40
max_workers: 16
mix:
  - {op: get-user, weight: 9}
  - {op: update-user, weight: 1}
keys: {distribution: zipfian}
thresholds:
  - errors < 1%
`

// arrivals is each operation's arrivals: those run and those dropped, so
// that a machine too loaded to start an arrival in time changes nothing.
func arrivals(r *reports.Result) map[string]int64 {
	m := map[string]int64{}
	for _, op := range r.Operations {
		m[op.Name] = op.Count + op.Dropped
	}
	return m
}

// The same scenario and seed, three ways, on phase 1: `run --phase 1`
// (its own topology, seeded in bulk); `run --target` against a phase 1
// that `up` started (users signed up through the API); and that target run
// split between two generator processes of the real binary, started
// together and merged. All three run the same arrivals, operation by
// operation, without an error.
func TestTargetOnPhase1(t *testing.T) {
	c, out := config(t, phase1Target)
	ctx := context.Background()
	own, err := lab.Run(ctx, c)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out)
	}

	top := topotest.Up(t, 1, lab.CommandFlags())
	usersFile := filepath.Join(t.TempDir(), "users.json")
	out.Reset()
	target, err := lab.RunTarget(ctx, lab.TargetConfig{
		URL: top.EntryURL, Scenario: c.Scenario, Seed: c.Seed, SeedUsers: lab.SeedAPI, UsersFile: usersFile,
		Phase: 1, Argv: []string{"scalelab", "run", "--target", top.EntryURL}, Stdout: out,
	})
	if err != nil {
		t.Fatalf("RunTarget: %v\n%s", err, out)
	}
	if own.Totals.Errors != 0 || target.Totals.Errors != 0 {
		t.Errorf("errors: run %d, run --target %d; want none (%v)", own.Totals.Errors, target.Totals.Errors, target.Totals.ErrorsByClass)
	}
	if got, want := arrivals(&target), arrivals(&own); !maps.Equal(got, want) {
		t.Errorf("arrivals by operation: run --target %v, run %v", got, want)
	}
	if target.Target != top.EntryURL || target.Phase != 1 || target.Users != 40 || len(target.Components) != 0 {
		t.Errorf("target result: target %q, phase %d, %d users, %d components; want %s, 1, 40, none",
			target.Target, target.Phase, target.Users, len(target.Components), top.EntryURL)
	}
	t.Logf("run --phase 1: %.0f req/s p50 %.2f ms p99 %.2f ms; run --target: %.0f req/s p50 %.2f ms p99 %.2f ms",
		own.Totals.Rate, own.Totals.LatencyMS.P50, own.Totals.LatencyMS.P99,
		target.Totals.Rate, target.Totals.LatencyMS.P50, target.Totals.LatencyMS.P99)

	bin, err := topotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	scFile := filepath.Join(t.TempDir(), "target-e2e.yaml")
	if err := os.WriteFile(scFile, []byte(phase1Target), 0o644); err != nil {
		t.Fatal(err)
	}
	var genOut bytes.Buffer
	dirs, err := lab.RunGenerators(ctx, lab.GeneratorsConfig{
		Binary: bin, N: 2, Out: t.TempDir(), Stdout: &genOut,
		Args: []string{"--target", top.EntryURL, "--scenario", scFile, "--seed", strconv.FormatUint(c.Seed, 10),
			"--seed-users", "none", "--users-file", usersFile, "--generators", "1"},
	})
	if err != nil {
		t.Fatalf("RunGenerators: %v\n%s", err, genOut.String())
	}
	var parts []*reports.Result
	for _, d := range dirs {
		r, err := reports.Read(d)
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, r)
	}
	merged, err := lab.Merge(parts, []string{"scalelab", "merge"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := arrivals(&merged), arrivals(&target); !maps.Equal(got, want) || merged.Totals.Errors != 0 {
		t.Errorf("arrivals by operation: 2 generators merged %v (%d errors), one generator %v\n%s", got, merged.Totals.Errors, want, genOut.String())
	}
	if parts[0].Shard != "0/2" || parts[1].Shard != "1/2" || merged.Generators != 2 {
		t.Errorf("shards %q and %q merged into %d generators; want 0/2, 1/2 and 2", parts[0].Shard, parts[1].Shard, merged.Generators)
	}
}

// A scenario with faults needs a topology the lab started; an unknown seed
// mode and a remote target are refused before any load.
func TestRunTargetRefuses(t *testing.T) {
	sc, err := scenarios.Parse("f.yaml", []byte(`
name: faulty
executor: {type: constant-arrival-rate, rate: 10}
duration: 2s
users: 10
mix: [{op: get-user, weight: 1}]
faults: [{at: 1s, component: app, action: kill}]
`))
	if err != nil {
		t.Fatal(err)
	}
	plain := *sc
	plain.Faults = nil
	tests := []struct {
		name string
		cfg  lab.TargetConfig
	}{
		{"faults", lab.TargetConfig{URL: "http://127.0.0.1:1", Scenario: sc}},
		{"remote", lab.TargetConfig{URL: "http://192.0.2.1:80", Scenario: &plain}},
		{"seed mode", lab.TargetConfig{URL: "http://127.0.0.1:1", Scenario: &plain, API: "users", SeedUsers: "bulk"}},
		{"bad api", lab.TargetConfig{URL: "http://127.0.0.1:1", Scenario: &plain, API: "v2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := lab.RunTarget(context.Background(), tt.cfg); !errors.Is(err, lab.ErrInvalid) {
				t.Errorf("RunTarget = %v, want an ErrInvalid", err)
			}
		})
	}
}
