package sqlite

import (
	"context"
	"fmt"
	"time"

	"scalelab/server"
)

const microsPerDay = 24 * 60 * 60 * 1_000_000

// Stats computes the analytics live, as of now: SQLite has no
// materialized views, and phase 1's databases are small enough that the
// aggregate is cheap (PostgreSQL serves them from views instead).
func (db *DB) Stats(ctx context.Context) (*server.Stats, error) {
	defer db.metrics.Since("stats", time.Now())
	st := server.Stats{AsOf: server.Now()}
	if err := db.reader.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&st.Users); err != nil {
		return nil, fmt.Errorf("compute stats: %w", err)
	}
	first := st.AsOf.Truncate(24*time.Hour).AddDate(0, 0, 1-server.StatsDays)
	rows, err := db.reader.QueryContext(ctx, `SELECT day, sum(s), sum(r) FROM (
			SELECT created_at / ?1 AS day, 1 AS s, 0 AS r FROM users WHERE created_at >= ?2
			UNION ALL
			SELECT created_at / ?1, 0, 1 FROM records WHERE created_at >= ?2)
		GROUP BY day ORDER BY day`, int64(microsPerDay), micros(first))
	if err != nil {
		return nil, fmt.Errorf("compute stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var day int64
		var d server.DayStats
		if err := rows.Scan(&day, &d.SignUps, &d.Records); err != nil {
			return nil, fmt.Errorf("compute stats: %w", err)
		}
		d.Day = fromMicros(day * microsPerDay)
		st.Days = append(st.Days, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("compute stats: %w", err)
	}
	return &st, nil
}
