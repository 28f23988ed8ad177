package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"scalelab/server"
	"scalelab/server/postgres"
	"scalelab/server/storetest"
)

// testPartitions is the layout of the stores that mustOpen opens when the
// test asks for none: the whole package runs on partitioned tables with
//
//	go test ./server/postgres/... -partitions 16
//
// (TestStorePartitioned runs the acceptance suite on them in any case).
var testPartitions = flag.Int("partitions", 0, "layout of the test stores that ask for none: 0 plain tables, N hash partitions")

// partitioned is the layout phase 4 runs.
const partitioned = 16

func openPartitioned(t *testing.T) server.Store {
	return mustOpen(t, postgres.Options{Partitions: partitioned, RequireLayout: true})
}

// TestStorePartitioned runs the acceptance suite on the partitioned layout,
// whatever -partitions says: email and username unique across partitions
// through the lookup tables (concurrent sign-ups included), counters,
// quotas, paging, seeding.
func TestStorePartitioned(t *testing.T) {
	t.Run("suite", func(t *testing.T) { storetest.Run(t, openPartitioned) })
	t.Run("quotas", func(t *testing.T) {
		storetest.RunQuotas(t, func(t *testing.T, q server.Quota) server.Store {
			return mustOpen(t, postgres.Options{Partitions: partitioned, RequireLayout: true, Quota: q})
		})
	})
	t.Run("stats", func(t *testing.T) {
		storetest.RunStats(t, mustOpen(t, postgres.Options{Partitions: partitioned, RequireLayout: true}))
	})
}

// TestLayouts: an empty database gets the layout asked for; one that has
// a layout keeps it, and refuses another when the layout is required.
func TestLayouts(t *testing.T) {
	ctx := t.Context()
	partURL, plainURL := pg.Database(t), pg.Database(t)
	db := mustOpenURL(t, partURL, postgres.Options{Partitions: 8, RequireLayout: true})
	if got := db.Partitions(); got != 8 {
		t.Errorf("Partitions() = %d, want 8", got)
	}
	for table, want := range map[string]int{"users": 8, "records": 8, "user_emails": 0, "user_usernames": 0} {
		if got := countPartitions(t, partURL, table); got != want {
			t.Errorf("%s has %d partitions, want %d", table, got, want)
		}
	}
	if got := mustOpenURL(t, plainURL, postgres.Options{RequireLayout: true}).Partitions(); got != 0 {
		t.Errorf("Partitions() of a plain database = %d, want 0", got)
	}
	if got := countPartitions(t, plainURL, "users"); got != 0 {
		t.Errorf("plain users has %d partitions, want 0", got)
	}

	for _, c := range []struct {
		url        string
		partitions int
		have       int
	}{{partURL, 0, 8}, {partURL, 16, 8}, {plainURL, 8, 0}} {
		_, err := postgres.Open(ctx, c.url, postgres.Options{Partitions: c.partitions, RequireLayout: true})
		var le *postgres.LayoutError
		if !errors.As(err, &le) || le.Have != c.have || le.Want != c.partitions {
			t.Errorf("Open(database of %d partitions, Partitions %d, RequireLayout) = %v, want a LayoutError", c.have, c.partitions, err)
		}
		// Without RequireLayout the store takes the database's layout.
		db, err := postgres.Open(ctx, c.url, postgres.Options{Partitions: c.partitions})
		if err != nil {
			t.Fatalf("Open(database of %d partitions, Partitions %d) = %v", c.have, c.partitions, err)
		}
		if got := db.Partitions(); got != c.have {
			t.Errorf("Open(database of %d partitions, Partitions %d).Partitions() = %d, want the database's", c.have, c.partitions, got)
		}
		db.Close()
	}
	for _, p := range []int{-1, 1, postgres.MaxPartitions + 1} {
		if _, err := postgres.Open(ctx, pg.Database(t), postgres.Options{Partitions: p}); err == nil {
			t.Errorf("Open(Partitions %d) = nil error, want one", p)
		}
	}
}

