package topologies

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"scalelab/internal/pgserver"
)

// stopRank orders Down: entry tiers first, the primary last. Components of
// one rank stop concurrently.
func stopRank(c ComponentInfo) int {
	switch c.Kind {
	case "varnish", "prometheus", "exporter":
		return 0
	case "haproxy":
		return 1
	case "app", "worker":
		return 2
	case "pgbouncer", "redis", "toxiproxy":
		return 3
	case "postgres":
		if c.Name == "primary" {
			return 5
		}
		return 4
	}
	return 2
}

// Down stops every component, in reverse dependency order, by PID or its
// own stop command (pg_ctl stop, SHUTDOWN NOSAVE), logs what it stopped,
// and marks topology.json as stopped. A second Down does nothing. The
// run's folder (data, configs, logs) is left for inspection.
func (t *Topology) Down(ctx context.Context) error {
	if t == nil || t.rt == nil {
		return nil
	}
	rt := t.rt
	rt.downMu.Lock()
	defer rt.downMu.Unlock()
	rt.mu.Lock()
	if rt.stoppedAt != nil {
		rt.mu.Unlock()
		rt.log.Info("topology already down", "dir", t.Dir)
		return nil
	}
	members := slices.Clone(rt.members)
	rt.mu.Unlock()

	start := time.Now()
	before := t.Components()
	ports := t.Ports()
	// A paused component cannot act on a stop request; neither can a
	// paused primary serve its replicas' last requests.
	for _, m := range members {
		_ = m.Resume()
	}
	byRank := map[int][]member{}
	for _, m := range members {
		r := stopRank(m.info())
		byRank[r] = append(byRank[r], m)
	}
	var errs []error
	stopped := 0
	for rank := range 6 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, m := range byRank[rank] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pid, s := m.PID(), time.Now()
				if pid == 0 {
					return
				}
				err := m.Stop(ctx)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					rt.log.Error("stop failed", "component", m.Name(), "pid", pid, "err", err)
					return
				}
				stopped++
				rt.log.Info("stopped", "component", m.Name(), "pid", pid, "took", time.Since(s).Round(time.Millisecond))
			}()
		}
		wg.Wait()
	}
	if rt.teardown != nil {
		if err := rt.teardown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if left := settledLeftovers(ctx, before, ports); len(left) > 0 {
		errs = append(errs, fmt.Errorf("still there after stopping: %s", strings.Join(left, "; ")))
	}
	if err := errors.Join(errs...); err != nil {
		_ = t.save()
		return fmt.Errorf("topology down %s: %w", t.Dir, err)
	}
	now := time.Now().UTC()
	rt.mu.Lock()
	rt.stoppedAt = &now
	rt.mu.Unlock()
	rt.log.Info("topology down", "dir", t.Dir, "stopped", stopped, "took", time.Since(start).Round(time.Millisecond))
	return t.save()
}

// Open returns the topology described by dir/topology.json, written by Up
// in this or another process, so that it can be stopped (Down) or
// disturbed (Stop, Kill, Pause, Resume of a component). Components are
// signalled only while their PID still names the process Up started.
// Restart needs the topology from Up.
func Open(dir string, log *slog.Logger) (*Topology, error) {
	if log == nil {
		log = discardLogger()
	}
	b, err := os.ReadFile(filepath.Join(dir, "topology.json"))
	if err != nil {
		return nil, fmt.Errorf("open topology: %w", err)
	}
	var f topologyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("open topology %s: %w", dir, err)
	}
	t := &f.Topology
	t.rt = &runtime{log: log.With("run", t.RunID), stoppedAt: f.StoppedAt}
	if t.Runtime == string(RuntimeDocker) {
		return openDocker(t, f.Components, log)
	}
	for _, c := range f.Components {
		m, err := adoptMember(c, log)
		if err != nil {
			return nil, err
		}
		t.rt.members = append(t.rt.members, m)
	}
	return t, nil
}

