package lab

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"scalelab/internal/burn"
	"scalelab/internal/pauses"
	"scalelab/internal/stats"
	"scalelab/loadgen"
	"scalelab/model"
	"scalelab/reports"
)

// boxMaxSteps bounds the bare server's search: it starts at 40% of the
// cores (its HTTP work on top of the set CPU makes that nearer 55%) and
// grows by a quarter, so four or five steps reach its knee and three
// bisect it, with room for retries.
const boxMaxSteps = 16

// boxPolicy is the bare server's search: the phase's policy (its
// precision, retries and pause rule), started at 40% of what the cores
// could serve at its cost per request and grown by 25% a step, so that it
// spends its steps near the knee rather than climbing to it from 250/s.
func boxPolicy(p SearchPolicy, perRequest float64) SearchPolicy {
	p.Start = roundSig3(0.4 * float64(p.Cores) / perRequest)
	p.Factor = 1.25
	p.Floor = p.Start / 8
	p.MaxSteps = min(p.MaxSteps, boxMaxSteps)
	return p
}

// searchBox is the machine's own ceiling: a capacity search, with the
// objective c.SLO (Capacity gives it the room the phase leaves: boxSLO)
// and the phase's load generator, of a bare server (scalelab
// burn-server, internal/burn) spending on every request what the phase's
// demands d add up to, the load generator's left out: in one process, or
// with c.BoxChain in one process per tier (boxPath; threads are the
// model's thread caps). c.Policy.Cores is the machine's (Capacity sets
// it). The box's KneeBusy is kneeBusy's.
func (s *Session) searchBox(ctx context.Context, c CapacityConfig, d model.Demands, threads map[string]int, probe *pauses.Watcher) (*reports.CapacityBox, error) {
	work := d.Total() - d[model.Loadgen]
	front, hops := microseconds(work), []burn.Hop(nil)
	if c.BoxChain {
		front, hops = boxPath(d, threads)
	}
	command := []string{s.cfg.Binary, "burn-server", "--listen", "127.0.0.1:0", "--work", front.String()}
	if len(hops) > 0 {
		command = append(command, "--hops", burn.FormatHops(hops))
	}
	srv, err := burn.Start(ctx, command, s.log)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	policy := boxPolicy(c.Policy, work+d[model.Loadgen])
	fmt.Fprintf(s.out, "the machine's own ceiling: a bare server spending %s of CPU per request, then %s, from %.0f/s\n", front, cmp.Or(burn.FormatHops(hops), "no hop"), policy.Start)
	measure := func(ctx context.Context, rate float64) (reports.CapacityStep, error) {
		return s.measureBox(ctx, srv.URL, rate, c)
	}
	steps, maxRate, err := s.search(ctx, c, policy, probe, measure)
	if err != nil {
		return nil, fmt.Errorf("the bare server's search: %w", err)
	}
	box := &reports.CapacityBox{SLO: c.SLO.String(), WorkUS: work * 1e6, MaxRate: maxRate, FrontUS: float64(front) / float64(time.Microsecond)}
	for _, h := range hops {
		box.Hops = append(box.Hops, reports.CapacityHop{Name: h.Name, WorkUS: float64(h.Work) / float64(time.Microsecond), Threads: h.Threads})
	}
	for _, st := range steps {
		box.Steps = append(box.Steps, st.Step)
	}
	box.KneeBusy = kneeBusy(steps, maxRate, policy.Cores)
	return box, nil
}

// kneeBusy is the median share of the cores busy over the attempts that
// passed at maxRate, the knee (the mean of the middle two for an even
// count); 0 when none did.
func kneeBusy(steps []SearchStep, maxRate float64, cores int) float64 {
	var knee []float64
	for _, st := range steps {
		if st.Pass && st.Step.Offered == maxRate {
			knee = append(knee, st.Step.BusyCores()/float64(cores))
		}
	}
	if len(knee) == 0 {
		return 0
	}
	return stats.Quantile(knee, 0.5)
}

// boxOp is the bare server's whole load: one GET.
func boxOp() loadgen.Op {
	return loadgen.Op{Name: "GET /", Weight: 1, Do: func(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
		_, err := c.Do(&loadgen.Request{Name: "GET /", Path: "/"})
		return err
	}}
}

