package topologies_test

import (
	"context"
	"testing"
	"time"

	"scalelab/topologies"
)

// healthyVisibleMS bounds the write-to-visible p99 of a healthy replica in
// the tests' topologies. They run Postgres with synchronous_commit off
// (topotest's FastPostgres), so a commit's WAL reaches the replicas only
// when the WAL writer flushes it, every 200 ms (wal_writer_delay): delays
// are up to about 200 ms there, where a durable topology shows a few
// milliseconds. The bound leaves room for a busy 2-core machine and stays
// well below what a paused replica shows.
const healthyVisibleMS = 1000

// The Sampler's probe times how long a write to the primary takes to be
// visible on each replica: small when they are healthy; with replay paused
// on one of them, its probes wait until they time out while the other's
// stay small, and Stop does not wait for them.
func TestPhase4VisibilityProbe(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()

	t.Run("healthy", func(t *testing.T) {
		s, err := topologies.StartSampler(ctx, top, topologies.SamplerOptions{Interval: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		// Ten intervals: a probe may wait for the WAL writer's 200 ms, and
		// a busy machine delays the ticker (seen: 4 probes in 1 s).
		time.Sleep(2 * time.Second)
		m, err := s.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Replicas) != 2 {
			t.Fatalf("Replicas = %+v, want 2", m.Replicas)
		}
		for _, r := range m.Replicas {
			t.Logf("%s: write-to-visible p50 %.3f ms, p99 %.3f ms, max %.3f ms over %d probes", r.Name, r.VisibleMSP50, r.VisibleMSP99, r.VisibleMSMax, r.VisibleProbes)
			if r.VisibleProbes < 5 || r.VisibleTimeouts != 0 || r.VisibleMSP99 <= 0 || r.VisibleMSP99 >= healthyVisibleMS {
				t.Errorf("%s: %d probes, %d timeouts, p99 %v ms; want at least 5 probes, no timeouts, 0 < p99 < %d ms", r.Name, r.VisibleProbes, r.VisibleTimeouts, r.VisibleMSP99, healthyVisibleMS)
			}
			if r.VisibleMSP50 > r.VisibleMSP99 || r.VisibleMSP99 > r.VisibleMSMax {
				t.Errorf("%s: p50 %v, p99 %v, max %v ms; want them in order", r.Name, r.VisibleMSP50, r.VisibleMSP99, r.VisibleMSMax)
			}
		}
	})

	t.Run("replay paused", func(t *testing.T) {
		const timeout = time.Second
		s, err := topologies.StartSampler(ctx, top, topologies.SamplerOptions{Interval: 200 * time.Millisecond, ProbeTimeout: timeout})
		if err != nil {
			t.Fatal(err)
		}
		replica := mustConnect(t, top.Replicas()[0].URL())
		mustExec(t, replica, `SELECT pg_wal_replay_pause()`)
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				mustExec(t, replica, `SELECT pg_wal_replay_resume()`)
			}
		}
		t.Cleanup(resume)
		time.Sleep(1500 * time.Millisecond)
		// Stop while replay is still paused: the paused replica's probes
		// are pending, and Stop must not wait for them. Stop waits for
		// Prometheus' next scrape (1s) anyway.
		start := time.Now()
		m, err := s.Stop(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Stop took %v with replay paused, want under 3s", took)
		}
		resume()
		byName := map[string]topologies.ReplicaLag{}
		for _, r := range m.Replicas {
			byName[r.Name] = r
			t.Logf("%s: write-to-visible p50 %.3f ms, p99 %.3f ms, max %.3f ms over %d probes, %d timeouts", r.Name, r.VisibleMSP50, r.VisibleMSP99, r.VisibleMSMax, r.VisibleProbes, r.VisibleTimeouts)
		}
		if r1 := byName["replica-1"]; r1.VisibleTimeouts == 0 || r1.VisibleMSMax < 1000 {
			t.Errorf("replica-1 (replay paused 1.5s): %d timeouts, max %v ms; want timeouts and max >= 1000 ms", r1.VisibleTimeouts, r1.VisibleMSMax)
		}
		if r2 := byName["replica-2"]; r2.VisibleProbes < 5 || r2.VisibleTimeouts != 0 || r2.VisibleMSP99 >= healthyVisibleMS {
			t.Errorf("replica-2 (healthy): %d probes, %d timeouts, p99 %v ms; want at least 5 probes, no timeouts, p99 < %d ms", r2.VisibleProbes, r2.VisibleTimeouts, r2.VisibleMSP99, healthyVisibleMS)
		}
	})
}
