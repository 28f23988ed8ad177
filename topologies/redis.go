package topologies

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"scalelab/internal/redisserver"
)

// RedisOptions configures one Redis server. The zero value is a standalone
// server named "redis" on a free port.
type RedisOptions struct {
	// Name names the server in logs and in a topology ("redis",
	// "redis-master-0"); default "redis".
	Name string
	// Port is the client port; 0 picks a free one.
	Port int
	// Cluster enables cluster mode. The server then waits to be joined
	// (StartRedisCluster does that).
	Cluster bool
	// ClusterPort is the cluster bus port (Redis' default is Port+10000);
	// 0 picks a free one.
	ClusterPort int
	// ClusterNodeTimeout is how long a node may be unreachable before it is
	// failed over; default 2s, short so that fault tests finish quickly.
	ClusterNodeTimeout time.Duration
	// Settings are extra redis.conf directives ("maxmemory": "256mb").
	Settings map[string]string
	// Logger receives start and stop events; nil discards them.
	Logger *slog.Logger
	// DieWithParent has the kernel kill the server when this process
	// dies (for tests).
	DieWithParent bool
}

// Redis is one redis-server process on 127.0.0.1, with no persistence.
// Stop, Kill, Pause, Resume and Restart act on the process; Restart keeps
// the port (and, in a cluster, the node's identity from nodes.conf).
type Redis struct {
	daemon
	opts        RedisOptions
	port        int
	clusterPort int
}

// StartRedis starts a Redis server whose config, log and data live in dir
// (created if needed) and returns once it answers PING. The caller stops it
// with Stop.
func StartRedis(ctx context.Context, dir string, opts RedisOptions) (*Redis, error) {
	return startRedis(ctx, dir, opts, newPortPicker())
}

func startRedis(ctx context.Context, dir string, opts RedisOptions, ports *portPicker) (*Redis, error) {
	r, err := newRedis(dir, opts, ports)
	if err != nil {
		return nil, err
	}
	// A port picked free may be taken by someone else before redis binds
	// it; with picked ports, try again on fresh ones.
	for attempt := 1; ; attempt++ {
		err = r.start(ctx)
		if err == nil || opts.Port != 0 || attempt == 3 || !strings.Contains(err.Error(), "in use") {
			break
		}
		if err := r.repick(ports); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}

// newRedis writes the config and prepares the daemon without starting it.
func newRedis(dir string, opts RedisOptions, ports *portPicker) (*Redis, error) {
	if opts.Name == "" {
		opts.Name = "redis"
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("redis dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("redis dir: %w", err)
	}
	bin, err := lookBinary("redis-server")
	if err != nil {
		return nil, err
	}
	r := &Redis{opts: opts, port: opts.Port, clusterPort: opts.ClusterPort}
	if r.port == 0 {
		if r.port, err = ports.pick(); err != nil {
			return nil, err
		}
	}
	if opts.Cluster && r.clusterPort == 0 {
		if r.clusterPort, err = ports.pick(); err != nil {
			return nil, err
		}
	}
	r.daemon = daemon{
		name: opts.Name,
		kind: "redis",
		dir:  dir,
		spec: procSpec{
			path:    bin,
			args:    []string{filepath.Join(dir, "redis.conf")},
			dir:     dir,
			logPath: filepath.Join(dir, "redis.log"),

			dieWithParent: opts.DieWithParent,
		},
		log: opts.Logger,
		ready: func(ctx context.Context) error {
			pong, err := redisDo(ctx, r.Addr(), "PING")
			if err != nil {
				return err
			}
			if pong != "PONG" {
				return fmt.Errorf("PING answered %q", pong)
			}
			return nil
		},
		shutdown: func(ctx context.Context) error {
			// NOW: do not wait for replicas to catch up, this is a cache.
			_, err := redisDo(ctx, r.Addr(), "SHUTDOWN", "NOSAVE", "NOW")
			if err != nil && !isConnClosed(err) {
				return err
			}
			return nil
		},
		stopSignal: syscall.SIGTERM,
		stopGrace:  5 * time.Second,
	}
	if err := r.writeConfig(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Redis) repick(ports *portPicker) error {
	var err error
	if r.port, err = ports.pick(); err != nil {
		return err
	}
	if r.clusterPort != 0 {
		if r.clusterPort, err = ports.pick(); err != nil {
			return err
		}
	}
	return r.writeConfig()
}

func (r *Redis) writeConfig() error {
	conf := "# written by scalelab's topology runner\n" + redisserver.Conf(redisserver.Config{
		Dir: r.dir, Port: r.port, ClusterPort: r.clusterPort, NodeTimeout: r.opts.ClusterNodeTimeout, Settings: r.opts.Settings,
	})
	if err := os.WriteFile(filepath.Join(r.dir, "redis.conf"), []byte(conf), 0o644); err != nil {
		return fmt.Errorf("write redis.conf: %w", err)
	}
	return nil
}

// Addr is the server's host:port on 127.0.0.1.
func (r *Redis) Addr() string { return loopback(r.port) }

// Port is the client port.
func (r *Redis) Port() int { return r.port }

// ClusterPort is the cluster bus port, 0 for a standalone server.
func (r *Redis) ClusterPort() int { return r.clusterPort }

// Dir holds redis.conf, redis.log and, in a cluster, nodes.conf.
func (r *Redis) Dir() string { return r.dir }

// isConnClosed tells the expected end of a SHUTDOWN: the server closes the
// connection instead of answering.
func isConnClosed(err error) bool {
	s := err.Error()
	return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset")
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
