package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"scalelab/internal/pgserver"
	"scalelab/internal/pgserver/pgtest"
	"scalelab/server"
	"scalelab/server/postgres"
	"scalelab/server/storetest"
)

// cluster is a primary with two streaming replicas, made once by
// TestReplicas and shared by its subtests (which therefore run one after
// the other: some pause or stop replicas). Each subtest uses a database of
// its own on it.
type cluster struct {
	primary  *pgserver.Server
	replicas []*pgserver.Server
}

// clusterConf keeps the servers small; synchronous_commit = on (which
// NoSync turns off) gives the replication delays of a real deployment: an
// asynchronous commit reaches the replicas only when the WAL writer wakes,
// up to 200 ms later. ReadYourWritesAsyncCommit turns it off again for its
// own database.
var clusterConf = []string{
	"shared_buffers = 32MB",
	"max_connections = 100",
	"log_min_messages = warning",
	"synchronous_commit = on",
}

// startCluster starts a primary and two replicas for tb, stopped when tb
// ends. It takes about two seconds.
func startCluster(tb testing.TB) *cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary, err := pgserver.Init(ctx, pgserver.Options{Dir: pgtest.Dir(tb), Conf: clusterConf, NoSync: true})
	if err != nil {
		tb.Fatal(err)
	}
	stopOnCleanup(tb, primary)
	if err := primary.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	c := &cluster{primary: primary, replicas: make([]*pgserver.Server, 2)}
	errs := make([]error, len(c.replicas))
	dirs := []string{pgtest.Dir(tb), pgtest.Dir(tb)}
	var wg sync.WaitGroup
	for i := range c.replicas {
		wg.Go(func() {
			r, err := primary.NewReplica(ctx, fmt.Sprintf("replica%d", i+1), pgserver.Options{Dir: dirs[i], NoSync: true})
			if err == nil {
				c.replicas[i] = r
				if err = r.Start(ctx); err == nil {
					err = r.WaitStreaming(ctx)
				}
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, r := range c.replicas {
		if r != nil {
			stopOnCleanup(tb, r)
		}
		if errs[i] != nil {
			tb.Fatal(errs[i])
		}
	}
	return c
}

func stopOnCleanup(tb testing.TB, srv *pgserver.Server) {
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("end of %s:\n%s", srv.LogFile(), srv.LogTail(2048))
		}
		if err := srv.Stop(context.Background()); err != nil {
			tb.Error(err)
		}
	})
}

