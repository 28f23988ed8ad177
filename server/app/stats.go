package app

import (
	"context"
	"log/slog"
	"time"
)

// statsRefresher is a store whose stats come from views that need
// refreshing (PostgreSQL's materialized views).
type statsRefresher interface {
	RefreshStats(ctx context.Context) (bool, error)
}

// startStatsRefresh refreshes the store's stats views every interval until
// ctx ends or the returned stop is called (which waits for the goroutine).
// Every instance runs it; the store's advisory lock lets one refresh at a
// time and the others skip that round.
func startStatsRefresh(ctx context.Context, store statsRefresher, interval time.Duration, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			start := time.Now()
			ok, err := store.RefreshStats(ctx)
			switch {
			case err != nil && ctx.Err() == nil:
				log.Warn("stats views: refresh failed", "err", err)
			case ok:
				log.Debug("stats views refreshed", "took", time.Since(start).Round(time.Millisecond))
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}
