package lab

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Settling the database after a bulk seed.
//
// A seed writes a whole table in seconds. The database then owes work for
// it: PostgreSQL's autovacuum and autoanalyze visit the new tables, the next
// checkpoint writes every dirty page, the kernel flushes the page cache
// behind it, and replicas replay the WAL. Left alone, that work lands in the
// first measured seconds as stalls of a few hundred milliseconds that have
// nothing to do with the load (seen as the first capacity steps failing at
// rates the later ones pass). So, as pgbench does before a run, the lab pays
// it up front: VACUUM (ANALYZE), CHECKPOINT, sync, and wait until every
// replica has replayed the primary's WAL; for SQLite, ANALYZE and a
// truncating WAL checkpoint.

// replayTimeout bounds the wait for the replicas to catch up after a seed.
const replayTimeout = 2 * time.Minute

// settleDatabase does the work a bulk seed left for the database dsn (the
// primary when replicaURLs are given) before anything is measured.
func settleDatabase(ctx context.Context, dsn string, replicaURLs []string) error {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		if err := settleSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:")); err != nil {
			return err
		}
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		if err := settlePostgres(ctx, dsn, replicaURLs); err != nil {
			return err
		}
	default:
		return fmt.Errorf("settle the database: unknown kind of URL %q", dsn)
	}
	syscall.Sync()
	return nil
}

func settleSQLite(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		return fmt.Errorf("settle %s: open: %w", path, err)
	}
	defer db.Close()
	for _, q := range []string{`ANALYZE`, `PRAGMA wal_checkpoint(TRUNCATE)`} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("settle %s: %s: %w", path, q, err)
		}
	}
	return nil
}

func settlePostgres(ctx context.Context, dsn string, replicaURLs []string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return fmt.Errorf("settle the database: connect to the primary: %w", err)
	}
	defer conn.Close(context.Background())
	for _, q := range []string{`VACUUM (ANALYZE)`, `CHECKPOINT`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("settle the database: %s: %w", q, err)
		}
	}
	var lsn string
	if err := conn.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return fmt.Errorf("settle the database: primary's WAL position: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	for i, u := range replicaURLs {
		if err := waitReplayed(ctx, u, lsn); err != nil {
			return fmt.Errorf("settle the database: replica %d: %w", i+1, err)
		}
	}
	return nil
}

// waitReplayed polls the replica at url until it has replayed the WAL up
// to lsn.
func waitReplayed(ctx context.Context, url, lsn string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		var done bool
		err := conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&done)
		if err != nil {
			return fmt.Errorf("replay position: %w", err)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not replayed up to %s: %w", lsn, ctx.Err())
		case <-tick.C:
		}
	}
}
