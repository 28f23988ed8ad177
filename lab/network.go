package lab

import (
	"slices"

	"scalelab/reports"
	"scalelab/topologies"
)

// proxyComponent is the component that carries the proxied links.
const proxyComponent = "toxiproxy"

// networkResult records the run's network profile and links, and moves
// the proxies' CPU time out of res.Components: it is what simulating the
// distance cost, not what the system spent, so no per-request figure may
// count it.
func networkResult(profile string, links []topologies.Link, res *reports.Result) *reports.Network {
	n := &reports.Network{Profile: profile}
	for _, l := range links {
		n.Links = append(n.Links, reports.NetworkLink{Name: l.Name, LatencyMS: l.LatencyMS, JitterMS: l.JitterMS, BandwidthKBps: l.BandwidthKBps})
	}
	var total float64
	for _, c := range res.Components {
		total += c.CPUS
		if c.Name == proxyComponent {
			n.ProxyCPUS = c.CPUS
		}
	}
	res.Components = slices.DeleteFunc(res.Components, func(c reports.Component) bool { return c.Name == proxyComponent })
	if total > 0 {
		n.ProxyCPUShare = n.ProxyCPUS / total
	}
	return n
}
