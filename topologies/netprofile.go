package topologies

import (
	"fmt"
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
)

// NetworkProfiles lists the profiles, for flags and errors.
func NetworkProfiles() []string {
	return []string{NetworkNone, NetworkDatacenter, NetworkInternet}
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
}

func linkName(from, to string) string { return from + "->" + to }

func (s Shape) link(name, listen, upstream string) Link {
	return Link{
		Name: name, Listen: listen, Upstream: upstream,
		LatencyMS: ms(s.Latency), JitterMS: ms(s.Jitter), BandwidthKBps: s.BandwidthKBps,
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
