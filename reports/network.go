package reports

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Network is how far apart the tiers were: the profile the run used and
// each proxied link with what it added (result.json's "network"; absent
// in results from before the lab simulated distance).
type Network struct {
	// Profile is none (loopback, no proxies), datacenter or internet.
	Profile string        `json:"profile"`
	Links   []NetworkLink `json:"links,omitempty"`
	// ReadPath is the tiers that may answer a read of one user, in the
	// order a read tries them, with the links it crosses to reach each
	// (see ReadCosts).
	ReadPath []ReadStep `json:"read_path,omitempty"`
	// Traffic is what crossed each link during the run, counted by the
	// proxies, with what it added to the mean request; absent in results
	// from before the proxies counted.
	Traffic []LinkTraffic `json:"traffic,omitempty"`
	// AddedMSPerRequest is the sum of Traffic's AddedMSPerRequest over
	// the links a request can cross (all but replication, primary->…):
	// what the distance added to the mean request, if no two of its
	// round trips overlapped.
	AddedMSPerRequest float64 `json:"added_ms_per_request,omitempty"`
	// LateMSPerRequest is what the proxies' lateness added to the mean
	// request on top (Traffic's round trips per request, times two chunks
	// each, times LateMSPerChunk), over the same links.
	LateMSPerRequest float64 `json:"late_ms_per_request,omitempty"`
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
	// TimeoutS closes a connection on the link after that many seconds
	// without data (0: never).
	TimeoutS float64 `json:"timeout_s,omitempty"`
}

// LinkTraffic is what crossed one link during the measured part, as its
// proxy counted it: chunks of data, each what one read of the sender's
// socket returned. HTTP/1.1, Redis and Postgres send one chunk each way
// per round trip, so the fewer of ChunksUp and ChunksDown counts round
// trips (the other direction's extra chunks are pushed messages: Redis'
// pub/sub, a replica's status reports).
type LinkTraffic struct {
	Link string `json:"link"`
	// ChunksUp went towards the link's server, ChunksDown came back.
	ChunksUp   int64 `json:"chunks_up"`
	ChunksDown int64 `json:"chunks_down"`
	// IdleRoundTripsPerS crossed the link each second with no load, just
	// after the run: health checks, replica position checks and other
	// probes, which do not wait on any request.
	IdleRoundTripsPerS float64 `json:"idle_round_trips_per_s"`
	// RoundTripsPerRequest is the link's round trips, less the idle rate
	// over the run's duration, over the run's requests.
	RoundTripsPerRequest float64 `json:"round_trips_per_request"`
	// AddedMSPerRequest is RoundTripsPerRequest times the link's round
	// trip (twice its latency).
	AddedMSPerRequest float64 `json:"added_ms_per_request"`
	// LateMSPerChunk is how much later than due a chunk left the proxy,
	// on average (both directions): the machine's scheduling, which the
	// simulation adds to the link's latency and a real network would not.
	LateMSPerChunk float64 `json:"late_ms_per_chunk"`
}

// OnRequestPath says whether a request can wait on the link: every link
// but replication's (primary->replica-N).
func (lt LinkTraffic) OnRequestPath() bool { return !strings.HasPrefix(lt.Link, "primary->") }

// ReadStep is a tier that may answer a read of one user (l3 the CDN, l1,
// l2, database), the links a read crosses from the step before to reach
// it ("haproxy->app-N": whichever instance), and the round trip they add.
type ReadStep struct {
	Tier        string   `json:"tier"`
	Links       []string `json:"links"`
	RoundTripMS float64  `json:"round_trip_ms"`
}

// ReadCost is what a read answered by one tier paid for the distance.
type ReadCost struct {
	Tier string
	// Links are every link the read crossed, from the client on.
	Links []string
	// AddedMS is the round trip those links added, in total.
	AddedMS float64
	// Share is the fraction of reads this tier answered, from the run's
	// hit rates (each tier's hit rate counts the reads the tiers before it
	// missed).
	Share float64
}

// ReadCosts walks the read path with the run's cache hit rates: a tier
// the run had no hit rate for (no L1 in phase 1, no CDN before phase 4) is
// skipped, its links carried to the next tier. Nil without a read path.
func (n *Network) ReadCosts(cache Cache) []ReadCost {
	rate := map[string]*float64{"l3": cache.L3HitRate, "l1": cache.L1HitRate, "l2": cache.L2HitRate}
	var out []ReadCost
	var links []string
	var added float64
	reach := 1.0 // the fraction of reads that get this far
	for i, s := range n.ReadPath {
		links = append(links, s.Links...)
		added += s.RoundTripMS
		hit := 1.0 // the database answers every read that reaches it
		if i < len(n.ReadPath)-1 {
			h := rate[s.Tier]
			if h == nil {
				continue
			}
			hit = *h
		}
		out = append(out, ReadCost{Tier: s.Tier, Links: append([]string(nil), links...), AddedMS: added, Share: reach * hit})
		reach *= 1 - hit
	}
	return out
}