// database creates a fresh database for tb and returns its URL on the
// primary and on each replica.
func (c *cluster) database(tb testing.TB) (primary string, replicas []string) {
	tb.Helper()
	primary = pgtest.NewDatabase(tb, c.primary)
	u, err := url.Parse(primary)
	if err != nil {
		tb.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	for _, r := range c.replicas {
		replicas = append(replicas, r.URL(name))
	}
	return primary, replicas
}

// open opens a store on a fresh database with both replicas, and waits
// until they have replayed its schema.
func (c *cluster) open(tb testing.TB, opts postgres.Options) *postgres.DB {
	tb.Helper()
	url, replicas := c.database(tb)
	return c.openURL(tb, url, replicas, opts)
}

func (c *cluster) openURL(tb testing.TB, url string, replicas []string, opts postgres.Options) *postgres.DB {
	tb.Helper()
	opts.Replicas = replicas
	if opts.ReplicaCheckInterval == 0 {
		opts.ReplicaCheckInterval = 20 * time.Millisecond
	}
	db := mustOpenURL(tb, url, opts)
	waitCaughtUp(tb, db)
	return db
}

// waitCaughtUp waits until every replica is healthy and has replayed what
// the primary had written when it was last probed.
func waitCaughtUp(tb testing.TB, db *postgres.DB) {
	tb.Helper()
	waitFor(tb, 10*time.Second, "every replica healthy and caught up", func() bool {
		for _, r := range db.Replicas() {
			if !r.Healthy || r.LagBytes != 0 {
				return false
			}
		}
		return true
	})
}

func waitFor(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dbName returns the database name in url.
func dbName(tb testing.TB, url string) string {
	tb.Helper()
	name := url[strings.LastIndexByte(url, '/')+1:]
	name, _, _ = strings.Cut(name, "?")
	return name
}

// exec runs sql on srv's database of url (a replica's, say).
func exec(tb testing.TB, srv *pgserver.Server, url, sql string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := srv.Connect(ctx, dbName(tb, url))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		tb.Fatalf("%s on %s: %v", sql, srv.Dir(), err)
	}
}

// pauseReplay pauses WAL replay on replica i until resume is called or tb
// ends.
func (c *cluster) pauseReplay(tb testing.TB, i int) (resume func()) {
	tb.Helper()
	srv := c.replicas[i]
	exec(tb, srv, srv.URL("postgres"), "SELECT pg_wal_replay_pause()")
	var once sync.Once
	resume = func() {
		once.Do(func() { exec(tb, srv, srv.URL("postgres"), "SELECT pg_wal_replay_resume()") })
	}
	tb.Cleanup(resume)
	return resume
}

// counts reads the routing counters from reg: "primary", "replica-1",
// "replica-2" (operations served), "fallback:REASON" and
// "check:REPLICA:RESULT".
func counts(tb testing.TB, reg prometheus.Gatherer) map[string]float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatalf("Gather() = %v", err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			switch f.GetName() {
			case "scalelab_db_queries_total":
				key := l["role"]
				if key == "replica" {
					key = l["replica"]
				}
				got[key] = m.GetCounter().GetValue()
			case "scalelab_db_replica_fallbacks_total":
				got["fallback:"+l["reason"]] = m.GetCounter().GetValue()
			case "scalelab_db_replica_position_checks_total":
				got["check:"+l["replica"]+":"+l["result"]] = m.GetCounter().GetValue()
			case "scalelab_db_replica_lag_seconds", "scalelab_db_replica_lag_bytes",
				"scalelab_db_replica_healthy", "scalelab_db_replica_usable", "scalelab_db_replica_replay_paused":
				got[strings.TrimPrefix(f.GetName(), "scalelab_db_replica_")+":"+l["replica"]] = m.GetGauge().GetValue()
			case "scalelab_db_query_duration_seconds":
				got["duration:"+l["op"]+":"+l["role"]] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return got
}

// delta returns after[k] - before[k] for every key of after.
func delta(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

func mustCreate(tb testing.TB, db *postgres.DB, name string) *server.User {
	tb.Helper()
	u := &server.User{Email: name + "@example.com", Username: name, PasswordHash: "h", Profile: server.Profile{Name: name}}
	if err := db.CreateUser(tb.Context(), u); err != nil {
		tb.Fatalf("CreateUser(%s) = %v", name, err)
	}
	return u
}

// TestReplicas runs the routing tests against one primary with two real
// streaming replicas, started once for all of them.
func TestReplicas(t *testing.T) {
	c := startCluster(t)
	for _, tt := range []struct {
		name string
		fn   func(t *testing.T, c *cluster)
	}{
		{"RoutesReadsToReplicas", testRoutesReadsToReplicas},
		{"PausedReplicaLags", testPausedReplicaLags},
		{"ReadYourWrites", testReadYourWrites},
		{"ReadYourWritesAsyncCommit", testReadYourWritesAsyncCommit},
		{"PaginationOverLaggingReplicas", testPaginationOverLaggingReplicas},
		{"StoppedReplica", testStoppedReplica},
		{"NotAReplica", testNotAReplica},
		{"Store", testStoreWithReplicas},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, c) })
	}
}

