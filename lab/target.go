package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
)

// SeedMode says how the users of a run against a target come to exist.
type SeedMode string

// The seed modes of a run against a target.
const (
	// SeedNone uses users that are already there: those of a users file
	// (TargetConfig.UsersFile), or else the lab's deterministic seeded
	// users (scalelab seed), which the run checks are present.
	SeedNone SeedMode = "none"
	// SeedAPI signs the scenario's users up through the API before the
	// run, as real clients would (SignUpUsers), and writes them to the
	// users file for later runs.
	SeedAPI SeedMode = "api"
)

// SeedModes lists the seed modes, for usage text.
func SeedModes() []string { return []string{string(SeedNone), string(SeedAPI)} }

// TargetConfig is a run against a deployment the lab did not start: no
// topology is brought up or sampled, the users are signed up through the
// API or already there, then the run warms up and measures as Run does.
type TargetConfig struct {
	// URL is the deployment's base URL, e.g. http://127.0.0.1:8080.
	// Required.
	URL string
	// AllowRemote lets URL name a host other than a loopback address.
	AllowRemote bool
	// API is the API surface: "v1" (/api/v1), "users" (/api/users), or ""
	// to ask the target (TargetAPI).
	API string
	// Scenario is the load, its overrides applied. Required; it may not
	// inject faults (they act on components the lab started).
	Scenario *scenarios.Scenario
	// Seed seeds the load's choices, as in Config.
	Seed uint64
	// SeedUsers says how the scenario's users come to exist; "" is
	// SeedNone.
	SeedUsers SeedMode
	// UsersFile is read with SeedNone (when set) and written with SeedAPI
	// (when set).
	UsersFile string
	// SignUp tunes SeedAPI's sign-ups.
	SignUp SignUpOptions
	// Shard makes this run one generator's share of a split run
	// (loadgen.Shard); its result then carries the load generator's
	// histograms, for Merge.
	Shard loadgen.Shard
	// Phase is the lab phase the target runs, when known (0: unknown);
	// the result records it.
	Phase int
	// Ready, if set, is called after the warm-up, right before the
	// measured run: the generators of a split run wait there until all
	// are ready, so that their seconds line up (RunGenerators).
	Ready func(ctx context.Context) error
	// Argv, Stdout and Logger are as in Config.
	Argv   []string
	Stdout io.Writer
	Logger *slog.Logger
}

// targetInput is what buildResult needs to know of a run against a target.
type targetInput struct {
	url        string
	shard      loadgen.Shard
	generators int    // results merged, 0 for one run
	users      string // where the users came from, for the notes
}

// RunTarget runs c's scenario against c.URL and returns the result: it
// has the load generator's figures and none of a topology's.
func RunTarget(ctx context.Context, c TargetConfig) (reports.Result, error) {
	res, _, err := runTarget(ctx, c)
	return res, err
}