// MedianReadAddedMS is the distance the median read paid: the added round
// trip of the tier that answered the read at the middle, reads ordered by
// how far they went. A run's p50 should be about this much above the same
// run under profile none. False without a read path.
func (n *Network) MedianReadAddedMS(cache Cache) (float64, bool) {
	var cum float64
	costs := n.ReadCosts(cache)
	for _, rc := range costs {
		cum += rc.Share
		if cum >= 0.5 {
			return rc.AddedMS, true
		}
	}
	if len(costs) == 0 {
		return 0, false
	}
	return costs[len(costs)-1].AddedMS, true
}

// networkSection says, in words, what distance the run simulated, and
// what it costs a read.
func networkSection(r *Result) section {
	n := r.Network
	if n.Profile == "none" || len(n.Links) == 0 {
		return section{title: "Network", text: "Every component talked to the next over loopback (profile none): no network distance was simulated, so a hop cost microseconds, not the fraction of a millisecond a data centre charges."}
	}
	tb := &table{head: []string{"link", "added each way (ms)", "jitter ± (ms)", "bandwidth", "idle timeout"}, num: []bool{false, true, true, true, true}}
	if len(n.Traffic) > 0 {
		tb.head = append(tb.head, "round trips per request", "adds to a request (ms)")
		tb.num = append(tb.num, true, true)
	}
	for _, l := range n.Links {
		bw, idle := "unlimited", "none"
		if l.BandwidthKBps > 0 {
			bw = strconv.Itoa(l.BandwidthKBps) + " KB/s"
		}
		if l.TimeoutS > 0 {
			idle = strconv.FormatFloat(l.TimeoutS, 'g', -1, 64) + " s"
		}
		row := []cell{{text: l.Name, code: true}, c(fmtMS(l.LatencyMS)), c(fmtMS(l.JitterMS)), c(bw), c(idle)}
		if len(n.Traffic) > 0 {
			rt, added := "—", "—"
			if i := slices.IndexFunc(n.Traffic, func(t LinkTraffic) bool { return t.Link == l.Name }); i >= 0 {
				rt = strconv.FormatFloat(n.Traffic[i].RoundTripsPerRequest, 'f', 2, 64)
				added = fmtMS(n.Traffic[i].AddedMSPerRequest)
				if !n.Traffic[i].OnRequestPath() {
					added = "(replication)"
				}
			}
			row = append(row, c(rt), c(added))
		}
		tb.rows = append(tb.rows, row)
	}
	s := section{title: "Network", text: profileSentence(n), table: tb}
	s.paras = append(readArithmetic(r), trafficArithmetic(n)...)
	s.after = fmt.Sprintf("The proxies are part of the experiment, not of the system: they used %s CPU s (%s of all the CPU measured), which is left out of the CPU by component and of every per-request figure.",
		fmtCPU(n.ProxyCPUS), fmtHitRate(n.ProxyCPUShare))
	return s
}

// profileSentence says what the profile means, with the run's own
// figures: the in-DC hop, and under internet the user's distance.
func profileSentence(n *Network) string {
	rtt := func(pred func(name string) bool) (float64, bool) {
		for _, l := range n.Links {
			if pred(l.Name) {
				return 2 * l.LatencyMS, true
			}
		}
		return 0, false
	}
	inDC, _ := rtt(func(name string) bool {
		return strings.HasPrefix(name, "app->") || strings.HasPrefix(name, "haproxy->")
	})
	const proxied = " Each link between two tiers went through a proxy (Toxiproxy) that held every piece of data back for the time in the table, in each direction, as a wire and its switches would; a request pays a link's delay twice (there and back) each time it crosses it."
	switch n.Profile {
	case "proxied":
		return "Profile proxied: every link between two tiers went through a proxy (Toxiproxy), as under the datacenter and internet profiles, but the proxies added no delay. This run is the control: what simulating a network costs this machine (the proxies' CPU, their forwarding of every piece of data). A datacenter run's latency less this run's is what the distance alone adds."
	case "datacenter":
		return fmt.Sprintf("Profile datacenter: every tier runs on its own machine in one data centre, and the users (the load generator) are in it too, so each trip from one tier to the next and back costs about %s ms instead of the few microseconds of loopback.", fmtMS(inDC)) + proxied
	case "internet":
		text := fmt.Sprintf("Profile internet: the servers share one data centre (about %s ms from one tier to the next and back), and the users are far from it", fmtMS(inDC))
		if origin, ok := rtt(func(name string) bool { return strings.HasPrefix(name, "client->") && name != "client->varnish" }); ok {
			text += fmt.Sprintf(": %s ms there and back, as from a city elsewhere on the continent", fmtMS(origin))
		}
		if edge, ok := rtt(func(name string) bool { return name == "client->varnish" }); ok {
			text += fmt.Sprintf("; a CDN edge near them answers in %s ms there and back", fmtMS(edge))
			if back, ok := rtt(func(name string) bool { return strings.HasPrefix(name, "varnish->") }); ok {
				text += fmt.Sprintf(", and what the edge does not have costs another %s ms to fetch from the origin", fmtMS(back))
			}
		}
		return text + "." + proxied
	}
	return "Profile " + n.Profile + "." + proxied
}

