package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"scalelab/server"
)

// statsLockID is the advisory lock under which one instance refreshes the
// stats views while others skip ("scalest" in ASCII).
const statsLockID int64 = 0x7363616c65737473

// Stats returns the analytics from the materialized views, as of their
// last refresh (RefreshStats).
func (db *DB) Stats(ctx context.Context) (*server.Stats, error) {
	var st server.Stats
	err := db.read(ctx, "stats", func(q querier) error {
		st = server.Stats{}
		if err := q.QueryRow(ctx, `SELECT users, as_of FROM stats_totals`).Scan(&st.Users, &st.AsOf); err != nil {
			return err
		}
		days, err := statsDays(ctx, q, `SELECT coalesce(s.day, r.day), coalesce(s.n, 0), coalesce(r.n, 0)
			FROM (SELECT * FROM stats_signups_daily WHERE day > $1::date) s
			FULL JOIN (SELECT * FROM stats_records_daily WHERE day > $1::date) r ON r.day = s.day ORDER BY 1`, statsSince(st.AsOf))
		st.Days = days
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load stats: %w", err)
	}
	st.AsOf = st.AsOf.UTC()
	return &st, nil
}

// LiveStats computes what Stats serves straight from the tables, as of
// now: what the views save (BenchmarkStats compares the two).
func (db *DB) LiveStats(ctx context.Context) (*server.Stats, error) {
	st := server.Stats{AsOf: server.Now()}
	err := db.read(ctx, "stats", func(q querier) error {
		if err := q.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&st.Users); err != nil {
			return err
		}
		days, err := statsDays(ctx, q, `SELECT coalesce(s.day, r.day), coalesce(s.n, 0), coalesce(r.n, 0)
			FROM (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM users
			      WHERE created_at >= $1::date::timestamp AT TIME ZONE 'UTC' GROUP BY 1) s
			FULL JOIN (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM records
			      WHERE created_at >= $1::date::timestamp AT TIME ZONE 'UTC' GROUP BY 1) r ON r.day = s.day ORDER BY 1`,
			statsSince(st.AsOf).AddDate(0, 0, 1))
		st.Days = days
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("compute stats: %w", err)
	}
	return &st, nil
}

// statsSince is the day before the first day of the window ending on
// asOf's day.
func statsSince(asOf time.Time) time.Time {
	d := asOf.UTC().Truncate(24 * time.Hour)
	return d.AddDate(0, 0, -server.StatsDays)
}

func statsDays(ctx context.Context, q querier, sql string, since time.Time) ([]server.DayStats, error) {
	rows, err := q.Query(ctx, sql, since.Format(time.DateOnly))
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (server.DayStats, error) {
		var d server.DayStats
		err := row.Scan(&d.Day, &d.SignUps, &d.Records)
		d.Day = d.Day.UTC()
		return d, err
	})
}

// RefreshStats refreshes the stats views CONCURRENTLY (readers keep the
// old figures meanwhile) in one transaction, under an advisory lock: when
// another instance holds it, it returns false at once without refreshing.
func (db *DB) RefreshStats(ctx context.Context) (bool, error) {
	refreshed := false
	err := pgx.BeginFunc(ctx, db.primary, func(tx pgx.Tx) error {
		var ok bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, statsLockID).Scan(&ok); err != nil || !ok {
			return err
		}
		for _, v := range []string{"stats_signups_daily", "stats_records_daily", "stats_totals"} {
			if _, err := tx.Exec(ctx, `REFRESH MATERIALIZED VIEW CONCURRENTLY `+v); err != nil {
				return fmt.Errorf("%s: %w", v, err)
			}
		}
		refreshed = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("refresh stats views: %w", err)
	}
	return refreshed, nil
}
