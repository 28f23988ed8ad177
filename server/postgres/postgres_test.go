package postgres_test

import (
	"context"
	"flag"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/internal/pgserver/pgtest"
	"scalelab/server"
	"scalelab/server/postgres"
	"scalelab/server/storetest"
)

// pg is one throwaway PostgreSQL server for this package's tests; each test
// gets a database of its own.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// mustOpen opens a store on a fresh database and closes it when t ends.
func mustOpen(t testing.TB, opts postgres.Options) *postgres.DB {
	t.Helper()
	return mustOpenURL(t, pg.Database(t), opts)
}

func mustOpenURL(t testing.TB, url string, opts postgres.Options) *postgres.DB {
	t.Helper()
	if !opts.RequireLayout && opts.Partitions == 0 {
		opts.Partitions = *testPartitions
	}
	db, err := postgres.Open(t.Context(), url, opts)
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return db
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) server.Store { return mustOpen(t, postgres.Options{}) })
}

func TestStoreQuotas(t *testing.T) {
	storetest.RunQuotas(t, func(t *testing.T, q server.Quota) server.Store { return mustOpen(t, postgres.Options{Quota: q}) })
}

var seedUsers = flag.Int("seed-users", 100_000, "users per BenchmarkSeed iteration")

// BenchmarkSeed measures bulk seeding into a fresh database:
//
//	go test ./server/postgres -run '^$' -bench Seed -benchtime 1x -seed-users 1000000
func BenchmarkSeed(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		db := mustOpen(b, postgres.Options{})
		b.StartTimer()
		if err := db.Seed(b.Context(), *seedUsers, "$argon2id$v=19$m=19456,t=2,p=1$c2VlZA$c2VlZA", nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(*seedUsers*b.N)/b.Elapsed().Seconds(), "users/s")
}

// TestStoreExecModes runs the suite in the other exec modes, which work
// through pgbouncer in transaction mode (no named prepared statements). A
// fresh database costs about 0.1 s (CREATE DATABASE), so here each mode gets
// one database, emptied before every subtest instead.
func TestStoreExecModes(t *testing.T) {
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheDescribe, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol} {
		t.Run(mode.String(), func(t *testing.T) {
			url := pg.Database(t)
			storetest.Run(t, func(t *testing.T) server.Store {
				db := mustOpenURL(t, url, postgres.Options{ExecMode: mode})
				conn, err := pgx.Connect(t.Context(), url)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(t.Context())
				if _, err := conn.Exec(t.Context(), "TRUNCATE users CASCADE"); err != nil { // records, lookup tables
					t.Fatal(err)
				}
				return db
			})
		})
	}
}

// TestConcurrentOpen starts several app instances on one new database at
// once: the migration lock lets one migrate and the others find the schema
// in place.
func TestConcurrentOpen(t *testing.T) {
	url := pg.Database(t)
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			db, err := postgres.Open(t.Context(), url, postgres.Options{})
			if err == nil {
				err = db.Ping(t.Context())
				db.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open #%d = %v, want nil", i, err)
		}
	}
}

// TestMetrics checks the store's query and pool metrics, with the pool
// sized by Options and by the URL (pgx's pool_max_conns): that parameter is
// the pool's, and the migrations' connection must not send it to the server
// as a setting, which the server refuses.
func TestMetrics(t *testing.T) {
	for _, tc := range []struct {
		name  string
		query string // appended to the database's URL
		opts  postgres.Options
		pool  float64
	}{
		{"pool size in Options", "", postgres.Options{MaxConns: 3}, 3},
		{"pool size in the URL", "&pool_max_conns=5", postgres.Options{}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := prometheus.NewPedanticRegistry()
			tc.opts.Registerer = reg
			db := mustOpenURL(t, pg.Database(t)+tc.query, tc.opts)
			u := &server.User{Email: "a@example.com", Username: "ada", PasswordHash: "h"}
			if err := db.CreateUser(t.Context(), u); err != nil {
				t.Fatal(err)
			}
			if _, err := db.User(t.Context(), u.ID); err != nil {
				t.Fatal(err)
			}
			families, err := reg.Gather()
			if err != nil {
				t.Fatalf("Gather() = %v", err)
			}
			got := map[string]float64{}
			for _, f := range families {
				for _, m := range f.GetMetric() {
					key := f.GetName()
					for _, l := range m.GetLabel() {
						key += "," + l.GetName() + "=" + l.GetValue()
					}
					switch {
					case m.GetHistogram() != nil:
						got[key] = float64(m.GetHistogram().GetSampleCount())
					case m.GetGauge() != nil:
						got[key] = m.GetGauge().GetValue()
					}
				}
			}
			for key, want := range map[string]float64{
				"scalelab_db_query_duration_seconds,op=user,role=primary,store=postgres":        1,
				"scalelab_db_query_duration_seconds,op=create_user,role=primary,store=postgres": 1,
				"scalelab_db_pool_max_open_connections,pool=primary,store=postgres":             tc.pool,
			} {
				if got[key] != want {
					t.Errorf("metric %s = %v, want %v", key, got[key], want)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := postgres.Open(t.Context(), "postgres://nobody@127.0.0.1:1/x?connect_timeout=2", postgres.Options{}); err == nil {
		t.Errorf("Open(unreachable) = nil error, want one")
	}
	if _, err := postgres.Open(t.Context(), "::not a url", postgres.Options{}); err == nil {
		t.Errorf("Open(bad url) = nil error, want one")
	}
}

// BenchmarkUser measures the hot path, a user by id, from parallel readers.
func BenchmarkUser(b *testing.B) {
	const n = 10_000
	db := mustOpen(b, postgres.Options{})
	if err := db.Seed(b.Context(), n, "hash", nil); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			if _, err := db.User(b.Context(), server.SeedUserID(i*7919%n)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestStats(t *testing.T) {
	db := mustOpen(t, postgres.Options{})
	storetest.RunStats(t, db)
	// The views say what the live aggregate says, once refreshed.
	view, err := db.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	live, err := db.LiveStats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if view.Users != live.Users || !cmp.Equal(view.Days, live.Days) {
		t.Errorf("Stats() = %d users %+v, LiveStats() = %d users %+v; want the same", view.Users, view.Days, live.Users, live.Days)
	}
}

// BenchmarkStats compares the materialized views against the live
// aggregate on -stats-users seeded users (seeding is not timed):
//
//	go test ./server/postgres -run '^$' -bench Stats -args -stats-users 200000
func BenchmarkStats(b *testing.B) {
	db := mustOpen(b, postgres.Options{})
	start := time.Now()
	if err := db.Seed(b.Context(), *statsUsers, "$argon2id$v=19$m=19456,t=2,p=1$c2VlZA$c2VlZA", nil); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d users in %v", *statsUsers, time.Since(start).Round(time.Millisecond))
	start = time.Now()
	if _, err := db.RefreshStats(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Logf("refreshed the views in %v", time.Since(start).Round(time.Millisecond))
	for _, bm := range []struct {
		name string
		fn   func(ctx context.Context) (*server.Stats, error)
	}{{"view", db.Stats}, {"live", db.LiveStats}} {
		b.Run(bm.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := bm.fn(b.Context()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var statsUsers = flag.Int("stats-users", 200_000, "users seeded for BenchmarkStats")
