package sqlite_test

import (
	"flag"
	"path/filepath"
	"testing"

	"scalelab/server"
	"scalelab/server/sqlite"
	"scalelab/server/storetest"
)

// mustOpen opens a store on a new database file in t's temporary directory
// and closes it when t ends.
func mustOpen(t testing.TB, opts sqlite.Options) *sqlite.DB {
	t.Helper()
	db, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "scalelab.db"), opts)
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
	storetest.Run(t, func(t *testing.T) server.Store { return mustOpen(t, sqlite.Options{}) })
}

func TestStoreQuotas(t *testing.T) {
	storetest.RunQuotas(t, func(t *testing.T, q server.Quota) server.Store { return mustOpen(t, sqlite.Options{Quota: q}) })
}

var seedUsers = flag.Int("seed-users", 100_000, "users per BenchmarkSeed iteration")

// BenchmarkSeed measures bulk seeding into a fresh database:
//
//	go test ./server/sqlite -run '^$' -bench Seed -benchtime 1x -seed-users 1000000
func BenchmarkSeed(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		db := mustOpen(b, sqlite.Options{})
		b.StartTimer()
		if err := db.Seed(b.Context(), *seedUsers, "$argon2id$v=19$m=19456,t=2,p=1$c2VlZA$c2VlZA", nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(*seedUsers*b.N)/b.Elapsed().Seconds(), "users/s")
}

// BenchmarkUser measures the hot path, a user by id, from parallel readers.
func BenchmarkUser(b *testing.B) {
	const n = 10_000
	db := mustOpen(b, sqlite.Options{})
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

func TestStats(t *testing.T) { storetest.RunStats(t, mustOpen(t, sqlite.Options{})) }
