package lab

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
)

// Merge combines the results of load generators that split one run (`run
// --target … --shard i/N`, or `--generators N`) into the result of the
// whole run, exactly: the load generator's results (Result.Load, with
// every HDR histogram) are merged with loadgen.Result.Merge, so counts
// add up, every percentile is read off the merged histograms (never
// averaged), and the per-second series add up on wall-clock seconds; the
// scenario's thresholds are judged again on the merged figures. argv is
// the command line the merged result records.
//
// Every part must carry its load (Load): results of single runs, which do
// not, cannot be merged exactly and are refused, as are parts of
// different runs and a shard given twice.
func Merge(parts []*reports.Result, argv []string) (reports.Result, error) {
	var res reports.Result
	if len(parts) == 0 {
		return res, invalidf("merge: no results")
	}
	first := parts[0]
	var (
		load       loadgen.Result
		shards     []string
		count      int
		generators int
		hosts      []string
	)
	for i, p := range parts {
		name := fmt.Sprintf("result %d", i+1)
		if p.Shard != "" {
			name += " (shard " + p.Shard + ")"
		}
		if p.Load == nil {
			return res, invalidf("merge: %s has no load generator histograms: only results of run --shard (or of a merge) merge exactly", name)
		}
		if p.Scenario != first.Scenario || p.Target != first.Target || p.Executor != first.Executor {
			return res, invalidf("merge: %s ran %s (%s) against %s, result 1 ran %s (%s) against %s: not parts of one run",
				name, p.Scenario, p.Executor, p.Target, first.Scenario, first.Executor, first.Target)
		}
		if p.Shard != "" {
			sh, err := loadgen.ParseShard(p.Shard)
			if err != nil {
				return res, invalid{fmt.Errorf("merge: %s: %w", name, err)}
			}
			if count != 0 && sh.Count != count {
				return res, invalidf("merge: %s is a share of %d generators, an earlier result of %d", name, sh.Count, count)
			}
			if slices.Contains(shards, p.Shard) {
				return res, invalidf("merge: shard %s given twice: it would be counted twice", p.Shard)
			}
			count = sh.Count
			shards = append(shards, p.Shard)
		}
		generators += max(p.Generators, 1)
		if h := p.Machine.Hostname; !slices.Contains(hosts, h) {
			hosts = append(hosts, h)
		}
		load.Merge(p.Load)
	}

	ths := make([]scenarios.Threshold, 0, len(first.Thresholds))
	for _, t := range first.Thresholds {
		th, err := scenarios.ParseThreshold(t.Threshold)
		if err != nil {
			return res, fmt.Errorf("merge: threshold of result 1: %w", err)
		}
		ths = append(ths, th)
	}
	sc := &scenarios.Scenario{
		Name: first.Scenario, Description: first.ScenarioDescription, Users: int(first.Users),
		Warmup: time.Duration(first.WarmupS * float64(time.Second)), Thresholds: ths,
	}
	users := ""
	for _, n := range first.Notes {
		if s, ok := strings.CutPrefix(n, "Users: "); ok {
			users = strings.TrimSuffix(s, ".")
		}
	}
	res = buildResult(resultInput{
		phase: first.Phase, topology: first.Topology, scenario: sc, argv: argv, machine: first.Machine, load: &load,
		target: &targetInput{url: first.Target, generators: generators, users: users},
	})
	res.Executor, res.Keys = first.Executor, first.Keys
	res.Target, res.Generators, res.Load = first.Target, generators, &load
	if count > 0 && len(shards) < count {
		slices.Sort(shards)
		res.Notes = append(res.Notes, fmt.Sprintf("Only %d of the %d generators' results were merged (%s): the figures are that share of the run, not the whole.", len(shards), count, strings.Join(shards, ", ")))
	}
	if len(hosts) > 1 {
		res.Notes = append(res.Notes, fmt.Sprintf("The generators ran on %d machines (%s); the machine above is the first result's.", len(hosts), strings.Join(hosts, ", ")))
	}
	return res, nil
}
