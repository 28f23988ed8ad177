package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"scalelab/reports"
)

// runCompare puts results side by side with a noise-aware verdict: as text
// or JSON on stdout, and as one HTML page with --html. With --fail-on it
// exits 99 when a verdict says so, so CI can gate on it.
func runCompare(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("compare", stderr)
	format := fs.String("format", "text", "output on stdout: text or json")
	htmlOut := fs.String("html", "", "also write the comparison as one self-contained HTML page to this file")
	failOn := fs.String("fail-on", "", `exit 99 when a verdict says so: "slower" (latency or throughput slower) or "worse" (slower, or worse error rate, hit rate, CPU per request or replicas)`)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scalelab compare [--format text|json] [--html FILE] [--fail-on slower|worse] RESULT_OR_DIR RESULT_OR_DIR...")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return &exitError{code: 2, msg: fmt.Sprintf("compare: --format %q: want text or json", *format)}
	}
	if *failOn != "" && *failOn != reports.FailOnSlower && *failOn != reports.FailOnWorse {
		return &exitError{code: 2, msg: fmt.Sprintf("compare: --fail-on %q: want slower or worse", *failOn)}
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return &exitError{code: 2, msg: "compare needs at least two results (result.json files or run folders)"}
	}
	var results []*reports.Result
	for _, p := range fs.Args() {
		r, err := reports.Read(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		results = append(results, r)
	}
	c := reports.Compare(results)
	render := reports.RenderComparison
	if *format == "json" {
		render = reports.RenderComparisonJSON
	}
	if err := render(stdout, c); err != nil {
		return fmt.Errorf("compare: %w", err)
	}
	if *htmlOut != "" {
		var page bytes.Buffer
		if err := reports.RenderComparisonHTML(&page, c); err != nil {
			return fmt.Errorf("compare: render %s: %w", *htmlOut, err)
		}
		if err := os.WriteFile(*htmlOut, page.Bytes(), 0o644); err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		fmt.Fprintf(stderr, "compare: wrote %s\n", *htmlOut)
	}
	if *failOn != "" {
		if fails := c.Failures(*failOn); len(fails) > 0 {
			return &exitError{code: 99, msg: fmt.Sprintf("compare --fail-on %s: %d verdicts fail:\n  %s", *failOn, len(fails), strings.Join(fails, "\n  "))}
		}
	}
	return nil
}