// Plain reads go round robin to healthy replicas and never to the
// primary; WithPrimary forces the primary; writes go to the primary.
func testRoutesReadsToReplicas(t *testing.T, c *cluster) {
	reg := prometheus.NewPedanticRegistry()
	db := c.open(t, postgres.Options{Registerer: reg})
	u := mustCreate(t, db, "ada")
	waitCaughtUp(t, db)
	before := counts(t, reg)
	const n = 100
	for range n {
		got, err := db.User(t.Context(), u.ID)
		if err != nil || got.Username != "ada" {
			t.Fatalf("User(%s) = %+v, %v, want ada", u.ID, got, err)
		}
	}
	d := delta(before, counts(t, reg))
	if d["primary"] != 0 || d["replica-1"]+d["replica-2"] != n || d["replica-1"] < n/4 || d["replica-2"] < n/4 {
		t.Errorf("%d plain reads served by %v, want all by the replicas, shared", n, d)
	}
	if d["duration:user:replica"] != n {
		t.Errorf("query duration count for op=user role=replica grew by %v, want %d", d["duration:user:replica"], n)
	}

	before = counts(t, reg)
	if _, err := db.User(server.WithPrimary(t.Context()), u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateUser(t.Context(), u.ID, server.UserUpdate{Name: new(string)}); err != nil {
		t.Fatal(err)
	}
	d = delta(before, counts(t, reg))
	if d["primary"] != 2 || d["fallback:forced"] != 1 || d["replica-1"]+d["replica-2"] != 0 {
		t.Errorf("a WithPrimary read and a write served by %v, want both by the primary, one forced fallback", d)
	}
	for _, s := range db.Replicas() {
		if !s.Healthy || !s.Usable || s.Paused || s.Err != nil || s.Replay == 0 || s.SampledAt.IsZero() {
			t.Errorf("Replicas() has %+v, want healthy, usable, a replay position", s)
		}
	}
}

// A replica whose replay is paused shows a growing lag while the primary
// takes writes, and stops getting plain reads once over the bound; it gets
// them again after it catches up.
func testPausedReplicaLags(t *testing.T, c *cluster) {
	const bound = 300 * time.Millisecond
	reg := prometheus.NewPedanticRegistry()
	db := c.open(t, postgres.Options{Registerer: reg, MaxReplicaLag: bound})
	u := mustCreate(t, db, "ada")
	waitCaughtUp(t, db)

	resume := c.pauseReplay(t, 0)
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() { // a steady trickle of writes
		for i := 0; ctx.Err() == nil; i++ {
			name := fmt.Sprint(i)
			db.UpdateUser(ctx, u.ID, server.UserUpdate{Name: &name})
			time.Sleep(5 * time.Millisecond)
		}
	})
	var lags []time.Duration
	waitFor(t, 5*time.Second, "replica-1 to lag beyond the bound", func() bool {
		s := db.Replicas()[0]
		if len(lags) == 0 || s.Lag != lags[len(lags)-1] {
			lags = append(lags, s.Lag)
		}
		return !s.Usable
	})
	s := db.Replicas()
	if !s[0].Paused || !s[0].Healthy || s[0].Lag <= bound || s[0].LagBytes <= 0 {
		t.Errorf("paused replica-1: %+v, want healthy, paused, lag over %v, bytes behind", s[0], bound)
	}
	if !s[1].Healthy || s[1].Paused {
		t.Errorf("streaming replica-2: %+v, want healthy, not paused", s[1])
	}
	if len(lags) < 3 || lags[len(lags)-1] <= lags[1] {
		t.Errorf("replica-1 lags seen while paused %v, want a growing series", lags)
	}
	t.Logf("replica-1 lags seen while paused: %v", lags)
	m := counts(t, reg)
	if m["lag_seconds:replica-1"] <= bound.Seconds() || m["lag_bytes:replica-1"] <= 0 || m["replay_paused:replica-1"] != 1 ||
		m["usable:replica-1"] != 0 || m["healthy:replica-1"] != 1 || m["replay_paused:replica-2"] != 0 {
		t.Errorf("replica gauges %v, want replica-1 healthy, paused, lagging over %v, unusable; replica-2 not paused", m, bound)
	}

	before := counts(t, reg)
	const n = 50
	for range n {
		if _, err := db.User(t.Context(), u.ID); err != nil {
			t.Fatal(err)
		}
	}
	// Replica-2 streams, but on a busy machine it too may lag past the
	// bound for a moment; then the primary serves.
	d := delta(before, counts(t, reg))
	if d["replica-1"] != 0 || d["replica-2"] == 0 || d["duration:user:replica"]+d["duration:user:primary"] != n {
		t.Errorf("%d plain reads with replica-1 over the bound served by %v, want none by replica-1, most by replica-2", n, d)
	}

	resume()
	waitFor(t, 5*time.Second, "replica-1 usable again", func() bool { return db.Replicas()[0].Usable })
	before = counts(t, reg)
	for range n {
		if _, err := db.User(t.Context(), u.ID); err != nil {
			t.Fatal(err)
		}
	}
	if d := delta(before, counts(t, reg)); d["replica-1"] == 0 {
		t.Errorf("%d plain reads after replica-1 caught up served by %v, want some by replica-1", n, d)
	}
}

