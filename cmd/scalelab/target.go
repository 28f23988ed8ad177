package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"scalelab/lab"
	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
)

// targetConfig holds run's flags for a deployment the lab did not start
// and for splitting a run between load generators.
type targetConfig struct {
	url         string
	allowRemote bool
	api         string
	seedUsers   string
	usersFile   string
	seedRate    float64
	shard       string
	generators  int
	waitStart   bool
}

// targetFlags defines those flags on run's flag set.
func targetFlags(fs *flag.FlagSet) *targetConfig {
	t := &targetConfig{}
	fs.StringVar(&t.url, "target", "", "drive an existing deployment at this base URL (http://HOST:PORT) instead of a phase's topology: nothing is started or sampled")
	fs.BoolVar(&t.allowRemote, "allow-remote", false, "with --target: allow a host that is not a loopback address")
	fs.StringVar(&t.api, "api", "auto", "with --target: the API surface, v1 (/api/v1), users (/api/users) or auto (ask the target)")
	fs.StringVar(&t.seedUsers, "seed-users", string(lab.SeedNone), "with --target: how the scenario's users come to exist: none (already there: --users-file, or the lab's seeded users) or api (signed up through the API before the run)")
	fs.StringVar(&t.usersFile, "users-file", "", "with --target: users to act as (--seed-users none), or where to write the users signed up (--seed-users api; default OUT/users.json)")
	fs.Float64Var(&t.seedRate, "seed-rate", 0, "with --seed-users api: at most this many sign-ups per second (default: as fast as the target takes them)")
	fs.StringVar(&t.shard, "shard", "", "with --target: run only generator i's share of the run, i/N (e.g. 0/2); merge the shares with scalelab merge")
	fs.IntVar(&t.generators, "generators", 1, "with --target: split the run between this many load generator processes, started together, and merge their results")
	fs.BoolVar(&t.waitStart, "wait-start", false, "with --target: after the warm-up, print a ready line and wait for a line on stdin before measuring (--generators uses it)")
	return t
}

// used reports whether the command line asks for a run against a target
// (or for something that needs one).
func (t *targetConfig) used() bool {
	return t.url != "" || t.shard != "" || t.generators > 1 || t.waitStart || t.usersFile != "" || t.seedUsers != string(lab.SeedNone)
}

// runTarget is `scalelab run --target URL`: the scenario against a
// deployment the lab did not start, by one generator, by one share of a
// split run (--shard), or by several generator processes whose results
// are merged (--generators).
func runTarget(ctx context.Context, fs *flag.FlagSet, c *runConfig, t *targetConfig, args []string, stdout, stderr io.Writer, log *slog.Logger) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case t.url == "":
		return &exitError{code: 2, msg: "run: --shard, --generators, --wait-start, --seed-users and --users-file need --target"}
	case set["profile"] || set["network"] || set["topology-dir"]:
		return &exitError{code: 2, msg: "run --target: --profile, --network and --topology-dir act on a topology the lab starts, not on a target"}
	case t.generators > 1 && t.shard != "":
		return &exitError{code: 2, msg: "run --target: --generators starts the shards itself; give --shard or --generators, not both"}
	}
	shard, err := loadgen.ParseShard(t.shard)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	sc, err := scenarios.LoadNamed(c.scenario)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	if err := sc.Apply(scenarios.Overrides{Duration: c.duration, Rate: c.rate, Users: c.users}); err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	phase := 0
	if set["phase"] {
		phase = c.phase
	}
	var baseline *reports.Result
	if c.baseline != "" {
		if baseline, err = reports.Read(c.baseline); err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
	}
	if c.out == "" {
		name := "-target-" + sc.Name
		if shard.Split() {
			name += fmt.Sprintf("-generator-%d-of-%d", shard.Index, shard.Count)
		}
		c.out = filepath.Join("reports", "runs", time.Now().UTC().Format("20060102-150405")+name)
	}
	argv := append([]string{"scalelab", "run"}, args...)
	var res reports.Result
	if t.generators > 1 {
		res, err = runGenerators(ctx, c, t, sc, phase, argv, stdout, log)
	} else {
		usersFile := t.usersFile
		if lab.SeedMode(t.seedUsers) == lab.SeedAPI && usersFile == "" {
			usersFile = filepath.Join(c.out, "users.json")
		}
		cfg := lab.TargetConfig{
			URL: t.url, AllowRemote: t.allowRemote, API: t.api, Scenario: sc, Seed: c.seed,
			SeedUsers: lab.SeedMode(t.seedUsers), UsersFile: usersFile, SignUp: lab.SignUpOptions{Rate: t.seedRate},
			Shard: shard, Phase: phase, Argv: argv, Stdout: stdout, Logger: log,
		}
		if t.waitStart {
			cfg.Ready = lab.WaitStart(stdout, os.Stdin)
		}
		res, err = lab.RunTarget(ctx, cfg)
	}
	if err != nil {
		if ctx.Err() != nil {
			return &exitError{code: 130, msg: "interrupted: no report written"}
		}
		if errors.Is(err, lab.ErrInvalid) {
			return &exitError{code: 2, msg: err.Error()}
		}
		return err
	}
	return writeRun(&res, c.out, c.baseline, baseline, stdout, stderr)
}

