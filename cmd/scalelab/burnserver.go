package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"scalelab/internal/burn"
)

// runBurnServer serves a fixed answer after a set CPU time per request,
// until stopped (internal/burn); the capacity search starts it to measure
// how much of the cores this machine lets requests use. With --hops, every
// request also goes through a chain of processes behind it, each spending
// its own CPU, as a request goes through a phase's tiers; --hop is one of
// those processes, which the server starts itself.
func runBurnServer(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("burn-server", stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback address to listen on (port 0: any free one); the URL is the first line on stdout; with --hop, a Unix socket's path")
	work := fs.Duration("work", 100*time.Microsecond, "CPU time spent on every request, 0 to 1s")
	hopList := fs.String("hops", "", "processes every request goes through behind the server, in order: name=work[/threads],... (threads: the process's GOMAXPROCS, e.g. 1 for a tier that runs one thread)")
	hop := fs.Bool("hop", false, "be one of the hops: serve the chain's one-byte requests on the Unix socket --listen")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	hops, err := burn.ParseHops(*hopList)
	if err != nil {
		return &exitError{code: 2, msg: "burn-server: --hops: " + err.Error()}
	}
	binary, err := os.Executable()
	if err != nil && len(hops) > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("burn-server: find this program for its hops: %v", err)}
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if *hop {
		err = burn.ServeHop(ctx, binary, *listen, *work, hops, stdout, log)
	} else {
		err = burn.Serve(ctx, burn.Config{Listen: *listen, Work: *work, Hops: hops, Binary: binary, Log: log}, stdout)
	}
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	return nil
}
