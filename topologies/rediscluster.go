package topologies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"

	"scalelab/internal/redisserver"
)

// RedisClusterOptions configures a Redis Cluster. The zero value is three
// masters with one replica each.
type RedisClusterOptions struct {
	Masters           int           // default 3
	ReplicasPerMaster int           // default 1
	NodeTimeout       time.Duration // cluster-node-timeout; default 2s
	Settings          map[string]string
	Logger            *slog.Logger
	DieWithParent     bool // kill the nodes when this process dies (tests)
}

// RedisCluster is a Redis Cluster of local redis-server processes. The
// hash slots are split evenly over the masters; replica i follows master
// i mod Masters. Node names are redis-master-N and redis-replica-N (the
// roles they were created with; a failover may swap them).
type RedisCluster struct {
	Masters  []*Redis
	Replicas []*Redis
}

// StartRedisCluster starts the nodes in dir/<name>/, joins them into one
// cluster (the same steps as `redis-cli --cluster create`, done directly)
// and returns once every node reports cluster_state:ok and every replica's
// link to its master is up. On failure it stops what it started.
func StartRedisCluster(ctx context.Context, dir string, opts RedisClusterOptions) (*RedisCluster, error) {
	return startRedisCluster(ctx, dir, opts, newPortPicker(), nil)
}

func startRedisCluster(ctx context.Context, dir string, opts RedisClusterOptions, ports *portPicker, started func(*Redis)) (c *RedisCluster, err error) {
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.ReplicasPerMaster == 0 {
		opts.ReplicasPerMaster = 1
	}
	if opts.Logger == nil {
		opts.Logger = discardLogger()
	}
	c = &RedisCluster{}
	ro := func(name string) RedisOptions {
		return RedisOptions{Name: name, Cluster: true, ClusterNodeTimeout: opts.NodeTimeout, Settings: opts.Settings,
			Logger: opts.Logger, DieWithParent: opts.DieWithParent}
	}
	for i := range opts.Masters {
		name := fmt.Sprintf("redis-master-%d", i)
		r, err := newRedis(filepath.Join(dir, name), ro(name), ports)
		if err != nil {
			return nil, err
		}
		c.Masters = append(c.Masters, r)
	}
	for i := range opts.Masters * opts.ReplicasPerMaster {
		name := fmt.Sprintf("redis-replica-%d", i)
		r, err := newRedis(filepath.Join(dir, name), ro(name), ports)
		if err != nil {
			return nil, err
		}
		c.Replicas = append(c.Replicas, r)
	}
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			_ = c.Stop(sctx)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	for _, n := range c.Nodes() {
		if started != nil {
			n.onStart = func() { started(n) }
		}
		g.Go(func() error { return n.start(gctx) })
	}
	if err := g.Wait(); err != nil {
		return c, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}
	if err := c.create(ctx); err != nil {
		return c, fmt.Errorf("create redis cluster: %w", err)
	}
	if err := poll(ctx, c.Ready); err != nil {
		return c, fmt.Errorf("redis cluster not ok: %w", err)
	}
	return c, nil
}

// create joins the started nodes into one cluster (redisserver.Join:
// slots to masters, distinct config epochs, MEET, then REPLICATE).
func (c *RedisCluster) create(ctx context.Context) error {
	masters, replicas := c.nodes()
	return redisserver.Join(ctx, masters, replicas)
}

// Ready checks once that every node reports cluster_state:ok and knows
// every node, and that every replica's link to its master is up
// (redisserver.ClusterReady).
func (c *RedisCluster) Ready(ctx context.Context) error {
	masters, replicas := c.nodes()
	return redisserver.ClusterReady(ctx, masters, replicas)
}

// nodes are the cluster's masters and replicas as redisserver sees them.
func (c *RedisCluster) nodes() (masters, replicas []redisserver.Node) {
	node := func(r *Redis) redisserver.Node {
		return redisserver.Node{Name: r.name, Port: r.port, ClusterPort: r.clusterPort}
	}
	for _, m := range c.Masters {
		masters = append(masters, node(m))
	}
	for _, r := range c.Replicas {
		replicas = append(replicas, node(r))
	}
	return masters, replicas
}

// Nodes lists masters then replicas.
func (c *RedisCluster) Nodes() []*Redis {
	return append(append([]*Redis(nil), c.Masters...), c.Replicas...)
}

// Addrs lists every node's host:port, masters first: what a cluster client
// (and the server's --redis flag) takes as seeds.
func (c *RedisCluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes() {
		out = append(out, n.Addr())
	}
	return out
}

// Stop stops every node, replicas first.
func (c *RedisCluster) Stop(ctx context.Context) error {
	var errs []error
	nodes := c.Nodes()
	for i := len(nodes) - 1; i >= 0; i-- {
		errs = append(errs, nodes[i].Stop(ctx))
	}
	return errors.Join(errs...)
}

// poll calls check until it succeeds or ctx ends; the error then includes
// check's last complaint.
func poll(ctx context.Context, check func(context.Context) error) error {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := check(pctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last check: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}
