package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"scalelab/lab"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies/topotest"
)

// config is a phase-1 run of scenario yaml, with the real scalelab binary
// running the app.
func config(t *testing.T, yaml string) (lab.Config, *bytes.Buffer) {
	t.Helper()
	bin, err := topotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	def, err := lab.Phase(1)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenarios.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	return lab.Config{
		Definition: def, Scenario: sc, Binary: bin, TopologyDir: searchableTempDir(t), Seed: 7,
		Argv: []string{"scalelab", "run", "--phase", "1"}, Stdout: &out, Logger: topotest.Logger(), DieWithParent: true,
	}, &out
}

// searchableTempDir is a temporary folder the topology runner accepts:
// its parents are searchable by other users, unlike t.TempDir()'s. It is
// kept when the test failed, for the components' logs.
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "scalelab-lab-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	return dir
}

// A phase-1 run of a few seconds, end to end: bring-up, seeding into the
// SQLite file the phase names, warm-up, the measured run, tear-down, and a
// result that survives result.json.
func TestRunPhase1(t *testing.T) {
	c, out := config(t, `
name: e2e
executor: {type: constant-arrival-rate, rate: 100}
duration: 2s
warmup: 500ms
users: 200
max_workers: 16
mix:
  - {op: get-user, weight: 9}
  - {op: update-user, weight: 1}
keys: {distribution: zipfian}
thresholds:
  - errors < 1%
  - p99 < 1h
  - rate > 1000000
`)
	res, err := lab.Run(context.Background(), c)
	if err != nil {
		t.Fatalf("Run: %v\noutput:\n%s", err, out)
	}
	if res.Phase != 1 || res.Scenario != "e2e" || res.Users != 200 {
		t.Errorf("result is phase %d, scenario %q, %d users; want 1, e2e, 200", res.Phase, res.Scenario, res.Users)
	}
	// 2 s at 100/s: 200 arrivals; a loaded machine may drop a few.
	if res.Totals.Requests < 150 || res.Totals.Errors != 0 {
		t.Errorf("totals: %d requests, %d errors; want about 200 and none", res.Totals.Requests, res.Totals.Errors)
	}
	var ops []string
	for _, op := range res.Operations {
		ops = append(ops, op.Name)
		if op.Count == 0 || op.LatencyMS.P50 <= 0 {
			t.Errorf("operation %s: count %d, p50 %v ms; want some of each", op.Name, op.Count, op.LatencyMS.P50)
		}
	}
	slices.Sort(ops)
	if want := []string{"get-user", "update-user"}; !slices.Equal(ops, want) {
		t.Errorf("operations %q, want %q", ops, want)
	}
	var verdicts []string
	for _, th := range res.Thresholds {
		verdicts = append(verdicts, th.Threshold+" "+map[bool]string{true: "PASS", false: "FAIL"}[th.Pass])
	}
	want := []string{"errors < 1% PASS", "p99 < 1h0m0s PASS", "rate > 1000000 FAIL"}
	if diff := cmp.Diff(want, verdicts); diff != "" {
		t.Errorf("thresholds (-want +got):\n%s", diff)
	}
	if res.Cache.L1HitRate != nil || res.Cache.L2HitRate != nil || res.Cache.L3HitRate != nil {
		t.Errorf("phase 1 has no cache tier, but the result has hit rates %+v", res.Cache)
	}
	// SQLite's two pools, read from the app's metrics listener (phase 1
	// has no Prometheus): one writer, and the waits counted from zero.
	var pools []string
	for _, p := range res.DBPools {
		pools = append(pools, fmt.Sprintf("%s %s %s", p.Component, p.Store, p.Pool))
		if p.MaxOpen < 1 || p.InUseMax > p.MaxOpen || p.WaitS < 0 {
			t.Errorf("pool %+v: want connections to open, no more in use, no negative wait", p)
		}
	}
	if want := []string{"app-1 sqlite reader", "app-1 sqlite writer"}; !slices.Equal(pools, want) {
		t.Errorf("db pools %q, want %q", pools, want)
	}
	for _, line := range []string{"phase 1: ", "topology up in", "seeded 200 users", "warming up for 500ms", "running e2e for 2s", "topology down in"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("output lacks %q:\n%s", line, out)
		}
	}

	// The run went well: its folder keeps the logs, not the database.
	var logs, data []string
	err = filepath.WalkDir(c.TopologyDir, func(p string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case strings.HasSuffix(p, ".log"):
			logs = append(logs, p)
		case d.Name() == "data" || strings.HasSuffix(p, ".db"):
			data = append(data, p)
		}
		return nil
	})
	if err != nil || len(logs) == 0 || len(data) > 0 {
		t.Errorf("run folder has logs %q and data %q (%v); want logs only", logs, data, err)
	}

	dir := t.TempDir()
	if err := res.WriteAll(dir); err != nil {
		t.Fatal(err)
	}
	back, err := reports.Read(filepath.Join(dir, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(res.Totals, back.Totals, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("result.json totals (-written +read):\n%s", diff)
	}
}

// A fault naming a component the phase lacks fails before seeding, as an
// invalid run, and the topology is down again.
func TestUpRejectsUnknownFaultComponent(t *testing.T) {
	c, out := config(t, `
name: bad-fault
executor: {type: constant-arrival-rate, rate: 10}
duration: 2s
users: 10
mix: [{op: get-user, weight: 1}]
faults:
  - {at: 1s, component: redis, action: kill}
`)
	s, err := lab.Up(context.Background(), c)
	if err == nil {
		s.Down(context.Background())
		t.Fatal("Up succeeded, want an error about the fault")
	}
	if !errors.Is(err, lab.ErrInvalid) || !strings.Contains(err.Error(), "fault at 1s: kill redis") {
		t.Errorf("Up: %v, want an ErrInvalid about fault at 1s: kill redis", err)
	}
	if !strings.Contains(out.String(), "topology down in") || strings.Contains(out.String(), "seeding") {
		t.Errorf("want the topology down and nothing seeded; output:\n%s", out)
	}
}

// A Session measures one topology at several rates.
func TestSessionMeasureRate(t *testing.T) {
	c, _ := config(t, `
name: steps
executor: {type: constant-arrival-rate, rate: 10}
duration: 1s
users: 50
mix: [{op: get-user, weight: 1}]
`)
	ctx := context.Background()
	s, err := lab.Up(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Down(ctx); err != nil {
			t.Error(err)
		}
	}()
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.WarmUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, rate := range []float64{20, 80} {
		m, err := s.MeasureRate(ctx, rate, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		res := s.Result(ctx, m)
		if got := res.Totals.OfferedRate; got < rate*0.9 || got > rate*1.1 {
			t.Errorf("MeasureRate(%v): offered %v/s", rate, got)
		}
		if res.Totals.Errors != 0 {
			t.Errorf("MeasureRate(%v): %d errors", rate, res.Totals.Errors)
		}
	}
	if _, err := s.MeasureRate(ctx, 0, time.Second); !errors.Is(err, lab.ErrInvalid) {
		t.Errorf("MeasureRate(0) = %v, want ErrInvalid", err)
	}
}