// A write's position, carried as text to another app instance, makes that
// instance's read return the new value while every replica lags (from the
// primary), and from a replica once it has caught up.
func testReadYourWrites(t *testing.T, c *cluster) {
	url, replicas := c.database(t)
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := c.openURL(t, url, replicas, postgres.Options{Registerer: regA})
	b := c.openURL(t, url, replicas, postgres.Options{Registerer: regB})
	u := mustCreate(t, a, "ada")
	waitCaughtUp(t, b)

	var resume []func()
	for i := range c.replicas {
		resume = append(resume, c.pauseReplay(t, i))
	}
	name := "Ada Lovelace"
	ctx, rec := server.WithPositionRecorder(t.Context())
	if _, err := a.UpdateUser(ctx, u.ID, server.UserUpdate{Name: &name}); err != nil {
		t.Fatal(err)
	}
	token := rec.Position().String() // what the client carries
	if rec.Position() == 0 {
		t.Fatalf("UpdateUser recorded position %s, want one", token)
	}

	// Without the position, instance B reads a replica, which lags.
	before := counts(t, regB)
	if got, err := b.User(t.Context(), u.ID); err != nil || got.Profile.Name != "ada" {
		t.Errorf("plain User() while replicas lag = %+v, %v, want the old name from a replica (the test needs lagging replicas)", got, err)
	}
	pos, err := server.ParsePosition(token)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.User(server.WithMinPosition(t.Context(), pos), u.ID)
	if err != nil || got.Profile.Name != name {
		t.Errorf("User(position %s) while replicas lag = %+v, %v, want name %q", token, got, err, name)
	}
	d := delta(before, counts(t, regB))
	if d["primary"] != 1 || d["fallback:position"] != 1 {
		t.Errorf("reads served by %v, want the positioned one by the primary (fallback: position)", d)
	}

	for _, r := range resume {
		r()
	}
	before = counts(t, regB)
	waitFor(t, 5*time.Second, "a replica to serve the positioned read", func() bool {
		got, err := b.User(server.WithMinPosition(t.Context(), pos), u.ID)
		if err != nil || got.Profile.Name != name {
			t.Fatalf("User(position %s) = %+v, %v, want name %q", token, got, err, name)
		}
		d := delta(before, counts(t, regB))
		return d["replica-1"]+d["replica-2"] > 0
	})
	for _, s := range b.Replicas() {
		if s.Replay < pos {
			continue
		}
		t.Logf("%s replayed %s >= the write's %s", s.Name, s.Replay, pos)
	}
}

