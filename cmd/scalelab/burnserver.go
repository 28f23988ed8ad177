package main

import (
	"context"
	"io"
	"time"

	"scalelab/internal/burn"
)

// runBurnServer serves a fixed answer after a set CPU time per request,
// until stopped (internal/burn); the capacity search starts it to measure
// how much of the cores this machine lets requests use.
func runBurnServer(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("burn-server", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on (port 0: any free one); the URL is the first line on stdout")
	work := fs.Duration("work", 100*time.Microsecond, "CPU time spent on every request, 0 to 1s")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if err := burn.Serve(ctx, *listen, *work, stdout); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	return nil
}
