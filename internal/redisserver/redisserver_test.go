package redisserver_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"scalelab/internal/redisserver"
	"scalelab/internal/redisserver/redistest"
)

func TestConf(t *testing.T) {
	standalone := redisserver.Conf(redisserver.Config{Dir: "/d", Port: 7000, Settings: map[string]string{"maxmemory": "64mb", "appendfsync": "no"}})
	for _, want := range []string{"port 7000\n", "bind 127.0.0.1\n", "dir /d\n", "save \"\"\n", "appendonly no\n", "repl-diskless-sync-delay 0\n", "appendfsync no\nmaxmemory 64mb\n"} {
		if !strings.Contains(standalone, want) {
			t.Errorf("Conf(standalone) lacks %q:\n%s", want, standalone)
		}
	}
	if strings.Contains(standalone, "cluster") {
		t.Errorf("Conf(standalone) mentions cluster:\n%s", standalone)
	}
	node := redisserver.Conf(redisserver.Config{Dir: "/d", Port: 7000, ClusterPort: 17000})
	for _, want := range []string{"cluster-enabled yes\n", "cluster-config-file /d/nodes.conf\n", "cluster-port 17000\n", "cluster-node-timeout 2000\n"} {
		if !strings.Contains(node, want) {
			t.Errorf("Conf(cluster node) lacks %q:\n%s", want, node)
		}
	}
}

// TestFaults: the process can be paused, resumed, killed, restarted on the
// same port and stopped, and each does what a client would see.
func TestFaults(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
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
	if r.PID() != 0 || processExists(pid) {
		t.Fatalf("pid %d still running after Kill", pid)
	}
	if err := r.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Errorf("PING after restart: %v", err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Errorf("DBSIZE after a kill and restart = %d, %v; want 0 (no persistence)", n, err)
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

// TestStopPaused: a paused server is still stopped, within the grace period.
func TestStopPaused(t *testing.T) {
	t.Parallel()
	r := redistest.Start(t)
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	pid := r.PID()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Fatalf("Stop of a paused server: %v", err)
	}
	if processExists(pid) {
		t.Errorf("pid %d still running after Stop", pid)
	}
}

func TestStartErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	if _, err := redisserver.Start(ctx, redisserver.Options{}); err == nil {
		t.Error("Start without Dir succeeded")
	}
	// A port that is taken, asked for explicitly: the error quotes the log.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	s, err := redisserver.Start(ctx, redisserver.Options{Dir: dir, Port: port, DieWithParent: true})
	if err == nil {
		s.Stop(ctx)
		t.Fatalf("Start on taken port %d succeeded", port)
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("Start on a taken port: %v; want the log's \"in use\"", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "redis.conf")); err != nil {
		t.Errorf("redis.conf: %v", err)
	}
}

func TestClusterStoresOnEveryMaster(t *testing.T) {
	t.Parallel()
	rc := redistest.StartCluster(t)
	if len(rc.Masters) != 3 || len(rc.Replicas) != 3 {
		t.Fatalf("cluster of %d masters, %d replicas; want 3 and 3", len(rc.Masters), len(rc.Replicas))
	}
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
	for _, r := range rc.Replicas {
		rcl := redis.NewClient(&redis.Options{Addr: r.Addr()})
		role, err := rcl.Do(ctx, "ROLE").Slice()
		rcl.Close()
		if err != nil || len(role) == 0 || role[0] != "slave" {
			t.Errorf("%s ROLE = %v, %v; want slave", r.Name(), role, err)
		}
	}
}

// processExists reports whether pid names a live, non-zombie process.
func processExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func listeningOn(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
