package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"scalelab/internal/pgserver"
	"scalelab/internal/pgserver/pgtest"
	"scalelab/server"
	"scalelab/server/postgres"
)

// TestFaults runs the store against a primary or a replica that stops
// answering (SIGSTOP to its process group: connections stay open, nothing
// answers), on a cluster of its own.
func TestFaults(t *testing.T) {
	c := startCluster(t)
	t.Run("HungReplicaReadsHedged", func(t *testing.T) { testHungReplicaReadsHedged(t, c) })
	t.Run("SlowReplicaKeepsItsConnection", func(t *testing.T) { testSlowReplicaKeepsItsConnection(t, c) })
	t.Run("PausedPrimary", func(t *testing.T) { testPausedPrimary(t, c) })
}

// pause stops srv's postmaster and its children (SIGSTOP: connections
// stay open, nothing answers) until the returned resume is called (also at
// the end of the test).
func pause(t *testing.T, srv *pgserver.Server) (resume func()) {
	t.Helper()
	pids := []int{srv.PID()}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; cut after ')'.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pids[0]) {
			pids = append(pids, pid)
		}
	}
	signal := func(sig syscall.Signal) {
		for _, pid := range pids {
			if err := syscall.Kill(pid, sig); err != nil {
				t.Logf("signal %v to %d: %v", sig, pid, err)
			}
		}
	}
	signal(syscall.SIGSTOP)
	resumed := false
	resume = func() {
		if !resumed {
			resumed = true
			signal(syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	return resume
}

// A read that a hung replica does not answer within HedgeAfter is sent to
// another replica or the primary too, and answers from there: no read
// waits for the caller's deadline. The router's probe timeout is long, so
// the router does not take the replica out of rotation meanwhile: the
// hedge alone saves the reads.
func testHungReplicaReadsHedged(t *testing.T, c *cluster) {
	db := c.open(t, postgres.Options{HedgeAfter: 50 * time.Millisecond, ReplicaCheckTimeout: 30 * time.Second})
	u := mustCreate(t, db, "hedge")
	waitCaughtUp(t, db)
	resume := pause(t, c.replicas[0])
	defer resume()
	var slowest time.Duration
	for i := range 10 {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		begin := time.Now()
		got, err := db.User(ctx, u.ID)
		took := time.Since(begin)
		cancel()
		slowest = max(slowest, took)
		if err != nil || got.ID != u.ID {
			t.Fatalf("read %d with replica-1 hung: User(%s) = %v, %v after %v; want the user", i, u.ID, got, err, took)
		}
	}
	t.Logf("10 reads with replica-1 hung; slowest %v", slowest.Round(time.Millisecond))
	if slowest > time.Second {
		t.Errorf("slowest read with replica-1 hung took %v, want about the hedge budget (50ms)", slowest)
	}
}

// A read that a replica is slow to answer is hedged, and the attempt that
// lost is left to finish rather than cancelled: the replica keeps its
// session. (pgx closes a connection whose query is cancelled; a busy
// replica then paid for a new session for every read that gave up on it,
// which made it busier still.) The replica is paused for longer than the
// hedge budget, then resumed: the one read sent to it first answers from
// replica-2, and its connection to replica-1 is back in the pool, the same
// one, once replica-1 has answered.
func testSlowReplicaKeepsItsConnection(t *testing.T, c *cluster) {
	db := c.open(t, postgres.Options{HedgeAfter: 50 * time.Millisecond, ReplicaCheckTimeout: 30 * time.Second})
	u := mustCreate(t, db, "slow")
	waitCaughtUp(t, db)
	read := func(what string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		if got, err := db.User(ctx, u.ID); err != nil || got.ID != u.ID {
			t.Fatalf("%s: User(%s) = %v, %v; want the user", what, u.ID, got, err)
		}
	}
	for range 10 { // one at a time: one connection to each replica
		read("warm-up read")
	}
	before := postgres.ReplicaPoolStats(db)[0]
	resume := pause(t, c.replicas[0])
	// Reads go to the replicas in turn: of two reads, one goes to replica-1
	// first, waits the hedge budget and is answered by replica-2.
	read("first read with replica-1 paused")
	read("second read with replica-1 paused")
	time.Sleep(200 * time.Millisecond)
	resume()
	waitFor(t, 5*time.Second, "the read that lost on replica-1 to finish", func() bool {
		return postgres.ReplicaPoolStats(db)[0].AcquiredConns() == 0
	})
	after := postgres.ReplicaPoolStats(db)[0]
	if after.AcquireCount() <= before.AcquireCount() {
		t.Fatalf("replica-1's pool was not used while it was paused (acquires %d, then %d): no read was hedged off it", before.AcquireCount(), after.AcquireCount())
	}
	if after.TotalConns() != before.TotalConns() || after.NewConnsCount() != before.NewConnsCount() {
		t.Errorf("replica-1's pool had %d connections (%d made) before the pause and %d (%d made) after; want the same: the read that lost was cancelled and its connection closed",
			before.TotalConns(), before.NewConnsCount(), after.TotalConns(), after.NewConnsCount())
	}
	read("read after the pause")
}

// While the primary is paused, reads are served by the replicas (those
// that must go to the primary too, by one that has caught up with it) and
// writes fail fast with EUNAVAILABLE (a write in flight when it stopped
// included), Ping fails at once and ServesReads holds; once it resumes,
// writes work again.
func testPausedPrimary(t *testing.T, c *cluster) {
	// One connection to the primary, on which the update below is
	// prepared before the pause: the update sent during the pause is then
	// sent whole (not only its Parse), as on a warm pool.
	db := c.open(t, postgres.Options{MaxConns: 1})
	// Both replicas must have the user before the pause: the router's
	// last sample of the primary may predate the insert, so "caught up"
	// by it (waitCaughtUp) is not enough.
	wctx, rec := server.WithPositionRecorder(t.Context())
	u := &server.User{Email: "primary@example.com", Username: "primary", PasswordHash: "h"}
	if err := db.CreateUser(wctx, u); err != nil {
		t.Fatalf("CreateUser = %v", err)
	}
	warm := "before the pause"
	if _, err := db.UpdateUser(wctx, u.ID, server.UserUpdate{Name: &warm}); err != nil {
		t.Fatalf("UpdateUser before the pause = %v", err)
	}
	u.Version++
	waitFor(t, 10*time.Second, "both replicas replayed the new user", func() bool {
		for _, r := range db.Replicas() {
			if !r.Healthy || r.Replay < rec.Position() {
				return false
			}
		}
		return true
	})
	resume := pause(t, c.primary)
	defer resume()

	name := "during the pause"
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	begin := time.Now()
	_, err := db.UpdateUser(ctx, u.ID, server.UserUpdate{Name: &name})
	took := time.Since(begin)
	// The primary is taken for gone after primaryDownAfter (1s) of failed
	// probes; the write in flight is cancelled then, and answers once its
	// deadline (maxWriteTime, 2s) has passed: until then it could still
	// commit.
	if server.ErrorCode(err) != server.EUNAVAILABLE || took > 3500*time.Millisecond {
		t.Errorf("UpdateUser with the primary paused = %v after %v; want %s within 3.5s", err, took, server.EUNAVAILABLE)
	}
	begin = time.Now()
	_, err = db.UpdateUser(ctx, u.ID, server.UserUpdate{Name: &name})
	if took := time.Since(begin); server.ErrorCode(err) != server.EUNAVAILABLE || took > 50*time.Millisecond {
		t.Errorf("second UpdateUser with the primary paused = %v after %v; want %s at once", err, took, server.EUNAVAILABLE)
	}
	begin = time.Now()
	if err := db.Ping(ctx); err == nil || time.Since(begin) > 600*time.Millisecond {
		t.Errorf("Ping with the primary paused = %v after %v; want an error within the ping budget", err, time.Since(begin))
	}
	if !db.ServesReads() {
		t.Errorf("ServesReads() = false with the primary paused and both replicas up; want true")
	}
	for i := range 30 {
		begin := time.Now()
		got, err := db.User(ctx, u.ID)
		if err != nil || got.ID != u.ID || time.Since(begin) > 500*time.Millisecond {
			t.Fatalf("read %d with the primary paused = %v, %v after %v; want the user from a replica", i, got, err, time.Since(begin))
		}
		time.Sleep(50 * time.Millisecond) // past the lag bound: replicas stay usable
	}
	// A read that must go to the primary (a reader whose write hints
	// could not be looked up) is served by a replica that has replayed
	// everything the primary was known to have reached: the write above
	// was recorded, so it has the update made before the pause.
	got, err := db.User(server.WithPrimary(ctx), u.ID)
	if err != nil || got.Profile.Name != warm {
		t.Errorf("WithPrimary read with the primary paused = %+v, %v; want the user as updated before the pause, from a caught-up replica", got, err)
	}
	// A reader whose last write's position is unknown (its commit's
	// position could not be read) may need a write that no replica has,
	// newer than anything the primary is known to have reached: no
	// replica serves its read, which fails with the primary instead.
	_, err = db.User(server.WithPrimary(server.WithMinPosition(ctx, server.PositionUnknown)), u.ID)
	if server.ErrorCode(err) != server.EUNAVAILABLE {
		t.Errorf("read after a write of unknown position, with the primary paused = %v; want %s, not a replica's answer", err, server.EUNAVAILABLE)
	}

	resume()
	after := "after the pause"
	var v int64
	waitFor(t, 5*time.Second, "a write after the primary resumed", func() bool {
		got, err := db.UpdateUser(t.Context(), u.ID, server.UserUpdate{Name: &after})
		if err == nil {
			v = got.Version
		}
		return err == nil
	})
	// The writes that answered EUNAVAILABLE were not applied, not even
	// when the primary resumed and found the first one still in its
	// socket buffer (it used to commit then, over this newer write): the
	// only update since the user was created is the one that succeeded.
	if v != u.Version+1 {
		t.Errorf("version after one acknowledged update = %d, want %d: a write that answered %s was applied", v, u.Version+1, server.EUNAVAILABLE)
	}
	time.Sleep(300 * time.Millisecond) // a late write would land by now
	got, err = db.User(server.WithPrimary(t.Context()), u.ID)
	if err != nil || got.Profile.Name != after || got.Version != v {
		t.Errorf("User after the pause = %+v, %v; want name %q, version %d (no late write over it)", got, err, after, v)
	}
}

// Instances starting together on a fresh database migrate one after the
// other, and none of them makes Postgres log an ERROR on the way: goose's
// Up used to create its version table before taking the migration lock, so
// all but one racing instance failed a CREATE TABLE goose_db_version
// ("type ... already exists", a duplicate key in pg_type) before retrying.
func TestConcurrentMigrationsLogNoError(t *testing.T) {
	srv := pgtest.New(t)
	for round := range 3 {
		url := pgtest.NewDatabase(t, srv)
		var wg sync.WaitGroup
		errs := make([]error, 6)
		for i := range errs {
			wg.Go(func() {
				db, err := postgres.Open(t.Context(), url, postgres.Options{})
				if err == nil {
					db.Close()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: Open #%d = %v", round, i, err)
			}
		}
	}
	b, err := os.ReadFile(srv.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "ERROR") {
			t.Errorf("postgres logged %q, want no ERROR from concurrent migrations", line)
		}
	}
}