// runGenerators splits the run between t.generators child processes of
// this binary (lab.RunGenerators) and merges their results. Users signed
// up through the API are signed up once, here, and handed to every
// generator in a users file.
func runGenerators(ctx context.Context, c *runConfig, t *targetConfig, sc *scenarios.Scenario, phase int, argv []string, stdout io.Writer, log *slog.Logger) (reports.Result, error) {
	var res reports.Result
	target, err := lab.CheckTarget(t.url, t.allowRemote)
	if err != nil {
		return res, err
	}
	api, err := lab.TargetAPI(ctx, target, t.api)
	if err != nil {
		return res, err
	}
	usersFile := t.usersFile
	switch lab.SeedMode(t.seedUsers) {
	case lab.SeedAPI:
		if usersFile == "" {
			usersFile = filepath.Join(c.out, "users.json")
		}
		fmt.Fprintf(stdout, "signing %d users up through %s once, for all %d generators\n", sc.Users, api, t.generators)
		u, err := lab.SignUpUsers(ctx, target, api, sc.Users, lab.SignUpOptions{Rate: t.seedRate, Progress: stdout})
		if err != nil {
			return res, err
		}
		if err := lab.WriteUsersFile(usersFile, target, api, u); err != nil {
			return res, err
		}
	case lab.SeedNone:
	default:
		return res, &exitError{code: 2, msg: fmt.Sprintf("--seed-users %q: want one of %s", t.seedUsers, strings.Join(lab.SeedModes(), ", "))}
	}
	bin, err := os.Executable()
	if err != nil {
		return res, fmt.Errorf("find the scalelab binary: %w", err)
	}
	// Every flag the generators need is given explicitly, so that none is
	// taken from a SCALELAB_* variable meant for this command (such as
	// SCALELAB_GENERATORS).
	apiFlag := "v1"
	if api == "/api/users" {
		apiFlag = "users"
	}
	child := []string{
		"--target", target, "--api", apiFlag,
		"--scenario", c.scenario, "--seed", strconv.FormatUint(c.seed, 10), "--log-level", c.logLevel,
		"--seed-users", string(lab.SeedNone), "--generators", "1",
	}
	if usersFile != "" {
		child = append(child, "--users-file", usersFile)
	}
	if c.duration > 0 {
		child = append(child, "--duration", c.duration.String())
	}
	if c.rate > 0 {
		child = append(child, "--rate", strconv.FormatFloat(c.rate, 'g', -1, 64))
	}
	if c.users > 0 {
		child = append(child, "--users", strconv.Itoa(c.users))
	}
	if phase > 0 {
		child = append(child, "--phase", strconv.Itoa(phase))
	}
	if t.allowRemote {
		child = append(child, "--allow-remote")
	}
	dirs, err := lab.RunGenerators(ctx, lab.GeneratorsConfig{Binary: bin, Args: child, N: t.generators, Out: c.out, Stdout: stdout, Logger: log})
	if err != nil {
		return res, err
	}
	parts, err := readResults(dirs)
	if err != nil {
		return res, err
	}
	return lab.Merge(parts, argv)
}

// readResults reads the result.json of each path (a file or its folder).
func readResults(paths []string) ([]*reports.Result, error) {
	parts := make([]*reports.Result, 0, len(paths))
	for _, p := range paths {
		r, err := reports.Read(p)
		if err != nil {
			return nil, err
		}
		parts = append(parts, r)
	}
	return parts, nil
}
