package reports

import (
	"math"
	"strings"
	"testing"
)

// phase3Network is a datacenter run's network on phase 3.
func phase3Network() *Network {
	return &Network{
		Profile: "datacenter",
		Links: []NetworkLink{
			{Name: "client->haproxy", LatencyMS: 0.25, JitterMS: 0.025},
			{Name: "haproxy->app-1", LatencyMS: 0.25, JitterMS: 0.025},
			{Name: "app->redis", LatencyMS: 0.25, JitterMS: 0.025, TimeoutS: 300},
			{Name: "app->replica-1", LatencyMS: 0.25, JitterMS: 0.025},
		},
		ReadPath: []ReadStep{
			{Tier: "l1", Links: []string{"client->haproxy", "haproxy->app-N"}, RoundTripMS: 1},
			{Tier: "l2", Links: []string{"app->redis"}, RoundTripMS: 0.5},
			{Tier: "database", Links: []string{"app->replica-N"}, RoundTripMS: 0.5},
		},
		ProxyCPUS: 2, ProxyCPUShare: 0.1,
	}
}

func TestReadCosts(t *testing.T) {
	n := phase3Network()
	tests := []struct {
		name       string
		cache      Cache
		wantTiers  string
		wantShares []float64
		wantMedian float64
	}{
		{"L1 answers most", Cache{L1HitRate: Float(0.8), L2HitRate: Float(0.5)}, "l1 l2 database", []float64{0.8, 0.1, 0.1}, 1},
		{"L1 answers a third", Cache{L1HitRate: Float(0.3), L2HitRate: Float(0.5)}, "l1 l2 database", []float64{0.3, 0.35, 0.35}, 1.5},
		{"no caches", Cache{}, "database", []float64{1}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			costs := n.ReadCosts(tt.cache)
			var tiers []string
			for i, rc := range costs {
				tiers = append(tiers, rc.Tier)
				if i < len(tt.wantShares) && math.Abs(rc.Share-tt.wantShares[i]) > 1e-9 {
					t.Errorf("%s answers %v of reads, want %v", rc.Tier, rc.Share, tt.wantShares[i])
				}
			}
			if got := strings.Join(tiers, " "); got != tt.wantTiers {
				t.Errorf("tiers = %q, want %q", got, tt.wantTiers)
			}
			if last := costs[len(costs)-1]; len(last.Links) != 4 || last.AddedMS != 2 {
				t.Errorf("a database read crosses %q adding %v ms, want 4 links, 2 ms", last.Links, last.AddedMS)
			}
			if got, ok := n.MedianReadAddedMS(tt.cache); !ok || got != tt.wantMedian {
				t.Errorf("MedianReadAddedMS = %v, %v; want %v", got, ok, tt.wantMedian)
			}
		})
	}
}

// The report's network section says the profile in words, shows the hop
// arithmetic with the run's hit rates, and the proxies' CPU.
func TestNetworkSectionShowsTheArithmetic(t *testing.T) {
	r := &Result{Network: phase3Network(), Cache: Cache{L1HitRate: Float(0.8), L2HitRate: Float(0.5)}}
	s := networkSection(r)
	text := s.text + "\n" + strings.Join(s.paras, "\n") + "\n" + s.after
	for _, want := range []string{
		"Profile datacenter: every tier runs on its own machine in one data centre",
		"about 0.500 ms instead of",
		"a read L1 (in the app) answers crosses `client->haproxy`, `haproxy->app-N`: 2 links, 1.00 ms in all (80.0% of this run's reads)",
		"a read the database answers crosses `client->haproxy`, `haproxy->app-N`, `app->redis`, `app->replica-N`: 4 links, 2.00 ms in all (10.0% of this run's reads)",
		"the median read paid about 1.00 ms for the distance",
		"they used 2.00 CPU s (10.0% of all the CPU measured)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("network section lacks %q:\n%s", want, text)
		}
	}
	if got := s.table.rows[2][4].text; got != "300 s" {
		t.Errorf("app->redis idle timeout cell = %q, want 300 s", got)
	}

	r.Network = &Network{Profile: "internet", Links: []NetworkLink{
		{Name: "client->varnish", LatencyMS: 2.5}, {Name: "varnish->haproxy", LatencyMS: 17.5}, {Name: "haproxy->app-1", LatencyMS: 0.25},
	}}
	if got := networkSection(r).text; !strings.Contains(got, "a CDN edge near them answers in 5.00 ms there and back, and what the edge does not have costs another 35.0 ms") {
		t.Errorf("internet profile sentence = %q", got)
	}
}

// With the proxies' counts, the table gives each link's round trips per
// request and the section what they added to the mean request, the idle
// traffic named apart.
func TestNetworkSectionShowsTheTraffic(t *testing.T) {
	n := phase3Network()
	n.Links = append(n.Links, NetworkLink{Name: "primary->replica-1", LatencyMS: 0.25})
	n.Traffic = []LinkTraffic{
		{Link: "client->haproxy", RoundTripsPerRequest: 1, AddedMSPerRequest: 0.5},
		{Link: "haproxy->app-1", RoundTripsPerRequest: 1, AddedMSPerRequest: 0.5, IdleRoundTripsPerS: 1},
		{Link: "app->redis", RoundTripsPerRequest: 1.5, AddedMSPerRequest: 0.75},
		{Link: "app->replica-1", RoundTripsPerRequest: 0.25, AddedMSPerRequest: 0.125, IdleRoundTripsPerS: 60},
		{Link: "primary->replica-1", RoundTripsPerRequest: 3, AddedMSPerRequest: 1.5},
	}
	n.AddedMSPerRequest, n.LateMSPerRequest = 1.875, 0.75
	s := networkSection(&Result{Network: n, Cache: Cache{L1HitRate: Float(0.8), L2HitRate: Float(0.5)}})
	text := strings.Join(s.paras, "\n")
	for _, want := range []string{
		"A request made 3.75 round trips over the links between the tiers",
		"which added 1.88 ms to the mean request if none of them overlapped",
		"(0.100 ms per crossing on average over these links), which no real network adds: 0.750 ms more per request",
		"about 2.62 ms above the same run under profile none",
		"`haproxy->app-1` 1/s, `app->replica-1` 60/s.",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("network section lacks %q:\n%s", want, text)
		}
	}
	if got := strings.Join(s.table.head, "|"); !strings.HasSuffix(got, "|round trips per request|adds to a request (ms)") {
		t.Errorf("table head = %q, want the traffic columns last", got)
	}
	for i, want := range [][2]string{{"1.00", "0.500"}, {"1.00", "0.500"}, {"1.50", "0.750"}, {"0.25", "0.125"}, {"3.00", "(replication)"}} {
		row := s.table.rows[i]
		if got := [2]string{row[5].text, row[6].text}; got != want {
			t.Errorf("%s: traffic cells %q, want %q", row[0].text, got, want)
		}
	}
}
