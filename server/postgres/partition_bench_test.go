package postgres_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"scalelab/server"
	"scalelab/server/postgres"
)

var (
	layoutUsers = flag.Int("layout-users", 100_000, "users seeded into each layout for BenchmarkLayoutReads")
	layoutReads = flag.Int("layout-reads", 2000, "reads per layout and kind in each round of BenchmarkLayoutReads")
)

// BenchmarkLayoutReads compares the reads of a user that every request
// with a token or a sign-in makes, DB.User (by id) and DB.UserByLogin, on
// plain tables and on phase 4's layout (16 hash partitions), side by side
// in one run: two databases seeded alike with -layout-users users by the
// COPY seeder (not timed), then each iteration is one round of
// -layout-reads sequential reads of random seeded users per layout and
// kind, the layouts in alternating order. It reports, per layout and kind,
// the median over rounds of each round's median latency, and logs the
// EXPLAIN ANALYZE plans of both reads in both layouts. Issue 12's figure:
//
//	go test ./server/postgres -run '^$' -bench LayoutReads -benchtime 7x -layout-users 1000000
func BenchmarkLayoutReads(b *testing.B) {
	ctx := b.Context()
	// The third store reads the second's database with generic plans only
	// (plan_cache_mode): it tells the cost of planning for 16 partitions on
	// every read (PostgreSQL keeps custom plans for the partitioned
	// statements, whose generic plans it estimates to cost 16 partitions'
	// scans) from the cost of the partitions themselves.
	layouts := []struct {
		name       string
		partitions int
		params     string // added to the database's URL
		db         *postgres.DB
		url        string
		medians    map[string][]time.Duration // by kind, one per round
	}{{name: "plain"}, {name: "partitioned-16", partitions: 16}, {name: "partitioned-16-generic", partitions: 16, params: "plan_cache_mode=force_generic_plan"}}
	hash := "$argon2id$v=19$m=19456,t=2,p=1$c2VlZA$c2VlZA"
	for i := range layouts {
		l := &layouts[i]
		l.medians = map[string][]time.Duration{}
		if l.params != "" {
			l.url = layouts[i-1].url
			sep := "?"
			if strings.Contains(l.url, "?") {
				sep = "&"
			}
			l.db = mustOpenURL(b, l.url+sep+l.params, postgres.Options{Partitions: l.partitions, RequireLayout: true})
			continue
		}
		l.url = pg.Database(b)
		l.db = mustOpenURL(b, l.url, postgres.Options{Partitions: l.partitions, RequireLayout: true})
		start := time.Now()
		if err := l.db.Seed(ctx, *layoutUsers, hash, nil); err != nil {
			b.Fatal(err)
		}
		analyze(b, l.url)
		b.Logf("%s: seeded %d users in %v", l.name, *layoutUsers, time.Since(start).Round(time.Millisecond))
		for _, kind := range []struct {
			name, sql string
			arg       string
		}{
			{"by id", postgres.PartitionKeyStatements()[0].SQL, server.SeedUserID(*layoutUsers / 2)},
			{"by login", postgres.UserByLoginSQL(l.partitions > 0), server.FoldKey(server.SeedEmail(*layoutUsers / 2))},
		} {
			b.Logf("%s, %s:\n%s", l.name, kind.name, plainPlan(b, l.url, kind.sql, kind.arg))
		}
	}
	kinds := map[string]func(db *postgres.DB, i int) error{
		"by id": func(db *postgres.DB, i int) error {
			_, err := db.User(ctx, server.SeedUserID(i))
			return err
		},
		// Half by email, half by username, as people sign in.
		"by login": func(db *postgres.DB, i int) error {
			login := server.SeedEmail(i)
			if i%2 == 1 {
				login = server.SeedUsername(i)
			}
			_, err := db.UserByLogin(ctx, login)
			return err
		},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, *layoutReads)
	round := 0
	for b.Loop() {
		for j := range layouts {
			l := &layouts[(j+round)%len(layouts)]
			for kind, read := range kinds {
				for k := range lat {
					i := rng.IntN(*layoutUsers)
					start := time.Now()
					if err := read(l.db, i); err != nil {
						b.Fatalf("%s %s: %v", l.name, kind, err)
					}
					lat[k] = time.Since(start)
				}
				l.medians[kind] = append(l.medians[kind], median(lat))
			}
		}
		round++
	}
	for _, l := range layouts {
		for kind := range kinds {
			m := median(l.medians[kind])
			b.ReportMetric(float64(m.Nanoseconds())/1e3, fmt.Sprintf("µs/read-%s-%s", strings.ReplaceAll(kind, " ", "-"), l.name))
			b.Logf("%s, %s: median of %d round medians %v (rounds: %v)", l.name, kind, len(l.medians[kind]), m, l.medians[kind])
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// analyze gathers the planner's statistics of url's database.
func analyze(b *testing.B, url string) {
	b.Helper()
	conn, err := pgx.Connect(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(b.Context()))
	if _, err := conn.Exec(b.Context(), "VACUUM ANALYZE"); err != nil {
		b.Fatal(err)
	}
}

// plainPlan returns the EXPLAIN ANALYZE plan of sql with one text
// argument, as text without costs and timings.
func plainPlan(b *testing.B, url, sql, arg string) string {
	b.Helper()
	conn, err := pgx.Connect(b.Context(), url)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(b.Context()))
	rows, err := conn.Query(b.Context(), "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "+sql, pgx.QueryExecModeSimpleProtocol, arg)
	if err != nil {
		b.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		b.Fatal(err)
	}
	return strings.Join(lines, "\n")
}
