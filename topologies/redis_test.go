package topologies_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"scalelab/topologies/topotest"
)

func TestRedisFaults(t *testing.T) {
	t.Parallel()
	r := topotest.Redis(t)
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1, ReadTimeout: 300 * time.Millisecond})
	t.Cleanup(func() { c.Close() })

	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := r.Pause(); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Errorf("PING on a paused server succeeded, want a timeout")
	}
	if err := r.Resume(); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Errorf("GET k after resume = %q, %v; want v", got, err)
	}
	pid := r.PID()
	if err := r.Kill(ctx); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if r.Running() || processExists(pid) {
		t.Fatalf("pid %d still running after Kill", pid)
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("PING after restart: %v", err)
	}
	pid = r.PID()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if processExists(pid) || listeningOn(r.Addr()) {
		t.Errorf("after Stop: pid %d exists=%v, %s listening=%v", pid, processExists(pid), r.Addr(), listeningOn(r.Addr()))
	}
	if err := r.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRedisClusterStoresOnEveryMaster(t *testing.T) {
	t.Parallel()
	rc := topotest.RedisCluster(t)
	ctx := context.Background()
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: rc.Addrs()})
	t.Cleanup(func() { c.Close() })
	for i := range 300 {
		if err := c.Set(ctx, fmt.Sprintf("key:%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET key:%d: %v", i, err)
		}
	}
	for _, m := range rc.Masters {
		mc := redis.NewClient(&redis.Options{Addr: m.Addr()})
		n, err := mc.DBSize(ctx).Result()
		mc.Close()
		if err != nil || n == 0 {
			t.Errorf("%s DBSIZE = %d, %v; want > 0", m.Name(), n, err)
		}
	}
}
