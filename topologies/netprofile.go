package topologies

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// The network profiles: how far apart the tiers are. docs/network.md gives
// the sources of the figures.
const (
	// NetworkNone connects every component directly over loopback, as
	// the lab always did: no proxies at all.
	NetworkNone = "none"
	// NetworkDatacenter puts every hop (the client's included) inside one
	// data centre: about 0.25 ms each way.
	NetworkDatacenter = "datacenter"
	// NetworkInternet keeps the in-DC hops and puts the user far away:
	// about 40 ms round trip to the origin, 5 ms to a CDN edge, and the
	// edge as far from the origin as the user nearly is.
	NetworkInternet = "internet"
	// NetworkProxied sends every link through the proxies, as the other
	// profiles do, but adds no distance: the control that tells what
	// simulating a network costs on this machine (the proxies' CPU, their
	// forwarding) from what the distance adds. A datacenter run's p50
	// minus a proxied run's is the distance alone.
	NetworkProxied = "proxied"
)

// NetworkProfiles lists the profiles, for flags and errors.
func NetworkProfiles() []string {
	return []string{NetworkNone, NetworkDatacenter, NetworkInternet, NetworkProxied}
}

// checkNetwork says whether p names a profile.
func checkNetwork(p string) error {
	if !slices.Contains(NetworkProfiles(), p) {
		return fmt.Errorf("network: %q, want %s", p, strings.Join(NetworkProfiles(), ", "))
	}
	return nil
}

// Shape is what a link does to the traffic on it, in each direction.
type Shape struct {
	// Latency is added to every chunk of data, each way; a round trip
	// pays it twice.
	Latency time.Duration
	// Jitter spreads Latency uniformly by ± Jitter.
	Jitter time.Duration
	// BandwidthKBps caps each direction in KB/s; 0 is unlimited.
	BandwidthKBps int
	// Timeout closes a connection after this long without data in one
	// direction (LinkSettings.Timeout); 0 is never.
	Timeout time.Duration
}

// The figures behind the profiles (docs/network.md cites them).
const (
	inDCOneWay     = 250 * time.Microsecond // half of a 0.5 ms in-DC round trip
	inDCJitter     = 25 * time.Microsecond
	userOriginWay  = 20 * time.Millisecond // 40 ms round trip user → origin
	userOriginJit  = 2 * time.Millisecond
	userEdgeWay    = 2500 * time.Microsecond // 5 ms round trip user → CDN edge
	userEdgeJitter = 500 * time.Microsecond
	edgeOriginWay  = 17500 * time.Microsecond // 35 ms round trip: edge + edge→origin ≈ user → origin
	edgeOriginJit  = 1500 * time.Microsecond
)

// shapeFor is the shape profile gives a link from one component to
// another (component names as in the topology: client, varnish, haproxy,
// app-1, primary, replica-1, redis, pgbouncer; "app" for all the apps).
// The second result is false when the profile proxies no link (none).
func shapeFor(profile, from, to string) (Shape, bool) {
	inDC := Shape{Latency: inDCOneWay, Jitter: inDCJitter}
	switch profile {
	case NetworkProxied:
		return Shape{}, true
	case NetworkDatacenter:
		return inDC, true
	case NetworkInternet:
		switch {
		case from == "client" && to == "varnish":
			return Shape{Latency: userEdgeWay, Jitter: userEdgeJitter}, true
		case from == "client":
			return Shape{Latency: userOriginWay, Jitter: userOriginJit}, true
		case from == "varnish":
			return Shape{Latency: edgeOriginWay, Jitter: edgeOriginJit}, true
		}
		return inDC, true
	}
	return Shape{}, false
}

// Link is one proxied connection between two tiers, as result.json and
// topology.json record it.
type Link struct {
	// Name is "from->to": client->haproxy, haproxy->app-2, app->primary,
	// primary->replica-1, varnish->haproxy, …
	Name     string `json:"name"`
	Listen   string `json:"listen"`   // the proxy's host:port, what `from` is given
	Upstream string `json:"upstream"` // the real component's host:port
	// LatencyMS and JitterMS are added each way (a round trip pays
	// LatencyMS twice); BandwidthKBps 0 is unlimited.
	LatencyMS     float64 `json:"latency_ms"`
	JitterMS      float64 `json:"jitter_ms"`
	BandwidthKBps int     `json:"bandwidth_kbps,omitempty"`
	// TimeoutS is the idle timeout in seconds (0: none).
	TimeoutS float64 `json:"timeout_s,omitempty"`
}