// runTarget is RunTarget, also returning the load generator's result.
func runTarget(ctx context.Context, c TargetConfig) (res reports.Result, lres *loadgen.Result, err error) {
	if c.Scenario == nil {
		return res, nil, errors.New("lab: TargetConfig needs a Scenario")
	}
	out, log := c.Stdout, c.Logger
	if out == nil {
		out = io.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	target, err := CheckTarget(c.URL, c.AllowRemote)
	if err != nil {
		return res, nil, err
	}
	sc := *c.Scenario
	if len(sc.Faults) > 0 {
		return res, nil, invalidf("scenario %s injects faults (%s): faults act on components the lab started, so not with a target", sc.Name, sc.Faults[0])
	}
	if err := c.Shard.Validate(); err != nil {
		return res, nil, invalid{err}
	}
	api, err := TargetAPI(ctx, target, c.API)
	if err != nil {
		return res, nil, err
	}
	fmt.Fprintf(out, "target %s: API %s\n", target, api)
	users, how, err := targetUsers(ctx, c, target, api, sc.Users, out)
	if err != nil {
		return res, nil, err
	}
	if users.N < sc.Users {
		fmt.Fprintf(out, "the run uses the %d users there are, not the scenario's %d\n", users.N, sc.Users)
		sc.Users = users.N
	}
	users = users.Prefix(sc.Users)

	// The generators of a split run each tag the users they create.
	runTag := fmt.Sprintf("%x-g%d", time.Now().UnixNano()&0xffffffffff, c.Shard.Index)
	d := newDriver(&sc, api, users.N, runTag)
	d.accounts, d.shard = users, c.Shard
	ops, err := d.ops(&sc)
	if err != nil {
		return res, nil, invalid{err}
	}
	if d.auth {
		start := time.Now()
		if err := d.signIn(ctx, target, min(sc.MaxWorkers, maxSignIns)); err != nil {
			return res, nil, err
		}
		fmt.Fprintf(out, "signed in %d simulated clients in %.1fs\n", len(d.tokens), time.Since(start).Seconds())
	}
	if c.Shard.Split() {
		// The generators together hold as many workers as one would.
		sc.MaxWorkers = (sc.MaxWorkers + c.Shard.Count - 1) / c.Shard.Count
		fmt.Fprintf(out, "generator %s: every %d-th arrival of the schedule, and its share of the users\n", c.Shard, c.Shard.Count)
	}
	loadConfig := func(seed uint64, ex loadgen.Executor) loadgen.Config {
		return loadgen.Config{Target: target, Ops: ops, Executor: ex, Seed: seed, Timeout: 10 * time.Second, Setup: d.setup, Shard: c.Shard}
	}
	if sc.Warmup > 0 {
		fmt.Fprintf(out, "warming up for %s\n", sc.Warmup)
		cfg := loadConfig(c.Seed+1, warmupExecutor(&sc))
		cfg.GracefulStop = time.Second
		if _, err := loadgen.Run(ctx, cfg); err != nil {
			return res, nil, fmt.Errorf("warm up: %w", err)
		}
	}
	if c.Ready != nil {
		if err := c.Ready(ctx); err != nil {
			return res, nil, fmt.Errorf("wait for the other generators: %w", err)
		}
	}
	fmt.Fprintf(out, "running %s for %s: %s\n", sc.Name, sc.Duration, sc.Executor)
	progress := loadgen.NewProgress(out)
	cfg := loadConfig(c.Seed, mainExecutor(&sc))
	cfg.Observer = progress
	lres, err = loadgen.Run(ctx, cfg)
	progress.Stop()
	if err != nil {
		return res, nil, fmt.Errorf("run %s: %w", sc.Name, err)
	}
	if err := ctx.Err(); err != nil {
		return res, nil, fmt.Errorf("run %s: interrupted: %w", sc.Name, err)
	}
	log.Info("target run done", "target", target, "shard", c.Shard.String(), "requests", lres.Total.Count)
	res = buildResult(resultInput{
		phase: c.Phase, scenario: &sc, argv: c.Argv, machine: reports.DetectMachine(ctx), load: lres,
		target: &targetInput{url: target, shard: c.Shard, users: how},
	})
	res.Target, res.Shard = target, c.Shard.String()
	if c.Shard.Split() {
		res.Load = lres
	}
	return res, lres, nil
}

// targetUsers returns the users of a run against target, and a line saying
// where they came from.
func targetUsers(ctx context.Context, c TargetConfig, target, api string, n int, out io.Writer) (*Users, string, error) {
	switch c.SeedUsers {
	case SeedAPI:
		if c.Shard.Split() {
			return nil, "", invalidf("--seed-users api with --shard: sign the users up once, before the generators start (--generators does), and give each generator the users file")
		}
		fmt.Fprintf(out, "signing %d users up through %s (each costs the server a password hash)\n", n, api)
		start := time.Now()
		o := c.SignUp
		if o.Progress == nil {
			o.Progress = out
		}
		u, err := SignUpUsers(ctx, target, api, n, o)
		if err != nil {
			return nil, "", err
		}
		how := fmt.Sprintf("%d users signed up through the API before the run, in %.1fs", n, time.Since(start).Seconds())
		if c.UsersFile != "" {
			if err := WriteUsersFile(c.UsersFile, target, api, u); err != nil {
				return nil, "", err
			}
			fmt.Fprintf(out, "users written to %s (with their password): reuse them with --seed-users none --users-file %s\n", c.UsersFile, c.UsersFile)
			how += " (users file " + c.UsersFile + ")"
		}
		return u, how, nil
	case SeedNone, "":
		if c.UsersFile != "" {
			u, at, err := ReadUsersFile(c.UsersFile)
			if err != nil {
				return nil, "", err
			}
			if at != "" && at != target {
				fmt.Fprintf(out, "users file %s was written for %s; using it for %s\n", c.UsersFile, at, target)
			}
			return u, fmt.Sprintf("%d users from the users file %s", u.N, c.UsersFile), nil
		}
		u := SeededUsers(n)
		if err := checkSeeded(ctx, target, api, u); err != nil {
			return nil, "", err
		}
		return u, fmt.Sprintf("the lab's %d seeded users, already there (the first and the last were checked)", n), nil
	}
	return nil, "", invalidf("seed mode %q: want one of %s", c.SeedUsers, strings.Join(SeedModes(), ", "))
}

// checkSeeded checks that the first and the last of the lab's seeded users
// are there, so that a target without them fails now, with a hint, rather
// than with a run of 404s.
func checkSeeded(ctx context.Context, target, api string, u *Users) error {
	cl, err := loadgen.NewClient(target, 10*time.Second)
	if err != nil {
		return invalid{err}
	}
	defer context.AfterFunc(ctx, func() { cl.Close() })()
	defer cl.Close()
	for _, i := range []int{0, u.N - 1} {
		resp, err := cl.Do(&loadgen.Request{Path: api + "/" + u.ID(i), Expect: []int{200}})
		if err == nil {
			continue
		}
		if resp != nil && resp.Status == 404 {
			return invalidf("the target has no seeded user %d (%s %s/%s is 404): seed it with `scalelab seed --db … --users %d`, sign users up with --seed-users api, or give a --users-file", i, "GET", api, u.ID(i), u.N)
		}
		return fmt.Errorf("look for seeded user %d at %s: %w", i, target, err)
	}
	return nil
}

// CheckTarget checks a target URL and returns it without a trailing
// slash: http only (the load generator speaks plain HTTP/1.1), and a
// loopback host (127.0.0.0/8, ::1 or localhost) unless allowRemote, so
// that no one puts load on a machine by a slip of the keyboard.
func CheckTarget(raw string, allowRemote bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", invalidf("target %q: %w", raw, err)
	}
	if u.Scheme != "http" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", invalidf("target %q: want http://HOST:PORT[/PATH] (plain HTTP; no query, fragment or user)", raw)
	}
	if p := strings.TrimSuffix(u.Path, "/"); strings.HasSuffix(p, "/api/v1") || strings.HasSuffix(p, "/api/users") || strings.HasSuffix(p, "/api") {
		return "", invalidf("target %s: give the deployment's base URL, without the API's path (%s): the run adds it", raw, p)
	}
	host := u.Hostname()
	loopback := host == "localhost"
	if a, err := netip.ParseAddr(host); err == nil {
		loopback = a.IsLoopback()
	}
	if !loopback && !allowRemote {
		return "", invalidf("target %s is not a loopback address: pass --allow-remote to put load on another machine (one you may load-test)", raw)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// TargetAPI returns the user collection's path at target for api: "v1"
// is /api/v1/users, "users" /api/users; "" or "auto" asks the target,
// which serves one of them (a POST to /api/v1/auth/token is 404 only on
// a server of the unversioned API).
func TargetAPI(ctx context.Context, target, api string) (string, error) {
	switch api {
	case "v1":
		return "/api/v1/users", nil
	case "users":
		return "/api/users", nil
	case "", "auto":
	default:
		return "", invalidf("api %q: want v1, users or auto", api)
	}
	cl, err := loadgen.NewClient(target, 10*time.Second)
	if err != nil {
		return "", invalid{err}
	}
	defer context.AfterFunc(ctx, func() { cl.Close() })()
	defer cl.Close()
	cl.SetHeader("Content-Type", "application/json")
	resp, err := cl.Do(&loadgen.Request{Method: "POST", Path: "/api/v1/auth/token", Body: []byte(`{}`)})
	var re *loadgen.RequestError
	switch {
	case resp != nil && resp.Status == 404:
		return "/api/users", nil
	case resp != nil:
		return "/api/v1/users", nil
	case errors.As(err, &re) && re.Class == loadgen.ClassThrottled:
		return "/api/v1/users", nil
	}
	return "", fmt.Errorf("target %s does not answer: %w", target, err)
}

// targetNotes say what a reader of a run against a target must know.
func targetNotes(t *targetInput, res *reports.Result) []string {
	n := []string{
		fmt.Sprintf("Run against a deployment the lab did not start (%s): no topology was sampled, so this result has no cache hit rates, replica lag, load-balancer counts or per-component CPU. They were not measured, not zero: read them from the deployment's own monitoring.", t.url),
		fmt.Sprintf("The load generator ran on %s (%d cores); whether the target shared those cores is not known to the lab.", orUnknown(res.Machine.Hostname), res.Machine.Cores),
	}
	if t.users != "" {
		n = append(n, "Users: "+t.users+".")
	}
	switch {
	case t.generators > 1:
		n = append(n, fmt.Sprintf("Merged from %d load generators that split one run: counts summed, HDR histograms merged (every percentile is the merged histogram's; none is averaged), per-second series summed on wall-clock seconds.", t.generators))
	case t.shard.Split():
		n = append(n, fmt.Sprintf("Generator %s of a split run: it sent arrival n of the schedule when n mod %d = %d (1/%d of the offered rate), as its own share of the users. Its thresholds are the whole run's (a rate threshold fails on a share): judge them on the merge of the generators' results (scalelab merge).", t.shard, t.shard.Count, t.shard.Index, t.shard.Count))
	}
	return n
}

func orUnknown(s string) string {
	if s == "" {
		return "an unnamed host"
	}
	return s
}
