// Command scalelab is the one CLI of the lab: it runs the reference server,
// seeds databases, brings topologies up and down, runs scenarios against
// them and compares the results.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "scalelab:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "scalelab:", err)
		os.Exit(1)
	}
}

// exitError ends the process with a specific status, such as 99 for failed
// thresholds or 2 for usage errors.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d: %s", e.code, e.msg) }

const usage = `usage: scalelab <command> [flags]

commands:
  server    run the reference API server
  seed      bulk-load users into a database
  worker    work the queue's jobs (exports; phase 4, Postgres only)
  run       bring a phase's topology up, seed, run a scenario, write a report (or --target URL: drive a running deployment)
  compare   put results side by side with a noise-aware verdict
  merge     combine the results of load generators that split one run (run --target … --shard i/N), exactly
  up        bring a phase's topology up and leave it running
  down      stop a topology that 'up' left running
  compose   write a phase's Compose file (docker/phase-N.compose.yaml) from its phase file
  regress   CI's throughput check: the server against a bare handler, judged against a baseline
  capacity  step a phase's arrival rate up until its SLO fails: its capacity, cost per request and the model's prediction
  proxy     serve Toxiproxy's API: the network between tiers (the runner starts it)
  plan      instances per tier for a workload of many users, from measured runs, and the smallest phase that serves it
  pause-probe
            report the whole machine's pauses as JSON lines (capacity starts it)
  burn-server
            a bare server spending a set CPU time per request (capacity starts it)

'scalelab <command> -h' shows a command's flags. Every flag also reads an
environment variable: --cache-ttl from SCALELAB_CACHE_TTL, and so on.
`

// run is the whole program; main only wires the process to it.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{code: 2}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "server":
		return runServer(ctx, rest, getenv, stdout, stderr)
	case "worker":
		return runWorker(ctx, rest, getenv, stdout, stderr)
	case "seed":
		return runSeed(ctx, rest, getenv, stdout, stderr)
	case "run":
		return runRun(ctx, rest, getenv, stdout, stderr)
	case "compare":
		return runCompare(ctx, rest, getenv, stdout, stderr)
	case "merge":
		return runMerge(ctx, rest, getenv, stdout, stderr)
	case "up":
		return runUp(ctx, rest, getenv, stdout, stderr)
	case "down":
		return runDown(ctx, rest, getenv, stdout, stderr)
	case "compose":
		return runCompose(ctx, rest, getenv, stdout, stderr)
	case "regress":
		return runRegress(ctx, rest, getenv, stdout, stderr)
	case "capacity":
		return runCapacity(ctx, rest, getenv, stdout, stderr)
	case "plan":
		return runPlan(ctx, rest, getenv, stdout, stderr)
	case "proxy":
		return runProxy(ctx, rest, getenv, stdout, stderr)
	case "pause-probe":
		return runPauseProbe(ctx, rest, getenv, stdout, stderr)
	case "burn-server":
		return runBurnServer(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "scalelab: unknown command %q\n\n%s", cmd, usage)
	return &exitError{code: 2}
}
