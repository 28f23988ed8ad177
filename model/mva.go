// Package model is the lab's queueing model: it turns the CPU seconds each
// component spends per request into the rate a machine can sustain, and
// names what runs out first.
//
// Two tools, both from the operational analysis of queueing networks
// (Lazowska, Zahorjan, Graham and Sevcik, "Quantitative System Performance",
// 1984; Jain, "The Art of Computer Systems Performance Analysis", 1991,
// chapters 33 and 34):
//
//   - the asymptotic bounds of an open network, which hold for any service
//     time distribution: a station with m servers and service demand D
//     serves at most m/D requests per second, so the network's throughput is
//     at most the smallest of those (Bounds, Predict);
//   - exact mean value analysis (MVA) of a closed network with think time,
//     for a fixed population of clients such as a closed-model load (MVA).
//
// A service demand is the total time a request needs from a station over
// all its visits (D = V·S): for a process, the CPU seconds it spends per
// request.
package model

import (
	"errors"
	"fmt"
	"math"
)

// Station is one service center of a queueing network.
type Station struct {
	Name string
	// Demand is the service demand in seconds per request.
	Demand float64
	// Servers is how many requests the station serves at once: 1 for a
	// single server (a single-threaded process), m > 1 for m servers (a
	// machine's cores; solved as a load-dependent station whose rate grows
	// with its queue up to m), 0 for a delay center that never queues.
	Servers int
}

// Network is a single-class queueing network.
type Network struct {
	Stations []Station
	// ThinkTime is the mean time a client of a closed network waits
	// between receiving a response and sending its next request (Z).
	ThinkTime float64
}

// Solution is the mean performance of a closed network at one population.
type Solution struct {
	// Population is the number of clients (N).
	Population int
	// Throughput is requests per second (X).
	Throughput float64
	// ResponseTime is the mean time from sending a request to its response,
	// think time excluded (R).
	ResponseTime float64
	// Residence, QueueLength and Utilization are per station, in the order
	// of Network.Stations: time a request spends at the station over all
	// its visits (R_k), mean number of requests there (Q_k), and the busy
	// fraction of its servers (X·D_k/m; for a delay center, X·D_k).
	Residence   []float64
	QueueLength []float64
	Utilization []float64
}

func (net Network) validate() error {
	if len(net.Stations) == 0 {
		return errors.New("network has no stations")
	}
	if net.ThinkTime < 0 || math.IsNaN(net.ThinkTime) {
		return fmt.Errorf("think time %v: must be 0 or more", net.ThinkTime)
	}
	for _, s := range net.Stations {
		if s.Demand < 0 || math.IsNaN(s.Demand) || math.IsInf(s.Demand, 0) {
			return fmt.Errorf("station %s: demand %v: must be a finite 0 or more", s.Name, s.Demand)
		}
		if s.Servers < 0 {
			return fmt.Errorf("station %s: %d servers: must be 0 (delay) or more", s.Name, s.Servers)
		}
	}
	return nil
}

