package lab_test

import (
	"context"
	"io"
	"testing"

	"scalelab/lab"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies/topotest"
)

// The fault scenarios of issue 16 (primary pause, replica pause, app kill,
// Redis kill) each run once on one shared phase-3 topology, about 25 s
// each: no anonymous read may fail, and the consistency check of every
// run must find nothing (no lost or late write, no read-your-writes or
// monotonic-read violation, every written user readable afterwards).
func TestFaultScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("brings up phase 3 and runs four scenarios of 20 s")
	}
	bin, err := topotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	def, err := lab.Phase(3)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"replica-pause", "primary-pause", "app-kill", "redis-kill"}
	scs := make([]*scenarios.Scenario, len(names))
	for i, n := range names {
		if scs[i], err = scenarios.LoadNamed(n); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	s, err := lab.Up(ctx, lab.Config{
		Definition: def, Scenario: scs[0], Binary: bin, TopologyDir: searchableTempDir(t), Seed: 16,
		Argv: []string{"scalelab", "test"}, Stdout: io.Discard, Logger: topotest.Logger(),
		// Durable commits, as scalelab run has them: with fsync and
		// synchronous_commit off, a commit reaches the replicas only when
		// the WAL writer wakes (up to 200 ms later), and a user whose
		// acknowledged write the paused primary never shipped gets 503s
		// (docs/consistency.md), which this test would count as failed
		// reads of the pause itself.
		DieWithParent: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Down(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if err := s.Seed(ctx); err != nil {
		t.Fatal(err)
	}
	for i, sc := range scs {
		ok := t.Run(sc.Name, func(t *testing.T) {
			if i > 0 {
				if err := s.Use(sc); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.WarmUp(ctx); err != nil {
				t.Fatal(err)
			}
			m, err := s.Measure(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res := s.Result(ctx, m)
			for _, f := range res.Faults {
				if f.Error != "" {
					t.Fatalf("fault %s at %.1fs failed: %s", f.Fault, f.AtS, f.Error)
				}
			}
			t.Logf("%d requests, %d errors by class %v, %d dropped", res.Totals.Requests, res.Totals.Errors, res.Totals.ErrorsByClass, res.Totals.Dropped)
			for _, th := range res.Thresholds {
				t.Logf("threshold %s: pass %v (observed %v)", th.Threshold, th.Pass, deref(th.Observed))
			}
			for _, op := range res.Operations {
				t.Logf("%s: %d, %d errors", op.Name, op.Count, op.Errors)
				// While a paused primary is being detected (about 1 s)
				// writes hang until their deadline, holding admission
				// slots; the slots kept for reads let the reads through.
				if op.Name == string(scenarios.OpGetUser) && op.Errors > 0 {
					t.Errorf("%d of %d anonymous reads failed, want 0", op.Errors, op.Count)
				}
			}
			checkBreakers(t, sc.Name, res.Breakers)
			k := res.Consistency
			if k == nil {
				t.Fatal("the result has no consistency section")
			}
			t.Logf("consistency: %+v", *k)
			if k.Writes == 0 || k.OwnReads == 0 || k.AnonymousReads == 0 || k.FinalReads == 0 {
				t.Errorf("consistency checked %d writes, %d own and %d anonymous reads, %d final reads; want some of each",
					k.Writes, k.OwnReads, k.AnonymousReads, k.FinalReads)
			}
			if k.FailedReads > 0 {
				t.Errorf("consistency: %d reads failed, want 0", k.FailedReads)
			}
			if k.LostWrites+k.LateOverwrites+k.ReadYourWrites+k.Monotonic+k.FinalReadFailures != 0 {
				t.Errorf("consistency: %d lost writes, %d late overwrites, %d read-your-writes and %d monotonic violations, %d failed final reads; want 0 (%v)",
					k.LostWrites, k.LateOverwrites, k.ReadYourWrites, k.Monotonic, k.FinalReadFailures, k.Examples)
			}
		})
		if !ok && i < len(scs)-1 {
			t.Logf("%s failed; the next scenarios still run on the same topology", sc.Name)
		}
	}
}

// checkBreakers requires the breakers' changes in the result and no
// flapping: at most two closed → open changes per instance and breaker in
// a run with one fault (a breaker that closes on one success, as before
// issue 16, made hundreds). When Redis is killed, the L2 breaker must
// have opened.
func checkBreakers(t *testing.T, scenario string, b *reports.Breakers) {
	t.Helper()
	if b == nil {
		t.Error("the result has no breakers section")
		return
	}
	t.Logf("breakers: %+v", b.Transitions)
	opened := false
	for _, tr := range b.Transitions {
		if tr.From != "closed" || tr.To != "open" {
			continue
		}
		opened = opened || tr.Breaker == "l2"
		if tr.Count > 2*int64(tr.Instances) {
			t.Errorf("breaker %s opened %d times over %d instances; want at most 2 each (flapping)", tr.Breaker, tr.Count, tr.Instances)
		}
	}
	if scenario == "redis-kill" && !opened {
		t.Errorf("Redis was killed but no L2 breaker opened: %+v", b.Transitions)
	}
}

func deref(p *float64) any {
	if p == nil {
		return "no data"
	}
	return *p
}
