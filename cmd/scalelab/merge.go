package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"scalelab/lab"
)

// runMerge is `scalelab merge RESULT_OR_DIR... --out DIR`: it combines the
// results of load generators that split one run (run --target … --shard
// i/N) into the whole run's result.json and reports, exactly (lab.Merge).
func runMerge(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("merge", stderr)
	out := fs.String("out", "", "report folder of the merged run (default reports/runs/<time>-merged-NAME)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scalelab merge RESULT_OR_DIR... [--out DIR]")
		fs.PrintDefaults()
	}
	// Flags may come before, between or after the results.
	var paths []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return parseFlags(fs, rest, getenv) // reports the error as parseFlags does
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		paths, rest = append(paths, rest[0]), rest[1:]
	}
	if err := parseFlags(fs, nil, getenv); err != nil {
		return err
	}
	if len(paths) == 0 {
		fs.Usage()
		return &exitError{code: 2, msg: "merge needs the results of the generators (result.json files or their folders)"}
	}
	parts, err := readResults(paths)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	res, err := lab.Merge(parts, append([]string{"scalelab", "merge"}, args...))
	if err != nil {
		if errors.Is(err, lab.ErrInvalid) {
			return &exitError{code: 2, msg: err.Error()}
		}
		return err
	}
	if *out == "" {
		*out = filepath.Join("reports", "runs", time.Now().UTC().Format("20060102-150405")+"-merged-"+res.Scenario)
	}
	fmt.Fprintf(stdout, "merged %d results (%d generators)\n", len(parts), res.Generators)
	return writeRun(&res, *out, "", nil, stdout, stderr)
}
