package lab_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"scalelab/lab"
	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
	"scalelab/topologies/topotest"
)

// distance is read-heavy's mix at a rate that leaves the machine idle
// enough for p50 to show the path, not queueing.
const distance = `
name: distance
executor: {type: constant-arrival-rate, rate: 100}
duration: 4s
warmup: 2s
users: 2000
max_workers: 64
connections: 16
mix:
  - {op: get-user, weight: 95}
  - {op: update-user, weight: 5}
keys: {distribution: zipfian, theta: 0.99}
`

// upPhase3 brings phase 3 up under the network profile, seeded and warmed
// up, and takes it down when the test ends.
func upPhase3(t *testing.T, ctx context.Context, profile string, sc *scenarios.Scenario) (*lab.Session, error) {
	bin, err := topotest.Binary()
	if err != nil {
		return nil, err
	}
	def, err := lab.Phase(3)
	if err == nil {
		err = def.SetNetwork(profile)
	}
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "scalelab-lab-test-")
	if err == nil {
		err = os.Chmod(dir, 0o755) // searchable by the postgres user
	}
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	s, err := lab.Up(ctx, lab.Config{
		Definition: def, Scenario: sc, Binary: bin, TopologyDir: dir, Seed: 7,
		Argv: []string{"scalelab", "run", "--phase", "3", "--network", profile}, Logger: topotest.Logger(),
		FastPostgres: true, DieWithParent: true,
	})
	if err != nil {
		return nil, fmt.Errorf("phase 3 under %s: %w", profile, err)
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := s.Down(dctx); err != nil {
			t.Errorf("phase 3 under %s: %v", profile, err)
		}
	})
	if err := s.Seed(ctx); err != nil {
		return nil, fmt.Errorf("phase 3 under %s: %w", profile, err)
	}
	if err := s.WarmUp(ctx); err != nil {
		return nil, fmt.Errorf("phase 3 under %s: %w", profile, err)
	}
	return s, nil
}

