package main

import (
	"context"
	"io"

	"scalelab/internal/pauses"
)

// runPauseProbe watches every CPU for pauses of the whole machine until
// stopped, writing them to stdout (internal/pauses); the capacity search
// starts it and reads it.
func runPauseProbe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pause-probe", stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	return pauses.Probe(ctx, stdout)
}
