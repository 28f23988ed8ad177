package topologies

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"

	"scalelab/internal/netsim"
)

// Toxiproxy is the process (`scalelab proxy`) that carries every proxied
// link of a topology whose network profile is not none. It is a component
// of its own, "toxiproxy", so that the CPU the simulation burns is sampled
// apart from the system's.
type Toxiproxy struct {
	daemon
	port int
}

// Addr is the host:port of Toxiproxy's API.
func (x *Toxiproxy) Addr() string { return loopback(x.port) }

func (x *Toxiproxy) info() ComponentInfo { return x.baseInfo(x.Addr(), "http://"+x.Addr()) }

func newToxiproxy(dir, bin string, port int, log *slog.Logger) *Toxiproxy {
	x := &Toxiproxy{port: port}
	x.daemon = daemon{
		name: "toxiproxy", kind: "toxiproxy", dir: dir, log: log,
		spec:       procSpec{path: bin, args: []string{"proxy", "--addr=" + loopback(port), fmt.Sprintf("--nice=%d", proxyNice)}, dir: dir, logPath: filepath.Join(dir, "toxiproxy.log")},
		stopSignal: syscall.SIGTERM,
		stopGrace:  10 * time.Second,
	}
	x.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, "http://"+x.Addr()+"/version")
		return err
	}
	return x
}

// proxyNice is the proxies' CPU priority (scalelab proxy --nice): a
// simulated network must not queue behind the system for CPU, or a busy
// machine adds a scheduling delay to every link crossed, which no real
// network does. Under load average 90 on two cores, HAProxy's checks and
// the apps' 200 ms database probes crossed the proxies in 300–550 ms at
// nice 0, and every app went DOWN. (A mitigation: its effect is not
// measured yet; docs/network.md.)
const proxyNice = -10

// network is a topology's proxied links: the profile, the Toxiproxy that
// carries them, and each link made so far, by name.
type network struct {
	profile string
	// settings are the phase file's per-link overrides (`links:`).
	settings map[string]LinkSettings
	ports    *portPicker
	proxy    *Toxiproxy

	mu    sync.Mutex
	links []Link
}

// on says whether links are proxied at all.
func (n *network) on() bool { return n != nil && n.profile != NetworkNone }

func (n *network) client() *toxiclient.Client { return toxiclient.NewClient(n.proxy.Addr()) }

// link returns the address from should use to reach to at upstream: the
// upstream itself under the none profile, else a proxy's, made on first
// use with the profile's shape for this link.
func (n *network) link(from, to, upstream string) (string, error) {
	if !n.on() {
		return upstream, nil
	}
	name := linkName(from, to)
	n.mu.Lock()
	defer n.mu.Unlock()
	if i := slices.IndexFunc(n.links, func(l Link) bool { return l.Name == name }); i >= 0 {
		return n.links[i].Listen, nil
	}
	shape, _ := shapeFor(n.profile, from, to)
	shape = shapeWith(shape, name, n.settings)
	// A port free when picked can be taken before the proxy binds it
	// (seen once in a phase-4 bring-up: "bind: address already in use");
	// another port then does.
	var (
		listen string
		p      *toxiclient.Proxy
	)
	for attempt := 1; ; attempt++ {
		port, err := n.ports.pick()
		if err != nil {
			return "", fmt.Errorf("link %s: %w", name, err)
		}
		listen = loopback(port)
		p, err = n.client().CreateProxy(name, listen, upstream)
		if err == nil {
			break
		}
		if attempt == 5 || !strings.Contains(err.Error(), "address already in use") {
			return "", fmt.Errorf("link %s: create proxy: %w", name, err)
		}
	}
	for _, stream := range []string{"upstream", "downstream"} {
		attrs := toxiclient.Attributes{"latency_us": shape.Latency.Microseconds(), "jitter_us": shape.Jitter.Microseconds()}
		if _, err := p.AddToxic("distance_"+stream, netsim.LatencyToxicType, stream, 1, attrs); err != nil {
			return "", fmt.Errorf("link %s: latency %s: %w", name, stream, err)
		}
		if shape.BandwidthKBps > 0 {
			if _, err := p.AddToxic("bandwidth_"+stream, "bandwidth", stream, 1, toxiclient.Attributes{"rate": shape.BandwidthKBps}); err != nil {
				return "", fmt.Errorf("link %s: bandwidth %s: %w", name, stream, err)
			}
		}
		if shape.Timeout > 0 {
			if _, err := p.AddToxic("idle_"+stream, netsim.IdleTimeoutToxicType, stream, 1, toxiclient.Attributes{"timeout_ms": shape.Timeout.Milliseconds()}); err != nil {
				return "", fmt.Errorf("link %s: idle timeout %s: %w", name, stream, err)
			}
		}
	}
	n.links = append(n.links, shape.link(name, listen, upstream))
	return listen, nil
}