func mustScenario(t *testing.T, yaml string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// p50 is the median latency of an operation in a result.
func p50(t *testing.T, res reports.Result, op string) float64 {
	t.Helper()
	i := slices.IndexFunc(res.Operations, func(o reports.Operation) bool { return o.Name == op })
	if i < 0 || res.Operations[i].Count == 0 {
		t.Fatalf("result has no %s operations: %+v", op, res.Operations)
	}
	return res.Operations[i].LatencyMS.P50
}

// Issue 11's done-when on phase 3, with one bring-up per profile: a read's
// p50 under datacenter is above none's, and above the proxied control's
// by about what the links a read crosses add (the report's arithmetic),
// and replica-partition passes
// with no error and no stale read while replica-1's lag rises during the
// cut and falls after it.
func TestNetworkPhase3(t *testing.T) {
	ctx := context.Background()
	sc := mustScenario(t, distance)
	// One after the other: two bring-ups at once on a shared 2-core
	// machine make both slower than one after the other.
	none, err := upPhase3(t, ctx, topologies.NetworkNone, sc)
	if err != nil {
		t.Fatal(err)
	}
	proxied, err := upPhase3(t, ctx, topologies.NetworkProxied, sc)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := upPhase3(t, ctx, topologies.NetworkDatacenter, sc)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("p50 rises by the hops a read makes", func(t *testing.T) {
		// Rounds alternate between the profiles, so that whatever else
		// the machine does weighs on all alike; each round's differences
		// count, and the median of them is the verdict.
		const rounds = 3
		var diffs, distance []float64
		var expected float64
		for i := range rounds {
			var p [3]float64
			for j, s := range []*lab.Session{none, proxied, dc} {
				m, err := s.MeasureRate(ctx, 100, 4*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				res := s.Result(ctx, m)
				if res.Totals.Errors != 0 {
					t.Fatalf("round %d, %s: %d errors", i, res.Network.Profile, res.Totals.Errors)
				}
				p[j] = p50(t, res, "get-user")
				if j == 2 {
					if res.Cache.L1HitRate == nil || res.Cache.L2HitRate == nil {
						t.Fatalf("datacenter run has no L1 or L2 hit rate (%+v): the arithmetic needs both", res.Cache)
					}
					e, ok := res.Network.MedianReadAddedMS(res.Cache)
					if !ok {
						t.Fatalf("datacenter result has no read path: %+v", res.Network)
					}
					expected = e
					checkTraffic(t, res.Network)
				}
			}
			diffs, distance = append(diffs, p[2]-p[0]), append(distance, p[2]-p[1])
			t.Logf("round %d: get-user p50 %.3f ms under none, %.3f ms proxied, %.3f ms under datacenter: +%.3f ms, of which the distance +%.3f ms (the median read's links add %.3f ms)",
				i, p[0], p[1], p[2], p[2]-p[0], p[2]-p[1], expected)
		}
		slices.Sort(diffs)
		slices.Sort(distance)
		got := diffs[len(diffs)/2]
		// The distance must show: at least a third of what the links add
		// (the median read crosses them on most rounds). What comes on top
		// is the proxies' own forwarding and CPU, which a loaded machine
		// stretches by whole milliseconds (seen: +4 ms for 1 ms of links
		// while the other packages' tests ran): logged, not judged here;
		// the published runs show the arithmetic.
		if got <= 0 || got < expected/3 {
			t.Errorf("datacenter p50 - none p50 = %.3f ms (median of %v), want positive and at least a third of the %.3f ms the links add", got, diffs, expected)
		}
		t.Logf("datacenter p50 - none p50 = %.3f ms, %.1f× the %.3f ms the links add (the rest: the proxies' forwarding)", got, got/expected, expected)
		// Against the control (the same proxies, no delay) the distance
		// alone shows, and it is about what the links add: the median
		// read's links, and a rate-limit check in Redis on the requests
		// no lease covers, so up to half as much again. One round's
		// difference has ranged from 0.65× to 2.5× of it on the 2-core
		// test machine: the margin is that machine's.
		dist := distance[len(distance)/2]
		if dist < expected/3 || dist > 3*expected {
			t.Errorf("datacenter p50 - proxied p50 = %.3f ms (median of %v), want about the %.3f ms the links add (%.3f to %.3f)", dist, distance, expected, expected/3, 3*expected)
		}
	})

	t.Run("replica-partition", func(t *testing.T) {
		sc, err := scenarios.LoadNamed("replica-partition")
		if err != nil {
			t.Fatal(err)
		}
		// The scenario as published, at a rate this shared machine keeps
		// up with, on the users seeded above.
		if err := sc.Apply(scenarios.Overrides{Rate: 100, Users: 2000}); err != nil {
			t.Fatal(err)
		}
		s, err := dc.WithScenario(sc)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.WarmUp(ctx); err != nil {
			t.Fatal(err)
		}
		m, err := s.Measure(ctx)
		if err != nil {
			t.Fatal(err)
		}
		res := s.Result(ctx, m)
		if len(res.Faults) != 1 || res.Faults[0].Error != "" {
			t.Fatalf("faults = %+v, want the partition injected", res.Faults)
		}
		fault := sc.Faults[0]
		cut, healed := int(fault.At/time.Second), int((fault.At+fault.For)/time.Second)
		// No stale read at all: that is correctness, whatever the machine
		// does. No error from the cut to a few seconds after the heal:
		// what the partition could cause. Outside that window a stall of
		// the shared test machine (seen: every app's Redis and replica
		// probes timing out together for seconds) can run a write past
		// its 2 s commit bound, answered 503 "retry it": logged, and held
		// to the scenario's own threshold.
		nearCut := errorsIn(res, cut, healed+5)
		if stale, raw := res.Counters["stale_reads"], res.Counters["reads_after_write"]; stale != 0 || raw == 0 || nearCut != 0 || !res.Passed() {
			t.Errorf("%d errors (%d from the cut to 5 s after the heal; %v), %d stale reads of %d reads after writes, thresholds %+v; want no stale read of some, no error around the cut, and the thresholds passed",
				res.Totals.Errors, nearCut, res.Totals.ErrorsByClass, stale, raw, res.Thresholds)
		} else if res.Totals.Errors != 0 {
			t.Logf("%d errors away from the cut (%v), within the scenario's thresholds", res.Totals.Errors, res.Totals.ErrorsByClass)
		}
		before, during, after := lagMS(t, res, "replica-1", 0, cut), lagMS(t, res, "replica-1", cut, healed), lagMS(t, res, "replica-1", healed+3, int(res.DurationS))
		t.Logf("replica-1 lag, largest per stretch: %.0f ms before the cut, %.0f ms during it, %.0f ms from 3 s after the heal", before, during, after)
		// The cut lasts seconds; the lag must reach a good part of that,
		// well above what it was before, and fall back after the heal.
		if during < 1000*fault.For.Seconds()/2 || during <= before || after >= during {
			t.Errorf("replica-1's lag: %.0f ms before the cut, %.0f ms during it, %.0f ms after; want it to rise during the %v cut and fall after", before, during, after, fault.For)
		}
	})
}

// errorsIn counts the operations' errors in seconds [from, to) of the run.
func errorsIn(res reports.Result, from, to int) int64 {
	var n int64
	for _, op := range res.Operations {
		for _, s := range op.Series {
			if s.T >= from && s.T < to {
				n += s.Errors
			}
		}
	}
	return n
}

// lagMS is the largest lag a replica's series shows in seconds [from, to).
func lagMS(t *testing.T, res reports.Result, replica string, from, to int) float64 {
	t.Helper()
	i := slices.IndexFunc(res.Replicas, func(r reports.Replica) bool { return r.Name == replica })
	if i < 0 {
		t.Fatalf("result has no replica %s: %+v", replica, res.Replicas)
	}
	var top float64
	n := 0
	for _, s := range res.Replicas[i].Series {
		if s.T >= from && s.T < to {
			top = max(top, s.LagMS)
			n++
		}
	}
	if n == 0 {
		t.Fatalf("%s's lag series has no second in [%d, %d): %s", replica, from, to, fmt.Sprint(res.Replicas[i].Series))
	}
	return top
}

// checkTraffic checks the proxies' counts on the one link whose round
// trips per request are known: each request crosses client->haproxy once,
// there and back.
func checkTraffic(t *testing.T, n *reports.Network) {
	t.Helper()
	i := slices.IndexFunc(n.Traffic, func(lt reports.LinkTraffic) bool { return lt.Link == "client->haproxy" })
	if i < 0 {
		t.Fatalf("no traffic counted on client->haproxy: %+v", n.Traffic)
	}
	// A request retried by the load generator on a fresh connection
	// crosses twice; a response split over two reads counts two chunks.
	if rt := n.Traffic[i].RoundTripsPerRequest; rt < 0.95 || rt > 1.1 {
		t.Errorf("client->haproxy: %.3f round trips per request, want about 1 (%+v)", rt, n.Traffic[i])
	}
	t.Logf("the proxies counted round trips adding %.3f ms to the mean request: %+v", n.AddedMSPerRequest, n.Traffic)
}