// The same across two instances in a loop, with asynchronous commit on the
// primary (the database's setting): a write's commit then reaches the WAL
// and the replicas only when the WAL writer wakes, which is where a
// position taken from pg_current_wal_lsn() instead of the insert position
// would let a replica serve a read too early.
func testReadYourWritesAsyncCommit(t *testing.T, c *cluster) {
	url, replicas := c.database(t)
	exec(t, c.primary, url, "ALTER DATABASE "+dbName(t, url)+" SET synchronous_commit = off")
	regB := prometheus.NewRegistry()
	a := c.openURL(t, url, replicas, postgres.Options{})
	b := c.openURL(t, url, replicas, postgres.Options{Registerer: regB})
	u := mustCreate(t, a, "ada")
	waitCaughtUp(t, b)
	before := counts(t, regB)
	const n = 50
	reads := 0
	for i := range n {
		name := fmt.Sprint("name-", i)
		ctx, rec := server.WithPositionRecorder(t.Context())
		if _, err := a.UpdateUser(ctx, u.ID, server.UserUpdate{Name: &name}); err != nil {
			t.Fatal(err)
		}
		// Every tenth write, read until a replica serves the read (the WAL
		// writer runs every 200 ms); the others read once, right away.
		for start := time.Now(); ; time.Sleep(time.Millisecond) {
			from := counts(t, regB)
			got, err := b.User(server.WithMinPosition(t.Context(), rec.Position()), u.ID)
			reads++
			if err != nil || got.Profile.Name != name {
				t.Fatalf("write %d: User(position %s) = %+v, %v, want name %q", i, rec.Position(), got, err, name)
			}
			d := delta(from, counts(t, regB))
			if i%10 != 0 || d["replica-1"]+d["replica-2"] > 0 {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("write %d: no replica served a read with its position within 2s", i)
			}
		}
	}
	d := delta(before, counts(t, regB))
	t.Logf("%d reads with the position of a write on another instance: %v", reads, d)
	if d["primary"]+d["replica-1"]+d["replica-2"] != float64(reads) {
		t.Errorf("reads counted %v, want %d in all", d, reads)
	}
}