// rewrite replaces, in s, the upstream address of every link from `from`
// with its proxy's: a postgres:// URL, a Redis host:port, a list of them.
func (n *network) rewrite(from, s string) string {
	if !n.on() {
		return s
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.links {
		if strings.HasPrefix(l.Name, from+"->") {
			s = replaceAddr(s, l.Upstream, l.Listen)
		}
	}
	return s
}

// replaceAddr replaces host:port addr in s where it is not the prefix of a
// longer port (127.0.0.1:1500 in 127.0.0.1:15001).
func replaceAddr(s, addr, with string) string {
	re := regexp.MustCompile(regexp.QuoteMeta(addr) + `(\D|$)`)
	return re.ReplaceAllString(s, with+"${1}")
}

// Links returns a copy of the links made so far, in the order made.
func (n *network) Links() []Link {
	if n == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.links)
}

// LinkTraffic is what crossed one proxied link, as its distance toxics
// counted it: chunks of data, each what one read of the sender's socket
// returned (a message, or several sent together).
type LinkTraffic struct {
	Name string
	// Upstream chunks went towards the link's server, Downstream back.
	Upstream, Downstream int64
	// Late sums how much later than due the chunks of both directions
	// left their toxics: what the machine's scheduling added to the
	// link's latency (negative: early on the whole).
	Late time.Duration
}

// RoundTrips estimates the link's round trips: a request/reply protocol
// (HTTP/1.1, Redis, Postgres' extended queries) sends one chunk each way
// per round trip, so the fewer of the two. The other direction's extra
// chunks are messages no request waited for: Redis pushing pub/sub
// messages to a subscriber, a replica's status reports to its primary.
func (lt LinkTraffic) RoundTrips() int64 { return min(lt.Upstream, lt.Downstream) }

// Traffic counts the chunks that have crossed each link so far, in the
// order the links were made; nil when no link is proxied.
func (t *Topology) Traffic() ([]LinkTraffic, error) {
	n := t.rt.net
	if !n.on() || n.proxy == nil {
		return nil, nil
	}
	proxies, err := n.client().Proxies()
	if err != nil {
		return nil, fmt.Errorf("link traffic: %w", err)
	}
	var out []LinkTraffic
	for _, l := range n.Links() {
		p := proxies[l.Name]
		if p == nil {
			return nil, fmt.Errorf("link traffic: no proxy for %s", l.Name)
		}
		lt := LinkTraffic{Name: l.Name}
		for _, tx := range p.ActiveToxics {
			chunks, _ := tx.Attributes["chunks"].(float64)
			late, _ := tx.Attributes["late_us"].(float64)
			switch tx.Name {
			case "distance_upstream":
				lt.Upstream = int64(chunks)
			case "distance_downstream":
				lt.Downstream = int64(chunks)
			default:
				continue
			}
			lt.Late += time.Duration(late) * time.Microsecond
		}
		out = append(out, lt)
	}
	return out, nil
}

// trafficDelta is what crossed each link between two readings.
func trafficDelta(base, final []LinkTraffic) []LinkTraffic {
	var out []LinkTraffic
	for _, f := range final {
		d := f
		if i := slices.IndexFunc(base, func(b LinkTraffic) bool { return b.Name == f.Name }); i >= 0 {
			d.Upstream -= base[i].Upstream
			d.Downstream -= base[i].Downstream
			d.Late -= base[i].Late
		}
		out = append(out, d)
	}
	return out
}

// portOf is the port of a host:port.
func portOf(addr string) (int, error) {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("port of %q: %w", addr, err)
	}
	return strconv.Atoi(p)
}

