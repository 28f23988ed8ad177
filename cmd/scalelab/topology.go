package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"scalelab/lab"
	"scalelab/topologies"
)

// runUp brings a phase's topology up and leaves it running: its processes
// live in their own process groups and outlive this command. `scalelab
// down` stops them.
func runUp(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("up", stderr)
	phase := fs.Int("phase", 1, "phase whose topology to start: 1 to 4")
	dir := fs.String("topology-dir", "", "folder for the topology's run folders (default .scalelab/topologies)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	network := fs.String("network", "", "distance between tiers: "+strings.Join(topologies.NetworkProfiles(), ", ")+" (default: the phase file's)")
	runtime := fs.String("runtime", "process", runtimeUsage)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	rt, err := topologies.ParseRuntime(*runtime)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	def, err := lab.Phase(*phase)
	if err == nil {
		err = def.SetNetwork(*network)
	}
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the scalelab binary: %w", err)
	}
	top, err := topologies.Up(ctx, def, topologies.Options{Binary: bin, Dir: *dir, Logger: log, Runtime: rt})
	if err != nil {
		return fmt.Errorf("bring phase %d up: %w", *phase, err)
	}
	fmt.Fprintf(stdout, "phase %d is up in %.1fs: %s\n", *phase, top.UpSeconds, def.Description)
	if rt == topologies.RuntimeDocker {
		fmt.Fprintf(stdout, "runtime:   docker at %s, network %s\n", top.DockerHost, top.DockerNetwork)
	}
	fmt.Fprintf(stdout, "entry:     %s%s\n", top.EntryURL, top.API)
	fmt.Fprintf(stdout, "network:   %s\n", top.Network)
	for _, l := range top.Links {
		fmt.Fprintf(stdout, "  %-20s %s -> %s  +%.2f ms ± %.2f each way\n", l.Name, l.Listen, l.Upstream, l.LatencyMS, l.JitterMS)
	}
	for _, c := range top.Components() {
		where := c.URL
		if where == "" {
			where = c.Addr
		}
		if c.Container != "" {
			where += "  (container " + c.Container + ")"
		}
		fmt.Fprintf(stdout, "  %-16s pid %-7d %s\n", c.Name, c.PID, where)
	}
	fmt.Fprintf(stdout, "endpoints: %s/topology.json\nstop it with: scalelab down\n", top.Dir)
	return nil
}

// runDown stops every topology that `scalelab up` left running (or one
// folder given with --run). A second down finds nothing to stop.
func runDown(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("down", stderr)
	dir := fs.String("topology-dir", "", "folder of the topologies' run folders (default .scalelab/topologies)")
	run := fs.String("run", "", "stop only this run folder")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	runtime := fs.String("runtime", "", "stop only the runs of this runtime, process or docker (default: every run; each run's topology.json says its runtime)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	var only topologies.Runtime
	if *runtime != "" {
		var err error
		if only, err = topologies.ParseRuntime(*runtime); err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return err
	}
	runs := []string{*run}
	if *run == "" {
		if runs, err = topologies.ListRuns(*dir); err != nil {
			return err
		}
	}
	if len(runs) == 0 {
		fmt.Fprintln(stdout, "nothing to stop")
		return nil
	}
	var errs []error
	for _, r := range runs {
		top, err := topologies.Open(r, log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if only != "" && cmp.Or(top.Runtime, string(topologies.RuntimeProcess)) != string(only) {
			continue
		}
		start := time.Now()
		if err := top.Down(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop %s: %w", r, err))
			continue
		}
		fmt.Fprintf(stdout, "stopped %s (%s) in %.1fs\n", r, cmp.Or(top.Runtime, string(topologies.RuntimeProcess)), time.Since(start).Seconds())
	}
	return errors.Join(errs...)
}

// runtimeUsage is the --runtime flag's help.
const runtimeUsage = "where the components run: process (local processes) or docker (containers of the images `make images` builds, on a Docker daemon that DOCKER_HOST or the default sockets name)"
