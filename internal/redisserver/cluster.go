package redisserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// ClusterOptions configures a Redis Cluster. Only Dir is required; the
// default is three masters with one replica each.
type ClusterOptions struct {
	Dir               string // each node gets Dir/<name>/
	Masters           int    // default 3 (the fewest Redis Cluster accepts)
	ReplicasPerMaster int    // default 1
	NodeTimeout       time.Duration
	Settings          map[string]string
	Logger            *slog.Logger
	DieWithParent     bool
}

// Cluster is a Redis Cluster of local servers. The hash slots are split
// evenly over the masters; replica i follows master i mod len(Masters).
// Nodes are named redis-master-N and redis-replica-N after the roles they
// were created with (a failover may swap them).
type Cluster struct {
	Masters  []*Server
	Replicas []*Server
}

// StartCluster starts the nodes, joins them into one cluster and returns
// once every node reports cluster_state:ok and every replica's link to its
// master is up. On failure it stops what it started.
func StartCluster(ctx context.Context, opts ClusterOptions) (c *Cluster, err error) {
	if opts.Dir == "" {
		return nil, errors.New("redisserver: ClusterOptions.Dir is required")
	}
	if opts.Masters == 0 {
		opts.Masters = 3
	}
	if opts.ReplicasPerMaster == 0 {
		opts.ReplicasPerMaster = 1
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*startTimeout)
		defer cancel()
	}
	names := make([]string, 0, opts.Masters*(1+opts.ReplicasPerMaster))
	for i := range opts.Masters {
		names = append(names, fmt.Sprintf("redis-master-%d", i))
	}
	for i := range opts.Masters * opts.ReplicasPerMaster {
		names = append(names, fmt.Sprintf("redis-replica-%d", i))
	}
	nodes := make([]*Server, len(names))
	defer func() {
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			for _, n := range nodes {
				if n != nil {
					_ = n.Stop(sctx)
				}
			}
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	for i, name := range names {
		g.Go(func() error {
			n, err := Start(gctx, Options{
				Dir: filepath.Join(opts.Dir, name), Name: name, Cluster: true, NodeTimeout: opts.NodeTimeout,
				Settings: opts.Settings, Logger: opts.Logger, DieWithParent: opts.DieWithParent,
			})
			nodes[i] = n
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	c = &Cluster{Masters: nodes[:opts.Masters], Replicas: nodes[opts.Masters:]}
	masters, replicas := c.nodes()
	if err := Join(ctx, masters, replicas); err != nil {
		return nil, err
	}
	if err := poll(ctx, func(ctx context.Context) error { return ClusterReady(ctx, masters, replicas) }); err != nil {
		return nil, fmt.Errorf("redis cluster not ok: %w", err)
	}
	return c, nil
}

func (c *Cluster) nodes() (masters, replicas []Node) {
	for _, s := range c.Masters {
		masters = append(masters, Node{Name: s.name, Port: s.Port(), ClusterPort: s.ClusterPort()})
	}
	for _, s := range c.Replicas {
		replicas = append(replicas, Node{Name: s.name, Port: s.Port(), ClusterPort: s.ClusterPort()})
	}
	return masters, replicas
}

// Nodes lists masters then replicas.
func (c *Cluster) Nodes() []*Server {
	return append(append([]*Server(nil), c.Masters...), c.Replicas...)
}

// Addrs lists every node's host:port, masters first: the seeds a cluster
// client (and the server's --redis flag) takes.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes() {
		out = append(out, n.Addr())
	}
	return out
}

// Stop stops every node, replicas first.
func (c *Cluster) Stop(ctx context.Context) error {
	var errs []error
	nodes := c.Nodes()
	for i := len(nodes) - 1; i >= 0; i-- {
		errs = append(errs, nodes[i].Stop(ctx))
	}
	return errors.Join(errs...)
}

// Node is one running cluster-mode server on 127.0.0.1, as Join and
// ClusterReady see it.
type Node struct {
	Name        string
	Port        int
	ClusterPort int
	// MeetIP is where the other nodes reach this one, when that is not
	// 127.0.0.1:Port (bus ClusterPort): a container's address on its
	// network, with MeetPort and MeetClusterPort the ports inside it.
	// Join still sends its commands to 127.0.0.1:Port (a published port).
	MeetIP                    string
	MeetPort, MeetClusterPort int
}

// meet is the address CLUSTER MEET names for n.
func (n Node) meet() (ip string, port, bus int) {
	if n.MeetIP == "" {
		return "127.0.0.1", n.Port, n.ClusterPort
	}
	return n.MeetIP, n.MeetPort, n.MeetClusterPort
}

// Addr is the node's host:port.
func (n Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// Join makes one cluster of started, empty cluster-mode servers: the same
// steps as `redis-cli --cluster create`, done directly. Slots are split
// evenly over the masters, every node gets a distinct config epoch, the
// first master MEETs the others, and once every node knows every other,
// replica i REPLICATEs master i mod len(masters). It does not wait for the
// cluster to be ok; poll ClusterReady for that.
func Join(ctx context.Context, masters, replicas []Node) error {
	if len(masters) == 0 {
		return errors.New("join redis cluster: no masters")
	}
	all := append(append([]Node(nil), masters...), replicas...)
	ids := map[string]string{}
	for i, n := range all {
		id, err := do(ctx, n.Addr(), "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("join redis cluster: %s: CLUSTER MYID: %w", n.Name, err)
		}
		ids[n.Name] = id
		if err := do(ctx, n.Addr(), "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("join redis cluster: %s: SET-CONFIG-EPOCH: %w", n.Name, err)
		}
	}
	for i, m := range masters {
		lo, hi := i*16384/len(masters), (i+1)*16384/len(masters)-1
		if err := do(ctx, m.Addr(), "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			return fmt.Errorf("join redis cluster: %s: ADDSLOTSRANGE %d %d: %w", m.Name, lo, hi, err)
		}
	}
	first := masters[0]
	for _, n := range all[1:] {
		ip, port, bus := n.meet()
		if err := do(ctx, first.Addr(), "CLUSTER", "MEET", ip, port, bus).Err(); err != nil {
			return fmt.Errorf("join redis cluster: %s: CLUSTER MEET %s: %w", first.Name, n.Name, err)
		}
	}
	err := poll(ctx, func(ctx context.Context) error {
		for _, n := range all {
			nodes, err := do(ctx, n.Addr(), "CLUSTER", "NODES").Text()
			if err != nil {
				return err
			}
			known := 0
			for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
				if line != "" && !strings.Contains(line, "handshake") {
					known++
				}
			}
			if known < len(all) {
				return fmt.Errorf("%s knows %d of %d nodes", n.Name, known, len(all))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("join redis cluster: %w", err)
	}
	for i, r := range replicas {
		m := masters[i%len(masters)]
		if err := do(ctx, r.Addr(), "CLUSTER", "REPLICATE", ids[m.Name]).Err(); err != nil {
			return fmt.Errorf("join redis cluster: %s: CLUSTER REPLICATE %s: %w", r.Name, m.Name, err)
		}
	}
	return nil
}

// ClusterReady checks once that every node reports cluster_state:ok and
// knows every node, and that every replica's link to its master is up.
func ClusterReady(ctx context.Context, masters, replicas []Node) error {
	all := append(append([]Node(nil), masters...), replicas...)
	want := strconv.Itoa(len(all))
	for _, n := range all {
		info, err := do(ctx, n.Addr(), "CLUSTER", "INFO").Text()
		if err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
		if s := infoField(info, "cluster_state"); s != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", n.Name, s)
		}
		if k := infoField(info, "cluster_known_nodes"); k != want {
			return fmt.Errorf("%s: knows %s of %s nodes", n.Name, k, want)
		}
	}
	for _, r := range replicas {
		info, err := do(ctx, r.Addr(), "INFO", "replication").Text()
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		if role, link := infoField(info, "role"), infoField(info, "master_link_status"); role != "slave" || link != "up" {
			return fmt.Errorf("%s: role:%s master_link_status:%s", r.Name, role, link)
		}
	}
	return nil
}

// infoField returns the value of "key:value" in an INFO or CLUSTER INFO reply.
func infoField(info, key string) string {
	for _, line := range strings.Split(info, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == key {
			return v
		}
	}
	return ""
}

// poll calls check until it succeeds or ctx ends; the error then includes
// check's last complaint.
func poll(ctx context.Context, check func(context.Context) error) error {
	t := time.NewTicker(25 * time.Millisecond)
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