// conninfoPortRe finds the port in a libpq key=value conninfo.
var conninfoPortRe = regexp.MustCompile(`\bport=\d+`)

// replicateThrough points a running replica's walreceiver at addr, the
// proxy of its primary->replica link. primary_conninfo is reloadable
// since PostgreSQL 13: the walreceiver restarts on the new address and
// resumes from where it was, through its slot.
func replicateThrough(ctx context.Context, replica *Postgres, addr string) error {
	port, err := portOf(addr)
	if err != nil {
		return err
	}
	conn, err := replica.Server().Connect(ctx, "postgres")
	if err != nil {
		return fmt.Errorf("%s: connect: %w", replica.name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var conninfo string
	if err := conn.QueryRow(ctx, "SHOW primary_conninfo").Scan(&conninfo); err != nil {
		return fmt.Errorf("%s: primary_conninfo: %w", replica.name, err)
	}
	if !conninfoPortRe.MatchString(conninfo) {
		return fmt.Errorf("%s: primary_conninfo %q names no port", replica.name, conninfo)
	}
	conninfo = conninfoPortRe.ReplaceAllString(conninfo, "port="+strconv.Itoa(port))
	quoted := "'" + strings.ReplaceAll(conninfo, "'", "''") + "'"
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET primary_conninfo = "+quoted); err != nil {
		return fmt.Errorf("%s: set primary_conninfo: %w", replica.name, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("%s: reload: %w", replica.name, err)
	}
	return nil
}

func (b *builder) startToxiproxy(ctx context.Context) error {
	dir, err := b.dir("toxiproxy")
	if err != nil {
		return err
	}
	port, err := b.ports.pick()
	if err != nil {
		return fmt.Errorf("toxiproxy: %w", err)
	}
	x := newToxiproxy(dir, b.bin, port, b.log)
	b.set(func(t *Topology) { t.rt.net.proxy = x })
	b.daemonHooks(&x.daemon)
	b.t.rt.register(b.t, x)
	return x.start(ctx)
}

// appLinks makes the links from the apps to the data tier; the app flags'
// variables are then rewritten to them (see vars).
func (b *builder) appLinks() error {
	rt := b.t.rt
	if !b.net.on() {
		return nil
	}
	rt.mu.Lock()
	type target struct{ name, addr string }
	var targets []target
	if rt.primary != nil {
		targets = append(targets, target{"primary", loopback(rt.primary.Port())})
	}
	for _, r := range rt.replicas {
		targets = append(targets, target{r.name, loopback(r.Port())})
	}
	if rt.pgbouncer != nil {
		targets = append(targets, target{"pgbouncer", rt.pgbouncer.Addr()})
	}
	if rt.redis != nil {
		targets = append(targets, target{"redis", rt.redis.Addr()})
	}
	rt.mu.Unlock()
	for _, tg := range targets {
		if _, err := b.net.link("app", tg.name, tg.addr); err != nil {
			return err
		}
	}
	return nil
}

// linkPort is the port from should use to reach to on port.
func (b *builder) linkPort(from, to string, port int) (int, error) {
	addr, err := b.net.link(from, to, loopback(port))
	if err != nil {
		return 0, err
	}
	return portOf(addr)
}

// replicationLink puts replica's streaming replication through a proxy.
func (b *builder) replicationLink(ctx context.Context, r *Postgres) error {
	addr, err := b.net.link("primary", r.name, loopback(b.t.rt.primary.Port()))
	if err != nil {
		return err
	}
	if err := replicateThrough(ctx, r, addr); err != nil {
		return err
	}
	return b.t.save()
}

// clientLink puts the clients' link to the entry through a proxy: the
// entry URL becomes the proxy's.
func (b *builder) clientLink(ctx context.Context) error {
	u := strings.TrimPrefix(b.t.EntryURL, "http://")
	to := map[string]string{"varnish": "varnish", "haproxy": "haproxy", "app": "app-1"}[b.def.Entry]
	addr, err := b.net.link("client", to, u)
	if err != nil {
		return err
	}
	b.set(func(t *Topology) { t.EntryURL = "http://" + addr })
	return b.t.save()
}