func linkName(from, to string) string { return from + "->" + to }

func (s Shape) link(name, listen, upstream string) Link {
	return Link{
		Name: name, Listen: listen, Upstream: upstream,
		LatencyMS: ms(s.Latency), JitterMS: ms(s.Jitter), BandwidthKBps: s.BandwidthKBps, TimeoutS: s.Timeout.Seconds(),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// SetNetwork sets the definition's network profile (the `--network`
// flag); "" keeps the phase file's.
func (d *Definition) SetNetwork(profile string) error {
	if profile == "" {
		return nil
	}
	if err := checkNetwork(profile); err != nil {
		return fmt.Errorf("--network: %w", err)
	}
	d.Network = profile
	return nil
}

// The tiers that may answer a read of one user (ReadStep.Tier).
const (
	TierCDN      = "l3"
	TierL1       = "l1"
	TierL2       = "l2"
	TierDatabase = "database"
)

// ReadStep is a tier that may answer a read of one user (GET
// /users/{id}), with the links a read crosses to get there from the step
// before it (the first step: from the client).
type ReadStep struct {
	Tier string `json:"tier"`
	// Links are link names; "haproxy->app-N" and "app->replica-N" stand
	// for whichever instance the read goes to.
	Links []string `json:"links"`
	// RoundTripMS is what crossing Links there and back adds to the read:
	// twice each link's latency, from the topology's links (0 under the
	// none profile, and for a tier reached without a proxied link).
	RoundTripMS float64 `json:"round_trip_ms"`
}

// ReadPath is the tiers a read of one user may stop at, in the order it
// tries them, and what reaching each one adds under the given links (the
// ones Up made, Topology.Links): the CDN (phase 4), the app's L1, the L2
// Redis, then the database (a replica when there are some). A tier the
// run turns out not to have (no L1 without --cache-ttl) adds its links to
// the next: see reports.Network.
func (d *Definition) ReadPath(links []Link) []ReadStep {
	var steps []ReadStep
	step := func(tier string, names ...string) {
		steps = append(steps, ReadStep{Tier: tier, Links: names, RoundTripMS: roundTripMS(names, links)})
	}
	var toApp []string
	switch {
	case d.Entry == "varnish" && d.HAProxy != nil:
		step(TierCDN, "client->varnish")
		toApp = []string{"varnish->haproxy", "haproxy->app-N"}
	case d.Entry == "varnish":
		step(TierCDN, "client->varnish")
		toApp = []string{"varnish->app-1"}
	case d.Entry == "haproxy":
		toApp = []string{"client->haproxy", "haproxy->app-N"}
	default:
		toApp = []string{"client->app-1"}
	}
	step(TierL1, toApp...)
	switch {
	case d.RedisCluster != nil:
		step(TierL2) // the cluster's nodes are not proxied (docs/network.md)
	case d.Redis != nil:
		step(TierL2, "app->redis")
	}
	switch {
	case d.Postgres == nil:
		step(TierDatabase) // SQLite, inside the app
	case d.Postgres.Replicas > 0:
		step(TierDatabase, "app->replica-N")
	default:
		step(TierDatabase, "app->primary")
	}
	return steps
}

// roundTripMS is twice the latency of the named links; a name ending in
// "-N" counts the mean of the links it stands for.
func roundTripMS(names []string, links []Link) float64 {
	var sum float64
	for _, name := range names {
		var lat float64
		var n int
		for _, l := range links {
			if l.Name == name || strings.HasSuffix(name, "-N") && strings.HasPrefix(l.Name, strings.TrimSuffix(name, "N")) {
				lat += l.LatencyMS
				n++
			}
		}
		if n > 0 {
			sum += 2 * lat / float64(n)
		}
	}
	return sum
}

// LinkSettings override what the profile gives the links a phase file's
// `links:` key names, e.g.
//
//	network: datacenter
//	links:
//	  app->redis: {latency: 1ms, jitter: 100us}
//	  haproxy->app-*: {timeout: 30s}
//	  "*": {bandwidth_kbps: 125000}
//
// A key is a link's name or a pattern (path.Match: * and ?); an exact name
// wins over a pattern, and of two patterns the later in sorted order
// wins. An absent field keeps the profile's value. Settings act only when
// the profile proxies links (not under none).
type LinkSettings struct {
	// Latency is added each way; Jitter spreads it by ±Jitter.
	Latency *time.Duration `yaml:"latency"`
	Jitter  *time.Duration `yaml:"jitter"`
	// BandwidthKBps caps each direction, in KB/s; 0 is unlimited.
	BandwidthKBps *int `yaml:"bandwidth_kbps"`
	// Timeout closes a connection on the link once no data has crossed it
	// in one direction for this long, as the idle timeout of a NAT, a
	// firewall or a cloud load balancer does (AWS's NAT gateway and
	// Network Load Balancer: 350 s); 0 is never. Clients that keep idle
	// connections (connection pools, HTTP keep-alive) must cope with that.
	Timeout *time.Duration `yaml:"timeout"`
}

// apply sets on s what the settings override.
func (ls LinkSettings) apply(s Shape) Shape {
	if ls.Latency != nil {
		s.Latency = *ls.Latency
	}
	if ls.Jitter != nil {
		s.Jitter = *ls.Jitter
	}
	if ls.BandwidthKBps != nil {
		s.BandwidthKBps = *ls.BandwidthKBps
	}
	if ls.Timeout != nil {
		s.Timeout = *ls.Timeout
	}
	return s
}

// shapeWith is the shape of the link called name: the profile's, then the
// matching patterns' settings in sorted order, then the exact name's.
func shapeWith(s Shape, name string, settings map[string]LinkSettings) Shape {
	for _, key := range slices.Sorted(maps.Keys(settings)) {
		if ok, _ := path.Match(key, name); ok && key != name {
			s = settings[key].apply(s)
		}
	}
	if ls, ok := settings[name]; ok {
		s = ls.apply(s)
	}
	return s
}

// checkLinkSettings says whether every `links:` key names a link of the
// topology (as a name or a pattern) and every value is in range.
func (d *Definition) checkLinkSettings() error {
	names := d.linkNames()
	for _, key := range slices.Sorted(maps.Keys(d.Links)) {
		ls := d.Links[key]
		if _, err := path.Match(key, ""); err != nil {
			return fmt.Errorf("links: %q: %w", key, err)
		}
		if !slices.ContainsFunc(names, func(n string) bool { ok, _ := path.Match(key, n); return ok }) {
			return fmt.Errorf("links: %q names no link of this topology (it has %s)", key, strings.Join(names, ", "))
		}
		for _, f := range []struct {
			name string
			v    *time.Duration
		}{{"latency", ls.Latency}, {"jitter", ls.Jitter}, {"timeout", ls.Timeout}} {
			if f.v != nil && *f.v < 0 {
				return fmt.Errorf("links: %q: %s %v, want 0 or more", key, f.name, *f.v)
			}
		}
		if ls.BandwidthKBps != nil && *ls.BandwidthKBps < 0 {
			return fmt.Errorf("links: %q: bandwidth_kbps %d, want 0 (unlimited) or more", key, *ls.BandwidthKBps)
		}
	}
	return nil
}

// linkNames are the links a topology of d proxies under a profile other
// than none (links.go makes them; build.go says when).
func (d *Definition) linkNames() []string {
	var names []string
	entry := map[string]string{"varnish": "varnish", "haproxy": "haproxy", "app": "app-1"}[d.Entry]
	names = append(names, linkName("client", entry))
	if d.Varnish != nil {
		origin := "app-1"
		if d.HAProxy != nil {
			origin = "haproxy"
		}
		names = append(names, linkName("varnish", origin))
	}
	if d.HAProxy != nil && d.Apps != nil {
		for i := range d.Apps.Count {
			names = append(names, linkName("haproxy", fmt.Sprintf("app-%d", i+1)))
		}
	}
	if d.Postgres != nil {
		names = append(names, "app->primary")
		for i := range d.Postgres.Replicas {
			names = append(names, fmt.Sprintf("app->replica-%d", i+1), fmt.Sprintf("primary->replica-%d", i+1))
		}
	}
	if d.PgBouncer != nil {
		names = append(names, "app->pgbouncer")
	}
	if d.Redis != nil {
		names = append(names, "app->redis")
	}
	slices.Sort(names)
	return names
}