// readArithmetic shows, with the run's hit rates, what the distance adds
// to a read answered by each tier, and so to the median read.
func readArithmetic(r *Result) []string {
	n := r.Network
	costs := n.ReadCosts(r.Cache)
	if len(costs) == 0 {
		return nil
	}
	tierName := map[string]string{"l3": "the CDN (L3)", "l1": "L1 (in the app)", "l2": "L2 (Redis)", "database": "the database"}
	var parts []string
	for _, rc := range costs {
		hops := len(rc.Links)
		parts = append(parts, fmt.Sprintf("a read %s answers crosses %s: %s (%s of this run's reads)",
			tierName[rc.Tier], linkList(rc.Links), hopSum(hops, rc.AddedMS), fmtHitRate(rc.Share)))
	}
	text := "What the distance adds to a read of one user (GET /users/{id}), link by link, each round trip counted in full: " + strings.Join(parts, "; ") + "."
	paras := []string{text}
	if med, ok := n.MedianReadAddedMS(r.Cache); ok {
		paras = append(paras, fmt.Sprintf("So the median read paid about %s ms for the distance: this run's p50 should be about that much above the same run under profile none, if the machine was not busier for it (the proxies' CPU, below, is on the same cores).", fmtMS(med)))
	}
	return paras
}

// trafficArithmetic says what the proxies counted: how many round trips
// a request made in all, and what they added to the mean request.
func trafficArithmetic(n *Network) []string {
	if len(n.Traffic) == 0 {
		return nil
	}
	var trips float64
	var idle []string
	for _, t := range n.Traffic {
		if !t.OnRequestPath() {
			continue
		}
		trips += t.RoundTripsPerRequest
		if t.IdleRoundTripsPerS >= 1 {
			idle = append(idle, fmt.Sprintf("`%s` %.0f/s", t.Link, t.IdleRoundTripsPerS))
		}
	}
	text := fmt.Sprintf("The proxies counted every round trip over each link (the last two columns). A request made %.2f round trips over the links between the tiers, its own and those of the work it caused (a rate-limit check, a cache fill), which added %s ms to the mean request if none of them overlapped.",
		trips, fmtMS(n.AddedMSPerRequest))
	if n.LateMSPerRequest > 0 {
		text += fmt.Sprintf(" The proxies also let data through later than due, by the time this machine took to schedule them (%s ms per crossing on average over these links), which no real network adds: %s ms more per request. So this run's mean latency should be about %s ms above the same run under profile none.",
			fmtMS(n.LateMSPerRequest/(2*trips)), fmtMS(n.LateMSPerRequest), fmtMS(n.AddedMSPerRequest+n.LateMSPerRequest))
	} else {
		text += " So this run's mean latency should be about that much above the same run under profile none."
	}
	if len(idle) > 0 {
		text += " Counted apart, and left out: what crossed the links for a second with no load just after the run (health checks, replica position checks), " + strings.Join(idle, ", ") + "."
	}
	return []string{text}
}

// hopSum writes the round trips of hops links as arithmetic: "2 links, 1.00 ms".
func hopSum(hops int, ms float64) string {
	switch hops {
	case 0:
		return "no proxied link, nothing added"
	case 1:
		return fmt.Sprintf("1 link, %s ms", fmtMS(ms))
	}
	return fmt.Sprintf("%d links, %s ms in all", hops, fmtMS(ms))
}

func linkList(links []string) string {
	if len(links) == 0 {
		return "no proxied link"
	}
	quoted := make([]string, len(links))
	for i, l := range links {
		quoted[i] = "`" + l + "`"
	}
	return strings.Join(quoted, ", ")
}
