package topologies

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestShapeFor(t *testing.T) {
	dc := Shape{Latency: 250 * time.Microsecond, Jitter: 25 * time.Microsecond}
	tests := []struct {
		profile, from, to string
		want              Shape
		proxied           bool
	}{
		{NetworkNone, "app", "redis", Shape{}, false},
		{NetworkDatacenter, "client", "haproxy", dc, true},
		{NetworkDatacenter, "app", "primary", dc, true},
		{NetworkDatacenter, "primary", "replica-1", dc, true},
		{NetworkDatacenter, "varnish", "haproxy", dc, true},
		{NetworkInternet, "app", "redis", dc, true},
		{NetworkInternet, "haproxy", "app-2", dc, true},
		{NetworkInternet, "client", "haproxy", Shape{Latency: 20 * time.Millisecond, Jitter: 2 * time.Millisecond}, true},
		{NetworkInternet, "client", "app-1", Shape{Latency: 20 * time.Millisecond, Jitter: 2 * time.Millisecond}, true},
		{NetworkInternet, "client", "varnish", Shape{Latency: 2500 * time.Microsecond, Jitter: 500 * time.Microsecond}, true},
		{NetworkInternet, "varnish", "haproxy", Shape{Latency: 17500 * time.Microsecond, Jitter: 1500 * time.Microsecond}, true},
	}
	for _, tt := range tests {
		t.Run(tt.profile+"/"+linkName(tt.from, tt.to), func(t *testing.T) {
			got, ok := shapeFor(tt.profile, tt.from, tt.to)
			if got != tt.want || ok != tt.proxied {
				t.Errorf("shapeFor(%q, %q, %q) = %+v, %v, want %+v, %v", tt.profile, tt.from, tt.to, got, ok, tt.want, tt.proxied)
			}
		})
	}
}

// The internet profile's round trips are the figures docs/network.md
// cites: 40 ms to the origin, 5 ms to the edge, and a CDN miss (edge, then
// edge to origin) about what going to the origin directly costs.
func TestInternetRoundTrips(t *testing.T) {
	rtt := func(from, to string) time.Duration {
		s, _ := shapeFor(NetworkInternet, from, to)
		return 2 * s.Latency
	}
	if got := rtt("client", "haproxy"); got != 40*time.Millisecond {
		t.Errorf("client->origin round trip = %v, want 40ms", got)
	}
	if got := rtt("client", "varnish"); got != 5*time.Millisecond {
		t.Errorf("client->edge round trip = %v, want 5ms", got)
	}
	if got := rtt("client", "varnish") + rtt("varnish", "haproxy"); got != 40*time.Millisecond {
		t.Errorf("client->edge->origin round trip = %v, want 40ms", got)
	}
}

func TestNetworkInDefinition(t *testing.T) {
	const base = "phase: 1\napps:\n  flags:\n    - --db=sqlite:x.db\n"
	tests := []struct {
		name, yaml, want, err string
	}{
		{"default", base, NetworkNone, ""},
		{"datacenter", base + "network: datacenter\n", NetworkDatacenter, ""},
		{"internet", base + "network: internet\n", NetworkInternet, ""},
		{"unknown", base + "network: lan\n", "", `x.yaml: network: "lan", want none, datacenter, internet, proxied`},
		{"not a string", base + "network: [a]\n", "", "x.yaml:5: cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def, err := Parse([]byte(tt.yaml), "x.yaml", commandFlags())
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse = %v, want an error containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if def.Network != tt.want {
				t.Errorf("Network = %q, want %q", def.Network, tt.want)
			}
		})
	}
}

func TestSetNetwork(t *testing.T) {
	def := &Definition{Network: NetworkDatacenter}
	if err := def.SetNetwork(""); err != nil || def.Network != NetworkDatacenter {
		t.Errorf(`SetNetwork("") = %v, Network %q; want the phase file's kept`, err, def.Network)
	}
	if err := def.SetNetwork(NetworkInternet); err != nil || def.Network != NetworkInternet {
		t.Errorf("SetNetwork(internet) = %v, Network %q", err, def.Network)
	}
	if err := def.SetNetwork("wan"); err == nil || !strings.Contains(err.Error(), "--network") {
		t.Errorf("SetNetwork(wan) = %v, want a --network error", err)
	}
}

func TestReplaceAddr(t *testing.T) {
	tests := []struct{ s, addr, with, want string }{
		{"postgres://postgres@127.0.0.1:1500/scalelab?sslmode=disable", "127.0.0.1:1500", "127.0.0.1:2600",
			"postgres://postgres@127.0.0.1:2600/scalelab?sslmode=disable"},
		// a longer port that starts with the same digits is another address
		{"127.0.0.1:15001,127.0.0.1:1500", "127.0.0.1:1500", "127.0.0.1:9", "127.0.0.1:15001,127.0.0.1:9"},
		{"127.0.0.1:1500", "127.0.0.1:1500", "127.0.0.1:9", "127.0.0.1:9"},
		{"redis://x:6379", "127.0.0.1:6379", "127.0.0.1:9", "redis://x:6379"},
	}
	for _, tt := range tests {
		if got := replaceAddr(tt.s, tt.addr, tt.with); got != tt.want {
			t.Errorf("replaceAddr(%q, %q, %q) = %q, want %q", tt.s, tt.addr, tt.with, got, tt.want)
		}
	}
}