// measureBox holds rate against the bare server at url for one step. The
// step's CPU is the whole machine's busy time (/proc/stat), under
// reports.BoxMachine.
func (s *Session) measureBox(ctx context.Context, url string, rate float64, c CapacityConfig) (reports.CapacityStep, error) {
	before, err := machineBusy()
	if err != nil {
		return reports.CapacityStep{}, err
	}
	lr, err := loadgen.Run(ctx, loadgen.Config{
		Target: url, Ops: []loadgen.Op{boxOp()}, Seed: s.cfg.Seed, Timeout: 10 * time.Second,
		Executor: loadgen.ConstantArrivalRate{Rate: rate, Duration: c.Step, Pool: stepPool(s.sc, rate, c.SLO)},
	})
	if err != nil {
		return reports.CapacityStep{}, fmt.Errorf("load the bare server at %.0f/s: %w", rate, err)
	}
	after, err := machineBusy()
	if err != nil {
		return reports.CapacityStep{}, err
	}
	st := loadStep(rate, lr)
	if lr.Total.Count > 0 {
		st.CPUUSPerRequest[reports.BoxMachine] = (after - before) / float64(lr.Total.Count) * 1e6
	}
	return st, nil
}

// pathRank ranks the tiers a request goes through, from the edge in: the
// CDN, the load balancer, the app, its caches, the pooler, the replicas
// and the primary. The bare server's hops follow that order.
func pathRank(name string) int {
	switch {
	case name == "varnish":
		return 0
	case name == "haproxy":
		return 1
	case name == "app":
		return 2
	case strings.HasPrefix(name, "redis"):
		return 3
	case name == "pgbouncer":
		return 4
	case name == "replica" || name == "replicas":
		return 5
	case name == "primary":
		return 6
	}
	return 3
}

// offPath says whether a component does its work beside the requests
// rather than on their way: the load generator (the client), Prometheus,
// the exporters it scrapes and the queue's workers (they run jobs after
// the request was answered).
func offPath(name string) bool {
	return name == model.Loadgen || name == "prometheus" || strings.HasSuffix(name, "-exporter") || tierOf(name) == "worker"
}

// boxPath shapes the bare server after the phase: one process per tier a
// request goes through, in pathRank's order, each spending its tier's demand
// (threads caps those that run fewer threads than the cores, as
// model.LabMachine says). The first tier is the HTTP server itself (front)
// and the rest its hops; what the components beside the path spend goes
// to the front, so the chain costs what the phase's tiers cost together.
// With no tier on the path, the front spends it all.
func boxPath(d model.Demands, threads map[string]int) (front time.Duration, hops []burn.Hop) {
	tiers := map[string]float64{}
	tierThreads := map[string]int{}
	var beside float64
	for name, v := range d {
		switch {
		case name == model.Loadgen:
		case offPath(name):
			beside += v
		case v > 0:
			t := tierOf(name)
			tiers[t] += v
			if n := threads[name]; n > 0 {
				tierThreads[t] += n
			}
		}
	}
	path := slices.Collect(maps.Keys(tiers))
	slices.SortFunc(path, func(a, b string) int { return cmp.Or(cmp.Compare(pathRank(a), pathRank(b)), cmp.Compare(a, b)) })
	if len(path) == 0 {
		return microseconds(beside), nil
	}
	front = microseconds(tiers[path[0]] + beside)
	for _, name := range path[1:] {
		hops = append(hops, burn.Hop{Name: name, Work: microseconds(tiers[name]), Threads: tierThreads[name]})
	}
	return front, hops
}

// microseconds is sec seconds as a duration, rounded to the microsecond:
// what the burn server's flags take of a demand.
func microseconds(sec float64) time.Duration {
	return time.Duration(math.Round(sec*1e6)) * time.Microsecond
}

// tierOf is the tier of a component: its name less an instance number
// ("app-2" is "app", "redis-master-0" "redis-master"). A request goes to
// one instance of a tier, so the chain has one hop per tier, spending
// what the tier's instances spend per request together.
func tierOf(name string) string {
	i := strings.LastIndex(name, "-")
	if n := name[i+1:]; i < 0 || n == "" || strings.Trim(n, "0123456789") != "" {
		return name
	}
	return name[:i]
}