// adoptMember rebuilds a component from its topology.json entry.
func adoptMember(c ComponentInfo, log *slog.Logger) (member, error) {
	if c.Kind == "postgres" {
		srv, err := pgserver.Open(pgserver.Options{Dir: c.Dir, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", c.Name, err)
		}
		return &Postgres{name: c.Name, replica: c.Name != "primary", srv: srv, log: log}, nil
	}
	a := &adopted{addr: c.Addr, url: c.URL}
	d := &a.daemon
	d.name, d.kind, d.dir, d.log, d.spec = c.Name, c.Kind, c.Dir, log, procSpec{logPath: c.Log}
	if c.PID > 0 {
		d.proc = adoptProcess(c.PID, c.StartTicks, true)
	}
	switch c.Kind {
	case "redis":
		addr := c.Addr
		d.shutdown = func(ctx context.Context) error {
			_, err := redisDo(ctx, addr, "SHUTDOWN", "NOSAVE", "NOW")
			if err != nil && !isConnClosed(err) {
				return err
			}
			return nil
		}
	case "pgbouncer":
		d.stopGrace = 5 * time.Second
	case "app", "worker":
		d.stopGrace = 20 * time.Second
	}
	return a, nil
}

// adopted is a component of a topology opened from topology.json.
type adopted struct {
	daemon
	addr, url string
}

func (a *adopted) Restart(context.Context) error {
	return fmt.Errorf("restart %s: only the process that brought the topology up can restart it", a.name)
}

func (a *adopted) info() ComponentInfo { return a.baseInfo(a.addr, a.url) }

func (d *daemon) baseInfo(addr, url string) ComponentInfo {
	c := ComponentInfo{Name: d.name, Kind: d.kind, Dir: d.dir, Log: d.spec.logPath, Addr: addr, URL: url}
	if p := d.current(); p.alive() {
		c.PID, c.StartTicks = p.pid, p.startTicks
	}
	return c
}

func (a *App) info() ComponentInfo {
	if a.port == 0 {
		return a.baseInfo("", "")
	}
	return a.baseInfo(a.Addr(), a.URL())
}
func (r *Redis) info() ComponentInfo      { return r.baseInfo(r.Addr(), "") }
func (h *HAProxy) info() ComponentInfo    { return h.baseInfo(h.Addr(), h.URL()) }
func (v *Varnish) info() ComponentInfo    { return v.baseInfo(v.Addr(), v.URL()) }
func (b *PgBouncer) info() ComponentInfo  { return b.baseInfo(b.Addr(), b.URL()) }
func (p *Prometheus) info() ComponentInfo { return p.baseInfo(p.Addr(), p.URL()) }

func (p *Postgres) info() ComponentInfo {
	c := ComponentInfo{Name: p.name, Kind: "postgres", Dir: p.srv.Dir(), Log: p.srv.LogFile(),
		Addr: loopback(p.srv.Port()), URL: p.URL()}
	if pid := p.srv.PID(); pid != 0 {
		c.PID = pid
		if st, err := readProcStat(pid); err == nil {
			c.StartTicks = st.startTicks
		}
	}
	return c
}

// ListRuns returns the run folders under base (default
// ".scalelab/topologies") whose topology.json is not marked stopped,
// oldest first: what `scalelab down` has to stop.
func ListRuns(base string) ([]string, error) {
	if base == "" {
		base = filepath.Join(".scalelab", "topologies")
	}
	ents, err := os.ReadDir(base)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list topologies: %w", err)
	}
	var out []string
	for _, e := range ents {
		dir := filepath.Join(base, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, "topology.json"))
		if err != nil {
			continue
		}
		var f struct {
			StoppedAt *time.Time `json:"stopped_at"`
		}
		if json.Unmarshal(b, &f) == nil && f.StoppedAt == nil {
			abs, err := filepath.Abs(dir)
			if err != nil {
				return nil, err
			}
			out = append(out, abs)
		}
	}
	return out, nil
}

