// Package lab is the run pipeline: it brings a phase's topology up, seeds
// it, signs the simulated clients in, warms up, puts the scenario's load on
// it while sampling the topology and injecting the scenario's faults, tears
// it down and maps what was measured into a reports.Result.
//
// Run does all of it once. A Session is the same pipeline in steps, for a
// caller (such as a capacity search) that brings a topology up once and
// measures it at several rates:
//
//	s, err := lab.Up(ctx, cfg)
//	defer s.Down(ctx)
//	s.Seed(ctx); s.WarmUp(ctx)
//	for _, rate := range rates { m, err := s.MeasureRate(ctx, rate, 30*time.Second); … }
package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/server/app"
	"scalelab/server/jobs"
	"scalelab/topologies"
)

// ErrInvalid marks an error in what the caller asked for (a fault naming a
// component the phase lacks, an operation the driver does not know), as
// opposed to a failure of the run. scalelab run exits 2 on it.
var ErrInvalid = errors.New("invalid run")

// invalid wraps err so that errors.Is(err, ErrInvalid) holds; its message
// is err's own.
type invalid struct{ err error }

func (e invalid) Error() string              { return e.err.Error() }
func (e invalid) Unwrap() []error            { return []error{e.err, ErrInvalid} }
func invalidf(format string, a ...any) error { return invalid{fmt.Errorf(format, a...)} }

// Config is one run.
type Config struct {
	// Definition is the topology to bring up. Required.
	Definition *topologies.Definition
	// Scenario is the load, its overrides already applied. Required.
	Scenario *scenarios.Scenario
	// Binary is the scalelab executable the app instances run. Required.
	Binary string
	// TopologyDir holds the topology's run folders; default
	// .scalelab/topologies (see topologies.Options.Dir).
	TopologyDir string
	// Seed seeds the load's key and operation choices; the warm-up uses
	// Seed+1.
	Seed uint64
	// Argv is the command line the result records.
	Argv []string
	// Stdout receives progress lines and the live progress bar; nil
	// discards them.
	Stdout io.Writer
	// Logger receives the topology's and sampler's logs; nil discards them.
	Logger *slog.Logger
	// ProfileDir, when set, receives CPU profiles of the app instances and
	// of the load generator over the measured run (see startProfiles).
	ProfileDir string
	// FastPostgres and DieWithParent are passed to topologies.Options (for
	// tests).
	FastPostgres, DieWithParent bool
	// KeepData keeps the components' data (databases, Prometheus'
	// samples) in the run folder after a run that went well; Run deletes
	// it otherwise (hundreds of MB a run), and always keeps the logs.
	KeepData bool
	// Runtime is where the components run (topologies.RuntimeProcess,
	// the default, or RuntimeDocker); DockerHost is the Docker endpoint
	// for RuntimeDocker ("" finds one, see topologies.Options).
	Runtime    topologies.Runtime
	DockerHost string
}

// Run brings the phase up, seeds, warms up, runs the scenario while
// sampling the topology and injecting its faults, tears everything down
// (whatever happened, with a fresh context) and returns the result.
func Run(ctx context.Context, c Config) (res reports.Result, err error) {
	s, err := Up(ctx, c)
	if err != nil {
		return res, err
	}
	down := func() error {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return s.Down(dctx)
	}
	downDone := false
	defer func() {
		if !downDone {
			err = errors.Join(err, down())
		}
	}()
	if err := s.Seed(ctx); err != nil {
		return res, err
	}
	if err := s.WarmUp(ctx); err != nil {
		return res, err
	}
	m, err := s.Measure(ctx)
	if err != nil {
		return res, err
	}
	// Down before the result, which records how long it took.
	downDone = true
	derr := down()
	if derr == nil && !c.KeepData {
		// A run that went well needs its databases no more; one that
		// failed keeps them for a look.
		if err := s.top.RemoveData(); err != nil {
			s.log.Warn("the run's data stays", "err", err)
		}
	}
	return s.Result(ctx, m), derr
}

// CommandFlags are the flag sets of `scalelab server` and `scalelab
// worker`, which the runner starts for every app instance and queue
// worker: phase files are checked against them.
func CommandFlags() topologies.Flags {
	server, _ := app.FlagSet("server")
	worker, _ := jobs.WorkerFlagSet("worker")
	return topologies.Flags{Server: server, Worker: worker}
}

// Phase returns the checked-in topology of phase n, checked against the
// server's and the worker's flags.
func Phase(n int) (*topologies.Definition, error) {
	return topologies.Phase(n, CommandFlags())
}
