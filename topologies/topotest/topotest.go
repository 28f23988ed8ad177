// Package topotest gives tests of other packages real infrastructure from
// the topology runner: a standalone Redis, a Redis Cluster, or a whole
// phase, each started in the test's temporary directory and stopped by
// t.Cleanup (also when the test fails or panics).
//
// When a needed program is not installed the test is skipped with a
// message naming the Debian package and `make deps`; set
// SCALELAB_REQUIRE_TOPOLOGY=1 (as CI does) to fail instead.
package topotest

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"scalelab/topologies"
)

// startTimeout bounds every bring-up a helper does.
const startTimeout = 90 * time.Second

// Redis starts a standalone Redis server on a free port and stops it when
// the test ends. Use r.Addr() as the server address.
func Redis(tb testing.TB) *topologies.Redis {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	r, err := topologies.StartRedis(ctx, tb.TempDir(), topologies.RedisOptions{})
	if err != nil {
		skipOrFatal(tb, err)
	}
	tb.Cleanup(func() { stop(tb, r.Stop) })
	return r
}

// RedisCluster starts a Redis Cluster of three masters with one replica
// each and stops it when the test ends. Use c.Addrs() as the seeds.
func RedisCluster(tb testing.TB) *topologies.RedisCluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := topologies.StartRedisCluster(ctx, tb.TempDir(), topologies.RedisClusterOptions{})
	if err != nil {
		skipOrFatal(tb, err)
	}
	tb.Cleanup(func() { stop(tb, c.Stop) })
	return c
}

func stop(tb testing.TB, fn func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fn(ctx); err != nil {
		tb.Errorf("stop: %v", err)
	}
}

// skipOrFatal skips the test when programs are missing (unless
// SCALELAB_REQUIRE_TOPOLOGY=1) and fails it for every other error.
func skipOrFatal(tb testing.TB, err error) {
	tb.Helper()
	var missing *topologies.MissingBinariesError
	if errors.As(err, &missing) && os.Getenv("SCALELAB_REQUIRE_TOPOLOGY") != "1" {
		tb.Skip(err)
	}
	tb.Fatal(err)
}
