package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scalelab/reports"
)

func mustWriteResult(t *testing.T, dir string, r reports.Result) {
	t.Helper()
	if err := r.WriteAll(dir); err != nil {
		t.Fatal(err)
	}
}

// run --baseline compares with the given result and links to its report
// (report.md links to report.md);
// a run written under reports/published/ gets the previous phase's
// published run as its baseline without the flag.
func TestReportOptions(t *testing.T) {
	tmp := t.TempDir()
	base := reports.Result{SchemaVersion: reports.SchemaVersion, Phase: 1, Scenario: "read-heavy", DurationS: 10,
		Totals: reports.Totals{Requests: 1000, Rate: 100, LatencyMS: reports.Latency{P50: 1, P99: 2}}}
	mustWriteResult(t, filepath.Join(tmp, "old"), base)
	mustWriteResult(t, filepath.Join(tmp, "reports", "published", "phase-1-read-heavy"), base)
	run := base
	run.Phase = 2
	run.Totals.LatencyMS = reports.Latency{P50: 0.5, P99: 1}

	tests := []struct {
		name     string
		out      string
		baseline string
		want     string
	}{
		{"baseline folder", filepath.Join(tmp, "runs", "new"), filepath.Join(tmp, "old"), "../../old/report.md"},
		{"baseline file", filepath.Join(tmp, "runs", "new"), filepath.Join(tmp, "old", reports.ResultFile), "../../old/report.md"},
		{"published", filepath.Join(tmp, "reports", "published", "phase-2-read-heavy"), "", "../phase-1-read-heavy/report.md"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b *reports.Result
			if tt.baseline != "" {
				var err error
				if b, err = reports.Read(tt.baseline); err != nil {
					t.Fatal(err)
				}
			}
			opts, err := reportOptions(tt.out, tt.baseline, b)
			if err != nil {
				t.Fatal(err)
			}
			var md bytes.Buffer
			if err := reports.RenderMarkdown(&md, &run, opts...); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(md.String(), "("+tt.want+")") {
				t.Errorf("report.md does not link the baseline %s:\n%s", tt.want, md.String())
			}
		})
	}

	// Without a baseline or a published folder, no comparison.
	opts, err := reportOptions(filepath.Join(tmp, "runs", "plain"), "", nil)
	if err != nil || len(opts) != 0 {
		t.Errorf("reportOptions(plain) = %d options, %v; want none", len(opts), err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "runs")); err == nil {
		t.Errorf("reportOptions created the report folder")
	}
}