// TestConcurrentOpenPartitioned: app instances starting together on an
// empty database create one partitioned schema.
func TestConcurrentOpenPartitioned(t *testing.T) {
	url := pg.Database(t)
	const n = 4
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			db, err := postgres.Open(t.Context(), url, postgres.Options{Partitions: partitioned, RequireLayout: true})
			if err == nil {
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
	if got := countPartitions(t, url, "users"); got != partitioned {
		t.Errorf("users has %d partitions, want %d", got, partitioned)
	}
}

// TestPartitionPruning runs EXPLAIN ANALYZE on each of the store's
// statements that name a user, as the store runs them in the partitioned
// layout, and checks that each reads one partition of users or records:
// with a custom plan (the values known when planning: pruned by the
// planner) and with a generic one (pgx prepares statements, and PostgreSQL
// may switch a prepared statement to a generic plan after five runs:
// pruned when the executor starts, or, for a value from a subquery, while
// it runs). Writes run in a transaction that is rolled back.
func TestPartitionPruning(t *testing.T) {
	ctx := t.Context()
	url := pg.Database(t)
	db := mustOpenURL(t, url, postgres.Options{Partitions: partitioned, RequireLayout: true})
	u := &server.User{Email: "ada@example.com", Username: "ada", PasswordHash: "h"}
	if err := db.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	r := &server.Record{UserID: u.ID, Data: json.RawMessage(`{"a":1}`)}
	if err := db.CreateRecord(ctx, r); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	// No statements of pgx's own: explain deallocates all.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, st := range postgres.PartitionKeyStatements() {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			t.Run(st.Name+"/"+mode, func(t *testing.T) {
				plan := explain(t, conn, mode, st.SQL, st.Args(u.ID, r.ID, "ada"))
				scanned := scannedPartitions(t, plan)
				table := "users"
				if strings.Contains(st.SQL, "FROM records") || strings.Contains(st.SQL, "UPDATE records") {
					table = "records"
				}
				if got := scanned[table]; len(got) != 1 {
					t.Errorf("%s scans partitions %v of %s, want one\n%s", st.Name, got, table, plan)
				}
			})
		}
	}
}

// explain prepares sql, runs EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE of it
// with args under plan_cache_mode = mode in a transaction it rolls back,
// and returns the plan.
func explain(t *testing.T, conn *pgx.Conn, mode, sql string, args []any) []byte {
	t.Helper()
	ctx := t.Context()
	// PREPARE outlives a rolled-back transaction: a failed run's too.
	if _, err := conn.Exec(ctx, "DEALLOCATE ALL"); err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	lits := make([]string, len(args))
	for i, a := range args {
		lits[i] = literal(a)
	}
	for _, stmt := range []string{
		"SET LOCAL plan_cache_mode = " + mode,
		"PREPARE pruned AS " + sql,
	} {
		if _, err := tx.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	var plan []byte
	q := "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE pruned(" + strings.Join(lits, ", ") + ")"
	if err := tx.QueryRow(ctx, q).Scan(&plan); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return plan
}

// literal is v as an SQL literal (the test's values only).
func literal(v any) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return "'" + strings.ReplaceAll(v, "'", "''") + "'"
	case time.Time:
		return "'" + v.Format(time.RFC3339Nano) + "'"
	case int:
		return fmt.Sprint(v)
	}
	panic(fmt.Sprintf("literal(%T)", v))
}

var partitionName = regexp.MustCompile(`^(users|records)_p[0-9]+$`)

// scannedPartitions returns the partitions the plan's nodes read (ran at
// least once), by partitioned table.
func scannedPartitions(t *testing.T, plan []byte) map[string][]string {
	t.Helper()
	var out []struct{ Plan map[string]any }
	if err := json.Unmarshal(plan, &out); err != nil || len(out) != 1 {
		t.Fatalf("plan %s: %v", plan, err)
	}
	scanned := map[string][]string{}
	var walk func(n map[string]any)
	walk = func(n map[string]any) {
		rel, _ := n["Relation Name"].(string)
		loops, _ := n["Actual Loops"].(float64)
		if m := partitionName.FindStringSubmatch(rel); m != nil && loops > 0 && strings.Contains(n["Node Type"].(string), "Scan") {
			if !slices.Contains(scanned[m[1]], rel) {
				scanned[m[1]] = append(scanned[m[1]], rel)
			}
		}
		children, _ := n["Plans"].([]any)
		for _, c := range children {
			if cm, ok := c.(map[string]any); ok {
				walk(cm)
			}
		}
	}
	walk(out[0].Plan)
	return scanned
}

// countPartitions returns how many partitions table has in url's database.
func countPartitions(t *testing.T, url, table string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_inherits WHERE inhparent = $1::regclass`, table).Scan(&n); err != nil {
		t.Fatalf("count partitions of %s: %v", table, err)
	}
	return n
}
