package lab

import (
	"fmt"
	"slices"

	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

// proxyComponent is the component that carries the proxied links.
const proxyComponent = "toxiproxy"

// networkResult records the run's network profile, links and the path a
// read takes through them, and moves the proxies' CPU time out of
// res.Components: it is what simulating the distance cost, not what the
// system spent, so no per-request figure may count it.
func networkResult(profile string, links []topologies.Link, path []topologies.ReadStep, res *reports.Result) *reports.Network {
	n := &reports.Network{Profile: profile}
	for _, l := range links {
		n.Links = append(n.Links, reports.NetworkLink{
			Name: l.Name, LatencyMS: l.LatencyMS, JitterMS: l.JitterMS, BandwidthKBps: l.BandwidthKBps, TimeoutS: l.TimeoutS,
		})
	}
	if len(links) > 0 {
		for _, s := range path {
			n.ReadPath = append(n.ReadPath, reports.ReadStep{Tier: s.Tier, Links: s.Links, RoundTripMS: s.RoundTripMS})
		}
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

// WithScenario returns a session that drives sc on s's topology, so that
// one bring-up serves several scenarios (a distance measurement, then a
// partition). Seed and WarmUp it as any session; Down only one of them,
// once: they share the topology.
func (s *Session) WithScenario(sc *scenarios.Scenario) (*Session, error) {
	c := s.cfg
	c.Scenario = sc
	n := &Session{cfg: c, sc: sc, top: s.top, out: s.out, log: s.log}
	if err := n.prepare(); err != nil {
		return nil, fmt.Errorf("scenario %s on phase %d: %w", sc.Name, c.Definition.Phase, err)
	}
	return n, nil
}
