package topologies_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"scalelab/topologies"
)

// These tests share one phase-4 topology (phase4.Topology) and leave it
// as they found it.

func TestPhase4AnswersThroughVarnish(t *testing.T) {
	top := phase4.Topology(t)
	if top.EntryURL != top.VarnishURL {
		t.Errorf("EntryURL = %s, want Varnish's %s", top.EntryURL, top.VarnishURL)
	}
	resp := mustGet(t, top.EntryURL+"/healthz")
	if v := resp.Header.Get("Via"); !strings.Contains(strings.ToLower(v), "varnish") {
		t.Errorf("GET /healthz through the entry point: Via = %q, want varnish", v)
	}
	states, err := top.HAProxy().ServerStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range top.Apps() {
		if st := states[a.Name()]; st.Status != "UP" {
			t.Errorf("haproxy server %s: %+v, want UP", a.Name(), st)
		}
	}
	if got := len(top.RedisCluster().Nodes()); got != 6 {
		t.Errorf("redis cluster has %d nodes, want 6", got)
	}
	if got := len(top.Replicas()); got != 2 {
		t.Errorf("%d replicas, want 2", got)
	}
	if top.PgBouncer() == nil {
		t.Errorf("no pgbouncer")
	}
}

func TestPhase4ReplicasSeePrimaryWrites(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()
	primary := mustConnect(t, top.PrimaryURL)
	mustExec(t, primary, `CREATE TABLE IF NOT EXISTS topotest_visible (id int PRIMARY KEY, v text)`)
	v := fmt.Sprintf("written at %s", time.Now().Format(time.RFC3339Nano))
	mustExec(t, primary, `INSERT INTO topotest_visible VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET v = excluded.v`, v)
	for _, r := range top.Replicas() {
		conn := mustConnect(t, r.URL())
		deadline := time.Now().Add(5 * time.Second)
		for {
			var got string
			err := conn.QueryRow(ctx, `SELECT v FROM topotest_visible WHERE id = 1`).Scan(&got)
			if err == nil && got == v {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: SELECT v = %q, %v; want %q within 5s", r.Name(), got, err, v)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func TestPhase4ClusterStoresOnEveryMaster(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: top.RedisClusterAddrs})
	t.Cleanup(func() { c.Close() })
	var keys []string
	for i := range 200 {
		k := fmt.Sprintf("topotest:%d", i)
		if err := c.Set(ctx, k, i, time.Minute).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		keys = append(keys, k)
	}
	t.Cleanup(func() {
		for _, k := range keys {
			c.Del(ctx, k)
		}
	})
	for _, m := range top.RedisCluster().Masters {
		mc := redis.NewClient(&redis.Options{Addr: m.Addr()})
		n, err := mc.DBSize(ctx).Result()
		mc.Close()
		if err != nil || n == 0 {
			t.Errorf("%s DBSIZE = %d, %v; want > 0", m.Name(), n, err)
		}
	}
}

// A killed app instance leaves HAProxy's rotation, and requests keep
// succeeding meanwhile (a refused connection is retried elsewhere).
func TestPhase4KilledAppLeavesRotation(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()
	t.Cleanup(func() {
		if err := top.Inject(ctx, "app-2", topologies.FaultRestart); err != nil {
			t.Errorf("restart app-2: %v", err)
		}
		waitServer(t, top, "app-2", "UP")
	})
	if err := top.Inject(ctx, "app-2", topologies.FaultKill); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	start := time.Now()
	failed, total := 0, 0
	for time.Since(start) < 4*time.Second {
		total++
		resp, err := client.Get(top.HAProxyURL + "/healthz")
		if err != nil {
			failed++
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			failed++
		}
		if total > 20 && serverStatus(t, top, "app-2") != "UP" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if failed > 0 {
		t.Errorf("%d of %d requests through HAProxy failed after app-2 was killed, want 0", failed, total)
	}
	waitServer(t, top, "app-2", "DOWN")
	t.Logf("app-2 left the rotation %v after the kill", time.Since(start).Round(10*time.Millisecond))
}

// A paused replica falls behind while the primary takes writes, and the
// Sampler sees it, in lag and in write-to-visible delay; the other replica
// does not.
func TestPhase4PausedReplicaLags(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()
	s, err := topologies.StartSampler(ctx, top, topologies.SamplerOptions{Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	primary := mustConnect(t, top.PrimaryURL)
	mustExec(t, primary, `CREATE TABLE IF NOT EXISTS topotest_lag (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())`)
	if err := top.Inject(ctx, "replica-1", topologies.FaultPause); err != nil {
		t.Fatal(err)
	}
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			top.Inject(ctx, "replica-1", topologies.FaultResume)
		}
	})
	var lags []float64
	for range 12 {
		// Some thousands of rows a round, not one: the primary must do
		// work that /proc's 10 ms CPU ticks can see, or its CPU check
		// below depends on luck.
		mustExec(t, primary, `INSERT INTO topotest_lag (at) SELECT now() FROM generate_series(1, 2000)`)
		time.Sleep(200 * time.Millisecond)
		for _, r := range s.Latest() {
			if r.Name == "replica-1" {
				lags = append(lags, r.LagS)
			}
		}
	}
	if err := top.Inject(ctx, "replica-1", topologies.FaultResume); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if len(lags) < 5 || lags[len(lags)-1] <= lags[2] || lags[len(lags)-1] < 1 {
		t.Errorf("replica-1 lag while paused = %v, want it growing past 1s", lags)
	}
	m, err := s.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]topologies.ReplicaLag{}
	for _, r := range m.Replicas {
		byName[r.Name] = r
	}
	if r1 := byName["replica-1"]; r1.LagSMax < 1 || r1.BytesMax <= 0 {
		t.Errorf("replica-1 measured %+v, want max lag >= 1s and bytes behind > 0", r1)
	}
	if r2 := byName["replica-2"]; r2.Samples == 0 || r2.LagSMax >= 1 {
		t.Errorf("replica-2 measured %+v, want samples and max lag < 1s", r2)
	}
	// SIGSTOP leaves the probe's reads of replica-1 hanging until it
	// resumes.
	if r1 := byName["replica-1"]; r1.VisibleMSMax < 1000 && r1.VisibleTimeouts == 0 {
		t.Errorf("replica-1 write-to-visible max %v ms, %d timeouts; want >= 1000 ms or timeouts", r1.VisibleMSMax, r1.VisibleTimeouts)
	}
	if r2 := byName["replica-2"]; r2.VisibleProbes == 0 || r2.VisibleTimeouts > 0 || r2.VisibleMSP99 >= healthyVisibleMS {
		t.Errorf("replica-2 write-to-visible: %d probes, %d timeouts, p99 %v ms; want probes, no timeouts, p99 < %d ms", r2.VisibleProbes, r2.VisibleTimeouts, r2.VisibleMSP99, healthyVisibleMS)
	}
	if len(m.CPU) == 0 {
		t.Errorf("no CPU measurements")
	}
	for _, c := range m.CPU {
		if c.Name == "primary" && c.Seconds <= 0 {
			t.Errorf("primary used %v CPU seconds, want > 0", c.Seconds)
		}
	}
	t.Logf("measurements: %+v", m)
}

func TestPhase4FaultsByName(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()
	if err := top.Inject(ctx, "no-such-thing", topologies.FaultKill); err == nil {
		t.Errorf("Inject on an unknown component succeeded")
	}
	r := top.Redis()
	if err := top.Inject(ctx, "redis", topologies.FaultStop); err != nil {
		t.Fatal(err)
	}
	if listeningOn(r.Addr()) {
		t.Errorf("redis still listening after stop")
	}
	if err := top.Inject(ctx, "redis", topologies.FaultRestart); err != nil {
		t.Fatal(err)
	}
	if !listeningOn(r.Addr()) {
		t.Errorf("redis not listening after restart")
	}
	// A killed replica (postmaster and every backend) comes back streaming,
	// and the Sampler's probe goes on measuring the other one meanwhile.
	s, err := topologies.StartSampler(ctx, top, topologies.SamplerOptions{Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	replica := top.Replicas()[1]
	oldPID := replica.PID()
	if err := top.Inject(ctx, "replica-2", topologies.FaultKill); err != nil {
		t.Fatal(err)
	}
	if processExists(oldPID) || replica.PID() != 0 {
		t.Errorf("replica-2 pid %d still runs after kill", oldPID)
	}
	if err := top.Inject(ctx, "replica-2", topologies.FaultRestart); err != nil {
		t.Fatal(err)
	}
	var status string
	if err := mustConnect(t, replica.URL()).QueryRow(ctx, "SELECT status FROM pg_stat_wal_receiver").Scan(&status); err != nil || status != "streaming" {
		t.Errorf("replica-2 after restart: wal receiver %q, %v; want streaming", status, err)
	}
	m, err := s.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range m.Replicas {
		t.Logf("%s around the kill of replica-2: write-to-visible p50 %.3f ms, max %.3f ms over %d probes, %d timeouts", r.Name, r.VisibleMSP50, r.VisibleMSMax, r.VisibleProbes, r.VisibleTimeouts)
		if r.Name == "replica-1" && (r.VisibleProbes < 3 || r.VisibleTimeouts > 0) {
			t.Errorf("replica-1 while replica-2 was killed: %d probes, %d timeouts; want at least 3 probes, no timeouts", r.VisibleProbes, r.VisibleTimeouts)
		}
	}
	// The on-disk description follows the new PID.
	opened, err := topologies.Open(top.Dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := opened.Component("redis")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.PID(), r.PID(); got != want {
		t.Errorf("topology.json redis pid = %d, want %d", got, want)
	}
}

func serverStatus(t *testing.T, top *topologies.Topology, name string) string {
	t.Helper()
	states, err := top.HAProxy().ServerStates(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return states[name].Status
}

func waitServer(t *testing.T, top *topologies.Topology, name, status string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := serverStatus(t, top, name)
		if strings.HasPrefix(got, status) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("haproxy server %s is %q, want %s within 10s", name, got, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustConnect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, conn *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// The Sampler counts the requests HAProxy sent to each instance and the
// CDN tier's lookups.
func TestPhase4SamplerCountsTraffic(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()
	s, err := topologies.StartSampler(ctx, top, topologies.SamplerOptions{Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 30
	for range n {
		mustGet(t, top.EntryURL+"/healthz")
		mustGet(t, top.HAProxyURL+"/healthz")
		time.Sleep(40 * time.Millisecond) // spread over several intervals
	}
	m, err := s.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Problems) > 0 {
		t.Errorf("Problems = %q, want none", m.Problems)
	}
	var sum uint64
	for _, b := range m.Backends {
		sum += b.Requests
	}
	if len(m.Backends) != 3 || sum < 2*n {
		t.Errorf("Backends = %+v, want 3 servers sharing at least %d requests", m.Backends, 2*n)
	}
	if l3 := m.Cache.L3; l3 == nil || l3.Hits+l3.Misses < n {
		t.Errorf("Cache.L3 = %+v, want at least %d lookups", l3, n)
	}
	if m.Cache.L1 == nil {
		t.Errorf("Cache.L1 = nil, want the apps' L1 counters")
	}
	// The series over time add up to the totals: every interval's
	// readings succeeded, and they telescope.
	var l3 topologies.CacheTier
	withL3 := 0
	for _, iv := range m.CacheSeries {
		if iv.L3 != nil {
			l3.Hits += iv.L3.Hits
			l3.Misses += iv.L3.Misses
			if iv.L3.Hits+iv.L3.Misses > 0 {
				withL3++
			}
		}
	}
	if m.Cache.L3 != nil && l3 != *m.Cache.L3 {
		t.Errorf("CacheSeries' L3 lookups add up to %+v, want the total %+v", l3, *m.Cache.L3)
	}
	if withL3 < 3 {
		t.Errorf("%d of %d CacheSeries intervals saw L3 lookups, want traffic in at least 3 (1.2 s at 200 ms)", withL3, len(m.CacheSeries))
	}
	for _, r := range m.Replicas {
		if len(r.Lag) < 3 || len(r.Visible) == 0 {
			t.Errorf("%s: %d lag samples and %d seconds of write-to-visible, want several and some", r.Name, len(r.Lag), len(r.Visible))
		}
	}
	// Every app's pool to the primary (through PgBouncer), read through
	// Prometheus, with its size and the connections in use sampled.
	primaries := map[string]bool{}
	for _, p := range m.Pools {
		if p.Store == "postgres" && p.Pool == "primary" && p.MaxOpen >= 1 && p.Samples > 0 && p.InUseMax <= p.MaxOpen {
			primaries[p.Component] = true
		}
	}
	if len(primaries) != 3 {
		t.Errorf("Pools = %+v, want each of the 3 apps' primary pool, sized and sampled", m.Pools)
	}
	t.Logf("backends %+v, L1 %+v, L3 %+v, %d cache intervals, pools %+v", m.Backends, m.Cache.L1, m.Cache.L3, len(m.CacheSeries), m.Pools)
}

// A user signed up through the entry point (Varnish, HAProxy, an app,
// pgbouncer, the primary) can be read from every app instance.
func TestPhase4SignUpThroughEntryPoint(t *testing.T) {
	top := phase4.Topology(t)
	body := fmt.Sprintf(`{"email":"topotest-%d@example.com","username":"topotest_%d","password":"correct horse battery"}`, time.Now().UnixNano(), time.Now().UnixNano())
	resp, err := http.Post(top.EntryURL+top.API+"/users", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST %s/users = %s %s, want 201", top.API, resp.Status, b)
	}
	var u struct{ ID string }
	if err := json.Unmarshal(b, &u); err != nil || u.ID == "" {
		t.Fatalf("POST %s/users body %s: %v", top.API, b, err)
	}
	// Another instance may read from a replica a few milliseconds behind.
	for _, a := range top.AppURLs {
		url := a + top.API + "/users/" + u.ID
		deadline := time.Now().Add(3 * time.Second)
		for {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s = %v, %v; want 200 within 3s", url, resp, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}