// A cursor carries its page's position: the next page never comes from a
// replica further behind, which would skip the records in between.
func testPaginationOverLaggingReplicas(t *testing.T, c *cluster) {
	// A bound so loose that the paused replica keeps serving plain reads.
	db := c.open(t, postgres.Options{MaxReplicaLag: time.Hour})
	u := mustCreate(t, db, "ada")
	waitCaughtUp(t, db)
	c.pauseReplay(t, 0)
	const n = 30
	for i := range n {
		if err := db.CreateRecord(t.Context(), &server.Record{UserID: u.ID, Data: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 5*time.Second, "replica-2 to catch up", func() bool { return db.Replicas()[1].LagBytes == 0 })
	complete := 0
	for range 20 { // round robin: first pages from either replica
		var ids []string
		cursor := ""
		for {
			page, err := db.Records(t.Context(), u.ID, 7, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Items {
				ids = append(ids, r.ID)
			}
			if cursor = page.NextCursor; cursor == "" {
				break
			}
		}
		switch len(ids) {
		case 0: // the first page came from the paused replica: consistent, old
		case n:
			complete++
		default:
			t.Fatalf("a listing found %d of %d records, want all or (from the paused replica) none", len(ids), n)
		}
	}
	if complete == 0 {
		t.Errorf("no listing came from the streaming replica; the test needs both")
	}
}

// Reads keep working while a replica is stopped (from the other replica,
// or the primary when both are), without errors, and go to it again once
// it is back.
//
// A restarted replica replays from its last restart point and may accept
// connections at a position before the one it had reached (here, before
// the user existed): the router measures that as lag like any other. So
// the user is made older than the lag bound before the replicas stop, and
// plain reads of it must then never miss it.
func testStoppedReplica(t *testing.T, c *cluster) {
	const bound = 200 * time.Millisecond
	reg := prometheus.NewRegistry()
	db := c.open(t, postgres.Options{Registerer: reg, MaxReplicaLag: bound})
	u := mustCreate(t, db, "ada")
	waitCaughtUp(t, db)
	time.Sleep(bound + 100*time.Millisecond)

	// Readers run throughout; every error counts.
	ctx, stop := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	var reads, failed atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				_, err := db.User(ctx, u.ID)
				if ctx.Err() != nil {
					return
				}
				reads.Add(1)
				if err != nil {
					failed.Add(1)
					t.Logf("read while replicas stop and start: %v", err)
				}
			}
		})
	}
	defer func() {
		stop()
		wg.Wait()
		t.Logf("%d reads while replicas stopped and started, %d failed", reads.Load(), failed.Load())
		if failed.Load() != 0 {
			t.Errorf("%d of %d reads failed while replicas stopped and started, want 0", failed.Load(), reads.Load())
		}
	}()
	time.Sleep(50 * time.Millisecond)

	stopReplica := func(i int) {
		t.Helper()
		if err := c.replicas[i].Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, fmt.Sprintf("replica-%d unhealthy", i+1), func() bool { return !db.Replicas()[i].Healthy })
	}
	startReplica := func(i int) {
		t.Helper()
		if err := c.replicas[i].Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := c.replicas[i].WaitStreaming(t.Context()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, fmt.Sprintf("replica-%d usable", i+1), func() bool { return db.Replicas()[i].Usable })
	}
	served := func(d time.Duration) map[string]float64 {
		before := counts(t, reg)
		time.Sleep(d)
		return delta(before, counts(t, reg))
	}

	stopReplica(1)
	if d := served(200 * time.Millisecond); d["replica-2"] != 0 || d["replica-1"] == 0 {
		t.Errorf("with replica-2 stopped, reads served by %v, want replica-1 only", d)
	}
	stopReplica(0)
	if d := served(200 * time.Millisecond); d["replica-1"]+d["replica-2"] != 0 || d["primary"] == 0 || d["fallback:unhealthy"] == 0 {
		t.Errorf("with both replicas stopped, reads served by %v, want the primary only (fallback: unhealthy)", d)
	}
	startReplica(0)
	startReplica(1)
	if d := served(200 * time.Millisecond); d["replica-1"] == 0 || d["replica-2"] == 0 {
		t.Errorf("with both replicas back, reads served by %v, want both replicas", d)
	}
	m := counts(t, reg)
	t.Logf("reads that failed on a replica and ran again on the primary: %v", m["fallback:replica_error"])
}

// A replica URL that names a primary is never used for reads.
func testNotAReplica(t *testing.T, c *cluster) {
	url, _ := c.database(t)
	reg := prometheus.NewRegistry()
	db := mustOpenURL(t, url, postgres.Options{Registerer: reg, Replicas: []string{url}})
	u := mustCreate(t, db, "ada")
	if _, err := db.User(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	s := db.Replicas()[0]
	if s.Healthy || s.Err == nil || !strings.Contains(s.Err.Error(), "not a replica") {
		t.Errorf("Replicas() = %+v, want unhealthy: not a replica", s)
	}
	if m := counts(t, reg); m["replica-1"] != 0 || m["fallback:unhealthy"] != 1 {
		t.Errorf("reads served by %v, want the primary (fallback: unhealthy)", m)
	}
}

// The acceptance suite, with reads served by replicas. Its reads follow
// its own writes, as a client's do, so it runs as one client: the session
// below carries the position of its latest write into every read, which is
// exactly what the HTTP layer does for its clients. Without positions a
// read right after a write may come from a replica that has not replayed
// it yet, by design: that is what positions are for.
//
// A new database takes a replica a few hundred milliseconds to replay, so,
// as TestStoreExecModes does, the subtests share one database, emptied
// before each.
func testStoreWithReplicas(t *testing.T, c *cluster) {
	url, replicas := c.database(t)
	var mu sync.Mutex
	served := map[string]float64{}
	storetest.Run(t, func(t *testing.T) server.Store {
		reg := prometheus.NewRegistry()
		db := c.openURL(t, url, replicas, postgres.Options{Registerer: reg})
		exec(t, c.primary, url, "TRUNCATE users CASCADE") // records, lookup tables
		waitCaughtUp(t, db)
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			for k, v := range counts(t, reg) {
				served[k] += v
			}
		})
		return &session{DB: db}
	})
	t.Logf("operations in the suite served by: primary %v, replica-1 %v, replica-2 %v; fallbacks for positions %v (re-checks: %v caught up, %v behind)",
		served["primary"], served["replica-1"], served["replica-2"], served["fallback:position"],
		served["check:replica-1:caught_up"]+served["check:replica-2:caught_up"], served["check:replica-1:behind"]+served["check:replica-2:behind"])
	if served["replica-1"]+served["replica-2"] == 0 {
		t.Errorf("no read in the suite was served by a replica: the suite did not test routing")
	}
}

