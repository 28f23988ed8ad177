-- +goose Up
-- Analytics for GET /api/v1/stats (issue 12), served from materialized views
-- that a periodic job refreshes CONCURRENTLY (readers are never blocked; the
-- unique indexes are what CONCURRENTLY needs). Per day over all time, so the
-- 30-day window moves without a refresh; stats_totals' as_of is the
-- refresh's transaction time, the age of the data.
CREATE MATERIALIZED VIEW stats_signups_daily AS
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM users GROUP BY 1;
CREATE UNIQUE INDEX stats_signups_daily_day ON stats_signups_daily (day);

CREATE MATERIALIZED VIEW stats_records_daily AS
    SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM records GROUP BY 1;
CREATE UNIQUE INDEX stats_records_daily_day ON stats_records_daily (day);

CREATE MATERIALIZED VIEW stats_totals AS
    SELECT 1 AS id, (SELECT count(*) FROM users) AS users, now() AS as_of;
CREATE UNIQUE INDEX stats_totals_id ON stats_totals (id);

-- +goose Down
DROP MATERIALIZED VIEW stats_totals;
DROP MATERIALIZED VIEW stats_records_daily;
DROP MATERIALIZED VIEW stats_signups_daily;
