package server

import "time"

// StatsDays is how many days of sign-ups and records Stats covers.
const StatsDays = 30

// Stats is the lab's public analytics: users in total, and sign-ups and
// records created per day over the last StatsDays days (UTC, oldest
// first, days without any left out).
type Stats struct {
	Users int64
	Days  []DayStats
	// AsOf is when the figures were computed: the last refresh of
	// PostgreSQL's materialized views, or now where they are computed live.
	AsOf time.Time
}

// DayStats is one day's figures.
type DayStats struct {
	Day     time.Time // midnight UTC
	SignUps int64
	Records int64
}