// session is one client of a store: it keeps the position of its latest
// write and makes every read see it.
type session struct {
	*postgres.DB
	pos atomic.Uint64
}

func (s *session) write(ctx context.Context) (context.Context, func()) {
	ctx, rec := server.WithPositionRecorder(ctx)
	return ctx, func() {
		for p := uint64(rec.Position()); ; {
			old := s.pos.Load()
			if p <= old || s.pos.CompareAndSwap(old, p) {
				return
			}
		}
	}
}

func (s *session) read(ctx context.Context) context.Context {
	return server.WithMinPosition(ctx, server.Position(s.pos.Load()))
}

func (s *session) CreateUser(ctx context.Context, u *server.User) error {
	ctx, done := s.write(ctx)
	defer done()
	return s.DB.CreateUser(ctx, u)
}

func (s *session) UpdateUser(ctx context.Context, id string, upd server.UserUpdate) (*server.User, error) {
	ctx, done := s.write(ctx)
	defer done()
	return s.DB.UpdateUser(ctx, id, upd)
}

func (s *session) DeleteUser(ctx context.Context, id string) error {
	ctx, done := s.write(ctx)
	defer done()
	return s.DB.DeleteUser(ctx, id)
}

func (s *session) CreateRecord(ctx context.Context, r *server.Record) error {
	ctx, done := s.write(ctx)
	defer done()
	return s.DB.CreateRecord(ctx, r)
}

func (s *session) CreateRecords(ctx context.Context, userID string, rs []*server.Record) error {
	ctx, done := s.write(ctx)
	defer done()
	return s.DB.CreateRecords(ctx, userID, rs)
}

func (s *session) UpdateRecord(ctx context.Context, userID, id string, data json.RawMessage) (*server.Record, error) {
	ctx, done := s.write(ctx)
	defer done()
	return s.DB.UpdateRecord(ctx, userID, id, data)
}

func (s *session) DeleteRecord(ctx context.Context, userID, id string) error {
	ctx, done := s.write(ctx)
	defer done()
	return s.DB.DeleteRecord(ctx, userID, id)
}

func (s *session) Seed(ctx context.Context, users int, passwordHash string, progress func(done int)) error {
	ctx, done := s.write(ctx)
	defer done()
	return s.DB.Seed(ctx, users, passwordHash, progress)
}

func (s *session) User(ctx context.Context, id string) (*server.User, error) {
	return s.DB.User(s.read(ctx), id)
}

func (s *session) UserByLogin(ctx context.Context, login string) (*server.User, error) {
	return s.DB.UserByLogin(s.read(ctx), login)
}

func (s *session) Record(ctx context.Context, userID, id string) (*server.Record, error) {
	return s.DB.Record(s.read(ctx), userID, id)
}

func (s *session) Records(ctx context.Context, userID string, limit int, cursor string) (*server.RecordPage, error) {
	return s.DB.Records(s.read(ctx), userID, limit, cursor)
}