// settledLeftovers is leftovers once the stopped processes have had up to
// leftoverGrace to finish exiting: a stop command may return a moment
// before its process is gone (pg_ctl stop -w returns when the postmaster
// has removed its pid file, which it does just before it exits; seen as
// "primary pid N runs" once in a run's teardown).
func settledLeftovers(ctx context.Context, comps []ComponentInfo, ports []int) []string {
	deadline := time.Now().Add(leftoverGrace)
	for {
		left := leftovers(comps, ports)
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return left
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// leftoverGrace bounds the wait for stopped processes to exit and their
// ports to close before Down reports them as left behind.
const leftoverGrace = 3 * time.Second

// leftovers lists the processes (by PID and start time) and ports of a
// stopped topology that are still there.
func leftovers(comps []ComponentInfo, ports []int) []string {
	var left []string
	for _, c := range comps {
		if c.PID == 0 {
			continue
		}
		if adoptProcess(c.PID, c.StartTicks, false).alive() {
			left = append(left, fmt.Sprintf("%s pid %d runs", c.Name, c.PID))
			continue
		}
		for _, st := range groupMembers(c.PID) {
			if st.startTicks >= c.StartTicks {
				left = append(left, fmt.Sprintf("%s's pid %d runs", c.Name, st.pid))
			}
		}
	}
	for _, port := range ports {
		if listening(loopback(port)) {
			left = append(left, fmt.Sprintf("port %d listens", port))
		}
	}
	return left
}

var loopbackPortRe = regexp.MustCompile(`127\.0\.0\.1:(\d+)`)

// Ports lists every TCP port the topology's components listen on, for
// checks that nothing is left behind.
func (t *Topology) Ports() []int {
	var ports []int
	add := func(s string) {
		if m := loopbackPortRe.FindStringSubmatch(s); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && !slices.Contains(ports, n) {
				ports = append(ports, n)
			}
		}
	}
	for _, c := range t.Components() {
		add(c.Addr)
	}
	add(t.HAProxyStatsURL)
	t.rt.mu.Lock()
	defer t.rt.mu.Unlock()
	if t.rt.cluster != nil {
		for _, n := range t.rt.cluster.Nodes() {
			ports = append(ports, n.ClusterPort())
		}
	}
	if t.rt.varnish != nil {
		ports = append(ports, t.rt.varnish.adminPort)
	}
	return ports
}

// RemoveData deletes, once the topology is down, what its components
// stored in their run folders' data directories, and the SQLite database
// of phases 1 and 2: the databases the run seeded (hundreds of MB a run on
// phases 3 and 4) and Prometheus' samples (result.json holds what the run
// measured). Configuration and logs stay.
// A topology still up, or one whose Down failed, keeps everything.
func (t *Topology) RemoveData() error {
	t.rt.mu.Lock()
	stopped := t.rt.stoppedAt != nil
	t.rt.mu.Unlock()
	if !stopped {
		return fmt.Errorf("remove data of %s: the topology is not down", t.RunID)
	}
	inRun := func(p string) bool {
		return strings.HasPrefix(filepath.Clean(p), filepath.Clean(t.Dir)+string(filepath.Separator))
	}
	var errs []error
	for _, c := range t.Components() {
		if c.Dir == "" || !inRun(c.Dir) {
			continue // not in the run folder (a container's)
		}
		if err := os.RemoveAll(filepath.Join(c.Dir, "data")); err != nil {
			errs = append(errs, err)
		}
	}
	// Phase 1's and 2's SQLite database is a file in the app's folder.
	if db, ok := strings.CutPrefix(t.DatabaseURL, "sqlite:"); ok && inRun(db) {
		for _, f := range []string{db, db + "-wal", db + "-shm"} {
			if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove data of %s: %w", t.RunID, err)
	}
	return nil
}
