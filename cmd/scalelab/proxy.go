package main

import (
	"context"
	"fmt"
	"io"

	"scalelab/internal/netsim"
)

// runProxy serves Toxiproxy's API until it is told to stop. The topology
// runner starts it as a component of its own (`toxiproxy`) when the
// network profile is not none, so that the proxies' CPU is sampled apart
// from the system's.
func runProxy(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("proxy", stderr)
	addr := fs.String("addr", "127.0.0.1:8474", "host:port of Toxiproxy's API (loopback)")
	nice := fs.Int("nice", 0, "CPU priority of the proxies, -20 (most) to 19; the topology runner asks for -10 so that a busy machine does not make the simulated network slower")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if *nice != 0 {
		if err := netsim.SetNice(*nice); err != nil {
			return fmt.Errorf("proxy: %w", err)
		}
	}
	fmt.Fprintf(stdout, "toxiproxy API on %s\n", *addr)
	return netsim.Serve(ctx, *addr)
}
