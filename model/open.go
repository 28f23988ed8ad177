package model

import (
	"fmt"
	"math"
)

// Open is the mean performance of an open network at one arrival rate.
type Open struct {
	// Rate is the arrival rate, requests per second.
	Rate float64
	// ResponseTime is the mean time a request spends in the network, +Inf
	// when a station is saturated (the rate is at or above the bound).
	ResponseTime float64
	// Residence and Utilization are per station, in the order of
	// Network.Stations.
	Residence   []float64
	Utilization []float64
}

// SolveOpen solves the network as an open product-form network at the
// given arrival rate (Lazowska et al., chapter 6; Jain, chapter 31, for the
// M/M/m queue): a delay center adds its demand; a single server with
// utilization U = λD adds D/(1−U); a station of m servers with ρ = λD/m adds
// D + C(m, λD)·(D/m)/(1−ρ), where C is Erlang's C formula, the probability
// that an arrival waits. The think time plays no part. These are mean
// times under exponential assumptions: the lab's service times are not
// exponential, so the curve is the shape of the hockey stick, not a
// prediction of p99.
func SolveOpen(net Network, rate float64) (Open, error) {
	if err := net.validate(); err != nil {
		return Open{}, fmt.Errorf("solve open: %w", err)
	}
	if rate < 0 || math.IsNaN(rate) {
		return Open{}, fmt.Errorf("solve open: rate %v: must be 0 or more", rate)
	}
	o := Open{Rate: rate, Residence: make([]float64, len(net.Stations)), Utilization: make([]float64, len(net.Stations))}
	for i, s := range net.Stations {
		a := rate * s.Demand // offered load, in servers
		switch {
		case s.Servers == 0:
			o.Utilization[i] = a
			o.Residence[i] = s.Demand
		default:
			m := float64(s.Servers)
			rho := a / m
			o.Utilization[i] = rho
			switch {
			case rho >= 1:
				o.Residence[i] = math.Inf(1)
			case s.Servers == 1:
				o.Residence[i] = s.Demand / (1 - rho)
			default:
				o.Residence[i] = s.Demand + ErlangC(s.Servers, a)*(s.Demand/m)/(1-rho)
			}
		}
		o.ResponseTime += o.Residence[i]
	}
	return o, nil
}

// ErlangC is the probability that an arrival at an M/M/m queue with
// offered load a = λ·S (in servers, a < m) has to wait. It is computed
// from Erlang's B formula by its stable recursion
// B(0) = 1, B(k) = a·B(k−1)/(k + a·B(k−1)), and C = B/(1 − ρ(1 − B)) with
// ρ = a/m.
func ErlangC(m int, a float64) float64 {
	if m < 1 || a <= 0 {
		return 0
	}
	rho := a / float64(m)
	if rho >= 1 {
		return 1
	}
	b := 1.0
	for k := 1; k <= m; k++ {
		b = a * b / (float64(k) + a*b)
	}
	return b / (1 - rho*(1-b))
}