// MVA solves the closed network exactly for every population from 1 to n
// and returns the n solutions in order (Jain, section 34.2; Lazowska et
// al., chapter 6). Stations with more than one server are solved exactly
// with the load-dependent extension of the algorithm (Lazowska et al.,
// part VI): their residence time needs the probability of each queue
// length, which the recursion carries along.
func MVA(net Network, n int) ([]Solution, error) {
	if err := net.validate(); err != nil {
		return nil, fmt.Errorf("mva: %w", err)
	}
	if n < 1 {
		return nil, fmt.Errorf("mva: population %d: must be at least 1", n)
	}
	k := len(net.Stations)
	q := make([]float64, k) // Q_k(n-1)
	// p[k][j] is P_k(j | n-1) for the multi-server stations.
	p := make([][]float64, k)
	for i, s := range net.Stations {
		if s.Servers > 1 {
			p[i] = []float64{1}
		}
	}
	out := make([]Solution, 0, n)
	for pop := 1; pop <= n; pop++ {
		r := make([]float64, k)
		total := 0.0
		for i, s := range net.Stations {
			switch {
			case s.Servers == 0:
				r[i] = s.Demand
			case s.Servers == 1:
				// Arrival theorem: an arriving request finds the queue
				// the network has with one client fewer.
				r[i] = s.Demand * (1 + q[i])
			default:
				for j := 1; j <= pop; j++ {
					r[i] += float64(j) * s.Demand / alpha(j, s.Servers) * p[i][j-1]
				}
			}
			total += r[i]
		}
		x := float64(pop) / (net.ThinkTime + total)
		sol := Solution{
			Population:   pop,
			Throughput:   x,
			ResponseTime: total,
			Residence:    r,
			QueueLength:  make([]float64, k),
			Utilization:  make([]float64, k),
		}
		for i, s := range net.Stations {
			q[i] = x * r[i]
			sol.QueueLength[i] = q[i]
			sol.Utilization[i] = x * s.Demand / math.Max(1, float64(s.Servers))
			if s.Servers > 1 {
				next := make([]float64, pop+1)
				sum := 0.0
				for j := 1; j <= pop; j++ {
					next[j] = s.Demand / alpha(j, s.Servers) * x * p[i][j-1]
					sum += next[j]
				}
				// The recursion for P(0) is known to lose precision near
				// saturation; a probability is never negative.
				next[0] = math.Max(0, 1-sum)
				p[i] = next
			}
		}
		out = append(out, sol)
	}
	return out, nil
}

// alpha is the rate multiplier of an m-server station holding j requests.
func alpha(j, m int) float64 { return float64(min(j, m)) }

// Bounds are the asymptotic bounds of a network (Jain, box 33.1), with a
// station of m servers counted as serving m requests at once.
type Bounds struct {
	// MaxThroughput is the most the network can serve, the smallest
	// m_k/D_k over its queueing stations (1/D_max when every station has
	// one server).
	MaxThroughput float64
	// Bottleneck is the station that sets MaxThroughput.
	Bottleneck string
	// TotalDemand is D, the sum of every station's demand.
	TotalDemand float64
	// ThinkTime is Z, copied from the network.
	ThinkTime float64
}

// Bounds returns the network's asymptotic bounds. A network of delay
// centers only has no bound: MaxThroughput is +Inf.
func (net Network) Bounds() (Bounds, error) {
	if err := net.validate(); err != nil {
		return Bounds{}, fmt.Errorf("bounds: %w", err)
	}
	b := Bounds{MaxThroughput: math.Inf(1), ThinkTime: net.ThinkTime}
	for _, s := range net.Stations {
		b.TotalDemand += s.Demand
		if s.Servers == 0 || s.Demand == 0 {
			continue
		}
		if x := float64(s.Servers) / s.Demand; x < b.MaxThroughput {
			b.MaxThroughput, b.Bottleneck = x, s.Name
		}
	}
	return b, nil
}

// Throughput is the upper bound on a closed network's throughput with n
// clients: X(n) ≤ min(n/(D+Z), X_max).
func (b Bounds) Throughput(n float64) float64 {
	return math.Min(n/(b.TotalDemand+b.ThinkTime), b.MaxThroughput)
}

// ResponseTime is the lower bound on a closed network's response time with
// n clients: R(n) ≥ max(D, n/X_max − Z).
func (b Bounds) ResponseTime(n float64) float64 {
	return math.Max(b.TotalDemand, n/b.MaxThroughput-b.ThinkTime)
}

// Knee is N*, the population beyond which clients must queue somewhere:
// (D+Z)·X_max, that is (D+Z)/D_max with single servers.
func (b Bounds) Knee() float64 { return (b.TotalDemand + b.ThinkTime) * b.MaxThroughput }

// MaxPopulation is the most clients the bounds allow before the response
// time must exceed r: from R(n) ≥ n/X_max − Z, n ≤ (r+Z)·X_max.
func (b Bounds) MaxPopulation(r float64) float64 { return (r + b.ThinkTime) * b.MaxThroughput }
