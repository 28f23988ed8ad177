package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scalelab/loadgen"
	"scalelab/reports"
)

// shardResult is generator i of 2's result.json of a small run against
// srv, as `run --target … --shard i/2` writes it.
func shardResult(t *testing.T, srv *httptest.Server, i int) string {
	t.Helper()
	sh := loadgen.Shard{Index: i, Count: 2}
	lr, err := loadgen.Run(context.Background(), loadgen.Config{
		Target: srv.URL, Seed: 3, Shard: sh,
		Ops: []loadgen.Op{{Name: "get-user", Weight: 1, Do: func(_ context.Context, c *loadgen.Client, _ *loadgen.Session) error {
			_, err := c.Do(&loadgen.Request{Path: "/"})
			return err
		}}},
		Executor: loadgen.ConstantArrivalRate{Rate: 100, Duration: 500 * time.Millisecond, Pool: loadgen.Pool{MaxDelay: time.Second}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := reports.Result{
		SchemaVersion: reports.SchemaVersion, Scenario: "tiny", Target: srv.URL, Executor: "constant-arrival-rate 100/s",
		Shard: sh.String(), Load: lr, StartedAt: lr.Start, DurationS: lr.Duration.Seconds(),
		Totals:     reports.Totals{Requests: lr.Total.Count},
		Thresholds: []reports.ThresholdResult{{Threshold: "errors < 1%"}},
	}
	dir := filepath.Join(t.TempDir(), "generator")
	mustWriteResult(t, dir, r)
	return dir
}

// scalelab merge takes the generators' folders, flags anywhere, and writes
// the whole run's result and reports; a shard given twice is refused.
func TestMergeCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(srv.Close)
	a, b := shardResult(t, srv, 0), shardResult(t, srv, 1)
	out := filepath.Join(t.TempDir(), "merged")
	var stdout, stderr bytes.Buffer
	getenv := func(string) string { return "" }
	if err := run(context.Background(), []string{"merge", a, "--out", out, b}, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("merge: %v\n%s", err, stderr.String())
	}
	res, err := reports.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Generators != 2 || res.Totals.Requests != 50 || res.Load == nil || res.Target != srv.URL || len(res.Thresholds) != 1 || !res.Thresholds[0].Pass {
		t.Errorf("merged: %d generators, %d requests, load %v, target %q, thresholds %+v; want 2, 50, a load, %s, errors < 1%% passed",
			res.Generators, res.Totals.Requests, res.Load != nil, res.Target, res.Thresholds, srv.URL)
	}
	if !strings.Contains(stdout.String(), "merged 2 results (2 generators)") {
		t.Errorf("stdout:\n%s", stdout.String())
	}

	err = run(context.Background(), []string{"merge", a, a, "--out", filepath.Join(t.TempDir(), "x")}, getenv, &stdout, &stderr)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, "given twice") {
		t.Errorf("merge of one shard twice = %v, want exit 2 naming it", err)
	}
}

// run's target flags fail as usage errors before any load.
func TestRunTargetUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--shard", "0/2"}, "need --target"},
		{[]string{"--target", "http://192.0.2.1:80"}, "not a loopback address"},
		{[]string{"--target", "http://127.0.0.1:1", "--shard", "0/2", "--generators", "2"}, "not both"},
		{[]string{"--target", "http://127.0.0.1:1", "--shard", "2/2"}, "0 <= i < N"},
		{[]string{"--target", "http://127.0.0.1:1", "--network", "internet"}, "not on a target"},
		{[]string{"--target", "http://127.0.0.1:1/api/v1"}, "base URL"},
		{[]string{"--target", "http://127.0.0.1:1", "--api", "v1", "--seed-users", "bulk"}, "seed mode"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), append([]string{"run", "--out", t.TempDir()}, tt.args...), func(string) string { return "" }, &stdout, &stderr)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, tt.want) {
			t.Errorf("run %q = %v, want exit 2 saying %q", tt.args, err, tt.want)
		}
	}
}
