package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scalelab/reports"
)

const publishedRun = "../../reports/published/phase-3-read-heavy"

// scaled writes a copy of the published run with every latency multiplied
// by f(t) for second t (and by f(-1) for the summaries), as a planted
// slowdown or a rerun's noise.
func scaled(t *testing.T, f func(sec int) float64) string {
	t.Helper()
	r, err := reports.Read(publishedRun)
	if err != nil {
		t.Fatal(err)
	}
	scale := func(l *reports.Latency, k float64) {
		l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean = l.P50*k, l.P90*k, l.P99*k, l.P999*k, l.Max*k, l.Mean*k
	}
	scale(&r.Totals.LatencyMS, f(-1))
	for i := range r.Series {
		k := f(r.Series[i].T)
		r.Series[i].P50MS *= k
		r.Series[i].P99MS *= k
	}
	for i := range r.Operations {
		op := &r.Operations[i]
		scale(&op.LatencyMS, f(-1))
		for j := range op.Series {
			k := f(op.Series[j].T)
			op.Series[j].P50MS *= k
			op.Series[j].P99MS *= k
		}
	}
	dir := t.TempDir()
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func compare(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), append([]string{"compare"}, args...), func(string) string { return "" }, &stdout, &stderr)
	return stdout.String(), err
}

func TestCompareFailOn(t *testing.T) {
	// A rerun: each second's latencies 3% up or down, alternately.
	rerun := scaled(t, func(sec int) float64 { return 1 + 0.03*float64(sec%2*2-1) })
	slower := scaled(t, func(int) float64 { return 1.5 })

	t.Run("planted slowdown fails", func(t *testing.T) {
		out, err := compare(t, "--fail-on", "slower", publishedRun, slower)
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 99 {
			t.Fatalf("compare --fail-on slower on a 1.5× slowdown: err %v, want exit 99\n%s", err, out)
		}
		if !strings.Contains(ee.msg, "B vs A: p99") || !strings.Contains(out, "slower") {
			t.Errorf("the failure does not name the slower p99: %s\n%s", ee.msg, out)
		}
	})
	t.Run("two clean runs pass", func(t *testing.T) {
		for _, fail := range []string{"slower", "worse"} {
			if out, err := compare(t, "--fail-on", fail, publishedRun, rerun); err != nil {
				t.Errorf("compare --fail-on %s on two clean runs: %v\n%s", fail, err, out)
			}
		}
	})
	t.Run("without --fail-on a slowdown exits 0", func(t *testing.T) {
		if _, err := compare(t, publishedRun, slower); err != nil {
			t.Errorf("compare without --fail-on: %v", err)
		}
	})
}

func TestCompareFormatsAndHTML(t *testing.T) {
	out, err := compare(t, "--format", "json", publishedRun, publishedRun)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Runs []any }
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc.Runs) != 2 {
		t.Errorf("--format json: %v, %d runs\n%s", err, len(doc.Runs), out)
	}
	page := filepath.Join(t.TempDir(), "compare.html")
	if _, err := compare(t, "--html", page, publishedRun, "../../reports/published/phase-4-read-heavy"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(data), "<svg") {
		t.Errorf("--html wrote no page with charts: %v", err)
	}
	for _, args := range [][]string{{"--format", "xml", publishedRun, publishedRun}, {"--fail-on", "faster", publishedRun, publishedRun}, {publishedRun}} {
		var ee *exitError
		if _, err := compare(t, args...); !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("compare %v: %v, want a usage error (exit 2)", args, err)
		}
	}
}
