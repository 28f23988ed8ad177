package lab

import (
	"fmt"
	"slices"
	"time"

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
func networkResult(profile string, links []topologies.Link, path []topologies.ReadStep, m *topologies.Measurements, res *reports.Result) *reports.Network {
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
	if m != nil {
		n.Traffic, n.AddedMSPerRequest, n.LateMSPerRequest = linkTraffic(links, m, res.Totals.Requests)
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

// linkTraffic is what crossed each link per request, the idle rate taken
// out, and what that added to the mean request in all: by the links'
// latency, and by the proxies' lateness on top.
func linkTraffic(links []topologies.Link, m *topologies.Measurements, requests int64) (_ []reports.LinkTraffic, added, late float64) {
	seconds := m.End.Sub(m.Start).Seconds()
	var out []reports.LinkTraffic
	for _, lt := range m.Links {
		r := reports.LinkTraffic{Link: lt.Name, ChunksUp: lt.Upstream, ChunksDown: lt.Downstream}
		if chunks := lt.Upstream + lt.Downstream; chunks > 0 {
			r.LateMSPerChunk = float64(lt.Late) / float64(time.Millisecond) / float64(chunks)
		}
		if i := slices.IndexFunc(m.IdleLinks, func(x topologies.LinkTraffic) bool { return x.Name == lt.Name }); i >= 0 && m.IdleSeconds > 0 {
			r.IdleRoundTripsPerS = float64(m.IdleLinks[i].RoundTrips()) / m.IdleSeconds
		}
		if requests > 0 {
			r.RoundTripsPerRequest = max(0, float64(lt.RoundTrips())-r.IdleRoundTripsPerS*seconds) / float64(requests)
		}
		if i := slices.IndexFunc(links, func(l topologies.Link) bool { return l.Name == lt.Name }); i >= 0 {
			r.AddedMSPerRequest = r.RoundTripsPerRequest * 2 * links[i].LatencyMS
		}
		if r.OnRequestPath() {
			added += r.AddedMSPerRequest
			late += r.RoundTripsPerRequest * 2 * r.LateMSPerChunk
		}
		out = append(out, r)
	}
	return out, added, late
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
