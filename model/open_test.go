package model

import (
	"math"
	"testing"
)

func TestErlangC(t *testing.T) {
	for _, tc := range []struct {
		m    int
		a    float64
		want float64
	}{
		// M/M/1: an arrival waits with probability ρ.
		{1, 0.3, 0.3},
		{1, 0.9, 0.9},
		// M/M/2: C = 2ρ²/(1+ρ); ρ = 1/2 gives 1/3.
		{2, 1, 1.0 / 3},
		{2, 1.6, 2 * 0.64 / 1.8},
		// M/M/3 at a = 2: B(3, 2) = (8/6)/(1+2+2+8/6) = 4/19; C = B/(1−ρ(1−B))
		// with ρ = 2/3: (4/19)/(1 − (2/3)(15/19)) = 4/9.
		{3, 2, 4.0 / 9},
		{4, 0, 0},
		{2, 2, 1},
	} {
		if got := ErlangC(tc.m, tc.a); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("ErlangC(%d, %v) = %v, want %v", tc.m, tc.a, got, tc.want)
		}
	}
}

func TestSolveOpen(t *testing.T) {
	net := Network{Stations: []Station{
		{Name: "cores", Demand: 0.001, Servers: 2},
		{Name: "redis", Demand: 0.0002, Servers: 1},
		{Name: "network", Demand: 0.0005, Servers: 0},
	}}
	o, err := SolveOpen(net, 1000)
	if err != nil {
		t.Fatalf("SolveOpen: %v", err)
	}
	// Cores: a = 1, ρ = 1/2, C = 1/3: 1 ms + (1/3)(0.5 ms)/(1/2) = 4/3 ms.
	// Redis: U = 0.2: 0.2 ms/0.8 = 0.25 ms. Network: 0.5 ms.
	want := []float64{0.001 + (1.0/3)*0.0005/0.5, 0.00025, 0.0005}
	for i := range want {
		if math.Abs(o.Residence[i]-want[i]) > 1e-15 {
			t.Errorf("%s residence = %v, want %v", net.Stations[i].Name, o.Residence[i], want[i])
		}
	}
	if math.Abs(o.ResponseTime-(want[0]+want[1]+want[2])) > 1e-15 {
		t.Errorf("response time = %v", o.ResponseTime)
	}
	if o.Utilization[0] != 0.5 || o.Utilization[1] != 0.2 {
		t.Errorf("utilization = %v", o.Utilization)
	}
	// At the bound, the cores saturate.
	b, _ := net.Bounds()
	sat, err := SolveOpen(net, b.MaxThroughput)
	if err != nil {
		t.Fatalf("SolveOpen: %v", err)
	}
	if !math.IsInf(sat.ResponseTime, 1) {
		t.Errorf("response time at the bound %v/s = %v, want +Inf", b.MaxThroughput, sat.ResponseTime)
	}
}