// Under the none profile nothing is proxied: every address is the
// component's own, as before the lab simulated distance.
func TestNetworkNoneProxiesNothing(t *testing.T) {
	n := &network{profile: NetworkNone, ports: newPortPicker()}
	addr, err := n.link("app", "redis", "127.0.0.1:6379")
	if err != nil || addr != "127.0.0.1:6379" {
		t.Errorf("link = %q, %v, want the upstream itself", addr, err)
	}
	if got := n.rewrite("app", "redis=127.0.0.1:6379"); got != "redis=127.0.0.1:6379" {
		t.Errorf("rewrite = %q", got)
	}
	if l := n.Links(); len(l) != 0 {
		t.Errorf("Links = %v, want none", l)
	}
}

// The tiers a read may stop at, and the links it crosses to reach each,
// per phase: what the report's hop arithmetic adds up.
func TestReadPath(t *testing.T) {
	dc := func(names ...string) []Link {
		var links []Link
		for _, n := range names {
			links = append(links, Link{Name: n, LatencyMS: 0.25})
		}
		return links
	}
	tests := []struct {
		phase int
		links []Link
		want  []ReadStep
	}{
		{1, dc("client->app-1"), []ReadStep{
			{TierL1, []string{"client->app-1"}, 0.5},
			{TierDatabase, nil, 0},
		}},
		{2, dc("client->app-1", "app->primary"), []ReadStep{
			{TierL1, []string{"client->app-1"}, 0.5},
			{TierDatabase, []string{"app->primary"}, 0.5},
		}},
		{3, dc("client->haproxy", "haproxy->app-1", "haproxy->app-2", "app->redis", "app->replica-1", "app->primary"), []ReadStep{
			{TierL1, []string{"client->haproxy", "haproxy->app-N"}, 1},
			{TierL2, []string{"app->redis"}, 0.5},
			{TierDatabase, []string{"app->replica-N"}, 0.5},
		}},
		{4, []Link{{Name: "client->varnish", LatencyMS: 2.5}, {Name: "varnish->haproxy", LatencyMS: 17.5}, {Name: "haproxy->app-1", LatencyMS: 0.25}, {Name: "app->replica-1", LatencyMS: 0.25}}, []ReadStep{
			{TierCDN, []string{"client->varnish"}, 5},
			{TierL1, []string{"varnish->haproxy", "haproxy->app-N"}, 35.5},
			{TierL2, nil, 0}, // Redis Cluster: not proxied
			{TierDatabase, []string{"app->replica-N"}, 0.5},
		}},
		{3, nil, []ReadStep{ // profile none: nothing added
			{TierL1, []string{"client->haproxy", "haproxy->app-N"}, 0},
			{TierL2, []string{"app->redis"}, 0},
			{TierDatabase, []string{"app->replica-N"}, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("phase-", tt.phase, "/", len(tt.links), "-links"), func(t *testing.T) {
			def, err := Phase(tt.phase, commandFlags())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, def.ReadPath(tt.links), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ReadPath (-want +got):\n%s", diff)
			}
		})
	}
}

// A phase file's `links:` overrides the profile per link: an exact name
// over a pattern, a field left out keeps the profile's value.
func TestLinkSettings(t *testing.T) {
	const base = "phase: 3\napps:\n  count: 2\n  flags:\n    - --db=${postgres.url}\npostgres: {replicas: 1}\nredis: {}\nhaproxy: {}\nnetwork: datacenter\n"
	def, err := Parse([]byte(base+`links:
  "*": {timeout: 5m}
  haproxy->app-*: {latency: 1ms, timeout: 30s}
  haproxy->app-2: {jitter: 0s, bandwidth_kbps: 1000}
`), "x.yaml", commandFlags())
	if err != nil {
		t.Fatal(err)
	}
	dc := Shape{Latency: 250 * time.Microsecond, Jitter: 25 * time.Microsecond}
	tests := []struct {
		link string
		want Shape
	}{
		{"app->redis", Shape{Latency: 250 * time.Microsecond, Jitter: 25 * time.Microsecond, Timeout: 5 * time.Minute}},
		{"haproxy->app-1", Shape{Latency: time.Millisecond, Jitter: 25 * time.Microsecond, Timeout: 30 * time.Second}},
		{"haproxy->app-2", Shape{Latency: time.Millisecond, BandwidthKBps: 1000, Timeout: 30 * time.Second}},
	}
	for _, tt := range tests {
		if got := shapeWith(dc, tt.link, def.Links); got != tt.want {
			t.Errorf("shapeWith(%s) = %+v, want %+v", tt.link, got, tt.want)
		}
	}

	bad := []struct{ links, err string }{
		{"app->mongo: {latency: 1ms}", `links: "app->mongo" names no link of this topology (it has app->primary, app->redis, app->replica-1, client->haproxy, haproxy->app-1, haproxy->app-2, primary->replica-1)`},
		{"app->redis: {latency: -1ms}", `links: "app->redis": latency -1ms, want 0 or more`},
		{"app->redis: {bandwidth_kbps: -5}", `links: "app->redis": bandwidth_kbps -5, want 0 (unlimited) or more`},
		{"\"app->[\": {latency: 1ms}", `links: "app->[": syntax error in pattern`},
		{"app->redis: {delay: 1ms}", `field delay not found`},
	}
	for _, tt := range bad {
		_, err := Parse([]byte(base+"links:\n  "+tt.links+"\n"), "x.yaml", commandFlags())
		if err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("links %s: Parse = %v, want an error containing %q", tt.links, err, tt.err)
		}
	}
}
