package lab

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"scalelab/internal/pgserver/pgtest"
)

// On a real PostgreSQL: settling a seeded database runs (VACUUM, ANALYZE,
// CHECKPOINT need no transaction and a superuser), and the bytes per user
// count the tables' partitions when they are partitioned, as phase 4's are.
func TestSettleAndSizePostgres(t *testing.T) {
	srv := pgtest.New(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		schema string
	}{
		{"plain", `CREATE TABLE users (id bigint PRIMARY KEY, name text);
			CREATE TABLE records (id bigint PRIMARY KEY, user_id bigint, data text)`},
		{"partitioned", `CREATE TABLE users (id bigint PRIMARY KEY, name text) PARTITION BY HASH (id);
			CREATE TABLE users_0 PARTITION OF users FOR VALUES WITH (MODULUS 2, REMAINDER 0);
			CREATE TABLE users_1 PARTITION OF users FOR VALUES WITH (MODULUS 2, REMAINDER 1);
			CREATE TABLE records (id bigint, user_id bigint, data text, PRIMARY KEY (user_id, id)) PARTITION BY HASH (user_id);
			CREATE TABLE records_0 PARTITION OF records FOR VALUES WITH (MODULUS 2, REMAINDER 0);
			CREATE TABLE records_1 PARTITION OF records FOR VALUES WITH (MODULUS 2, REMAINDER 1)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t, srv)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, tc.schema); err != nil {
				t.Fatalf("schema: %v", err)
			}
			if _, err := conn.Exec(ctx, `INSERT INTO users SELECT i, repeat('x', 200) FROM generate_series(1, 2000) i;
				INSERT INTO records SELECT i, i, repeat('y', 100) FROM generate_series(1, 2000) i`); err != nil {
				t.Fatalf("rows: %v", err)
			}
			if err := settleDatabase(ctx, dsn, nil); err != nil {
				t.Fatalf("settleDatabase: %v", err)
			}
			var analyzed bool
			if err := conn.QueryRow(ctx, `SELECT bool_and(last_analyze IS NOT NULL) FROM pg_stat_user_tables WHERE relname LIKE 'users%'`).Scan(&analyzed); err != nil || !analyzed {
				t.Errorf("users not analyzed after settling (%v)", err)
			}
			per, err := dataBytesPerUser(ctx, dsn)
			if err != nil {
				t.Fatalf("dataBytesPerUser: %v", err)
			}
			// Each user holds at least its 200 + 100 bytes of text.
			if per < 300 || per > 5000 {
				t.Errorf("bytes per user = %v, want 300 to 5,000", per)
			}
		})
	}
}
