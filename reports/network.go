package reports

import (
	"fmt"
	"strconv"
)

// Network is how far apart the tiers were: the profile the run used and
// each proxied link with what it added (result.json's "network"; absent
// in results from before the lab simulated distance).
type Network struct {
	// Profile is none (loopback, no proxies), datacenter or internet.
	Profile string        `json:"profile"`
	Links   []NetworkLink `json:"links,omitempty"`
	// ProxyCPUS is the CPU time the proxies (Toxiproxy, its own process)
	// used during the measured part. It is the simulation's cost, not the
	// system's, so it is not among Components and not in any per-request
	// figure.
	ProxyCPUS float64 `json:"proxy_cpu_s"`
	// ProxyCPUShare is ProxyCPUS over the CPU time of the components and
	// the proxies together.
	ProxyCPUShare float64 `json:"proxy_cpu_share"`
}

// NetworkLink is one proxied link.
type NetworkLink struct {
	// Name is "from->to": client->haproxy, app->redis, primary->replica-1.
	Name string `json:"name"`
	// LatencyMS and JitterMS are added each way: a round trip over the
	// link pays LatencyMS twice.
	LatencyMS     float64 `json:"latency_ms"`
	JitterMS      float64 `json:"jitter_ms"`
	BandwidthKBps int     `json:"bandwidth_kbps,omitempty"`
}

// networkSection says, in words, what distance the run simulated.
func networkSection(r *Result) section {
	n := r.Network
	if n.Profile == "none" || len(n.Links) == 0 {
		return section{title: "Network", text: "Every component talked to the next over loopback (profile none): no network distance was simulated, so a hop cost microseconds, not the fraction of a millisecond a data centre charges."}
	}
	tb := &table{head: []string{"link", "added each way (ms)", "jitter ± (ms)", "bandwidth"}, num: []bool{false, true, true, true}}
	for _, l := range n.Links {
		bw := "unlimited"
		if l.BandwidthKBps > 0 {
			bw = strconv.Itoa(l.BandwidthKBps) + " KB/s"
		}
		tb.rows = append(tb.rows, []cell{{text: l.Name, code: true}, c(fmtMS(l.LatencyMS)), c(fmtMS(l.JitterMS)), c(bw)})
	}
	text := fmt.Sprintf("Profile %s: every link between two tiers went through a proxy (Toxiproxy) that held each piece of data back for the time below, in each direction, as a real network would. "+
		"A request pays a link's delay twice (there and back) each time it crosses it, so a request that crosses the client link, the balancer's link and one cache link pays about 2 × (sum of the three) more than on loopback.", n.Profile)
	after := fmt.Sprintf("The proxies are part of the experiment, not of the system: they used %s CPU s (%s of all the CPU measured), which is left out of the CPU by component and of every per-request figure.",
		fmtCPU(n.ProxyCPUS), fmtHitRate(n.ProxyCPUShare))
	return section{title: "Network", text: text, table: tb, after: after}
}
