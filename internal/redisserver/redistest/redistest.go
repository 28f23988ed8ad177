// Package redistest gives tests a real, throwaway Redis of their own
// (package redisserver), never one that happens to run on the machine:
//
//	func TestSomething(t *testing.T) {
//		r := redistest.Start(t) // r.Addr() is 127.0.0.1:PORT
//		...
//		r.Pause() // or Kill, Resume, Restart: fault tests act on the process
//	}
//
// Each server runs in the test's temporary directory and is stopped by its
// PID when the test ends, failed or not; a failed test gets the end of the
// server's log. The servers die with the test binary, so one killed by
// go test -timeout leaves nothing running.
//
// Nothing is skipped: when redis-server is not installed the test fails
// with a message naming the Debian package and `make deps`.
package redistest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"scalelab/internal/redisserver"
)

// startTimeout bounds a start; a cluster of six nodes takes about a second.
const startTimeout = time.Minute

// Start starts a standalone Redis server for tb and stops it when tb ends.
func Start(tb testing.TB) *redisserver.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := redisserver.Start(ctx, redisserver.Options{Dir: tb.TempDir(), Logger: logger(), DieWithParent: true})
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			logTail(tb, s)
		}
		stop(tb, s.Stop)
	})
	return s
}

// StartCluster starts a Redis Cluster of three masters with one replica
// each for tb and stops it when tb ends. Its Addrs() are the seeds.
func StartCluster(tb testing.TB) *redisserver.Cluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := redisserver.StartCluster(ctx, redisserver.ClusterOptions{Dir: tb.TempDir(), Logger: logger(), DieWithParent: true})
	if err != nil {
		tb.Fatalf("redistest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, n := range c.Nodes() {
				logTail(tb, n)
			}
		}
		stop(tb, c.Stop)
	})
	return c
}

func stop(tb testing.TB, fn func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fn(ctx); err != nil {
		tb.Errorf("redistest: %v", err)
	}
}

func logTail(tb testing.TB, s *redisserver.Server) {
	tb.Helper()
	b, err := os.ReadFile(s.LogFile())
	if err != nil {
		return
	}
	tb.Logf("redistest: end of %s:\n%s", s.LogFile(), b[max(len(b)-2048, 0):])
}

// logger writes warnings to stderr, or everything with
// SCALELAB_REDIS_LOG=debug.
func logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SCALELAB_REDIS_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
