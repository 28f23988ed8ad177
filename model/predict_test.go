package model

import (
	"math"
	"testing"
)

func TestPredict(t *testing.T) {
	phase3 := Demands{"app-1": 100e-6, "app-2": 100e-6, "redis": 60e-6, "haproxy": 50e-6, Loadgen: 40e-6}
	for _, tc := range []struct {
		name       string
		d          Demands
		m          Machine
		want       float64
		bottleneck string
	}{
		{
			// 350 µs of core time per request on 2 cores.
			name: "cores bind", d: phase3,
			m:    Machine{Cores: 2, Threads: map[string]int{"redis": 1, "haproxy": 1}},
			want: 2 / 350e-6, bottleneck: Cores,
		},
		{
			name: "background takes cores away", d: phase3,
			m:    Machine{Cores: 2, Background: 0.5, Threads: map[string]int{"redis": 1}},
			want: 1.5 / 350e-6, bottleneck: Cores,
		},
		{
			// On 8 cores the single Redis thread (60 µs) runs out at
			// 16,667/s, before the cores (22,857/s).
			name: "single thread binds on a big box", d: phase3,
			m:    Machine{Cores: 8, Threads: map[string]int{"redis": 1, "haproxy": 4}},
			want: 1 / 60e-6, bottleneck: "redis",
		},
		{
			// At u = 0.75 the 2 cores offer 1.5, less 0.5 of background;
			// the Redis thread 0.75 of its one.
			name: "the SLO's utilization", d: phase3,
			m:    Machine{Cores: 2, Background: 0.5, Utilization: 0.75, Threads: map[string]int{"redis": 1}},
			want: 1.0 / 350e-6, bottleneck: Cores,
		},
		{
			name: "the SLO's utilization on a big box", d: phase3,
			m:    Machine{Cores: 8, Utilization: 0.75, Threads: map[string]int{"redis": 1}},
			want: 0.75 / 60e-6, bottleneck: "redis",
		},
		{
			name: "a thread count of all cores is no limit", d: Demands{"redis": 300e-6},
			m:    Machine{Cores: 2, Threads: map[string]int{"redis": 2}},
			want: 2 / 300e-6, bottleneck: Cores,
		},
		{
			name: "serial writer", d: Demands{"app-1": 200e-6},
			m:    Machine{Cores: 2, Serial: map[string]float64{"sqlite-writer": 1e-3}},
			want: 1000, bottleneck: "sqlite-writer",
		},
		{
			name: "the load generator is never a component bottleneck", d: Demands{"app-1": 100e-6, Loadgen: 100e-6},
			m:    Machine{Cores: 2, Threads: map[string]int{Loadgen: 1}},
			want: 2 / 200e-6, bottleneck: Cores,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, bottleneck, in := Predict(tc.d, tc.m)
			if math.Abs(got-tc.want) > 1e-9*tc.want || bottleneck != tc.bottleneck {
				t.Errorf("Predict = %.3f, %q, want %.3f, %q", got, bottleneck, tc.want, tc.bottleneck)
			}
			if in.Model != ModelName+", "+RuleMM1 || in.Cores != tc.m.Cores || math.Abs(in.TotalDemand-tc.d.Total()) > 1e-15 {
				t.Errorf("inputs = %+v", in)
			}
			if len(in.Constraints) == 0 || in.Constraints[0].Name != bottleneck {
				t.Errorf("constraints = %+v, want the bottleneck first", in.Constraints)
			}
			for i := 1; i < len(in.Constraints); i++ {
				if in.Constraints[i].MaxRate < in.Constraints[i-1].MaxRate {
					t.Errorf("constraints not tightest first: %+v", in.Constraints)
				}
			}
		})
	}
}

func TestPredictNoDemand(t *testing.T) {
	got, bottleneck, _ := Predict(Demands{}, Machine{Cores: 2})
	if !math.IsInf(got, 1) || bottleneck != "" {
		t.Errorf("Predict(no demand) = %v, %q, want +Inf, \"\"", got, bottleneck)
	}
}

// TestMachineNetworkMatchesPredict checks that the closed network of a
// machine, solved exactly with many clients and no think time, saturates
// at the open bound Predict gives, from below.
func TestMachineNetworkMatchesPredict(t *testing.T) {
	d := Demands{"app-1": 150e-6, "primary": 50e-6, Loadgen: 30e-6, "redis": 40e-6}
	for _, m := range []Machine{
		{Cores: 2},
		{Cores: 2, Background: 0.3},
		{Cores: 16, Threads: map[string]int{"redis": 1}},
	} {
		want, bottleneck, _ := Predict(d, m)
		net, err := m.Network(d, 0)
		if err != nil {
			t.Fatalf("Network: %v", err)
		}
		sols, err := MVA(net, 300)
		if err != nil {
			t.Fatalf("MVA: %v", err)
		}
		got := sols[len(sols)-1].Throughput
		if got > want*(1+1e-9) || got < 0.97*want {
			t.Errorf("machine %+v: MVA throughput at N=300 = %.1f, want just under Predict's %.1f (%s)", m, got, want, bottleneck)
		}
		b, err := net.Bounds()
		if err != nil {
			t.Fatalf("Bounds: %v", err)
		}
		if math.Abs(b.MaxThroughput-want) > 1e-9*want || b.Bottleneck != bottleneck {
			t.Errorf("machine %+v: network bound %.1f (%s), Predict %.1f (%s)", m, b.MaxThroughput, b.Bottleneck, want, bottleneck)
		}
	}
}

func TestLabMachine(t *testing.T) {
	m := LabMachine(2, []string{"app-1", "haproxy", "redis", "redis-master-0", "pgbouncer", "primary", "varnish"})
	want := map[string]int{"redis": 1, "redis-master-0": 1, "pgbouncer": 1}
	if m.Cores != 2 || len(m.Threads) != len(want) {
		t.Fatalf("LabMachine = %+v, want 2 cores and threads %v", m, want)
	}
	for k, v := range want {
		if m.Threads[k] != v {
			t.Errorf("threads[%s] = %d, want %d", k, m.Threads[k], v)
		}
	}
}

func TestInputsFlat(t *testing.T) {
	_, _, in := Predict(Demands{"app-1": 100e-6, "redis": 50e-6, Loadgen: 50e-6}, Machine{Cores: 2, Threads: map[string]int{"redis": 1}})
	f := in.Flat()
	for k, want := range map[string]float64{
		"cores": 2, "total_demand_s": 200e-6, "loadgen_demand_s": 50e-6,
		"max_rate.cores": 10000, "max_rate.redis": 20000, "servers.redis": 1, "demand_s.redis": 50e-6,
	} {
		if got, ok := f[k]; !ok || math.Abs(got-want) > 1e-9*math.Abs(want) {
			t.Errorf("Flat()[%q] = %v, want %v", k, got, want)
		}
	}
}

// An M/M/1 queue's response time is exponential with rate μ(1−ρ): its p99
// at utilization ρ is its zero-load p99 over 1−ρ. With a zero-load p99 of
// 10 ms, a 50 ms objective holds up to ρ = 0.8; check it against the
// queue itself (ln(100)/(μ(1−ρ))).
func TestSLOUtilization(t *testing.T) {
	const mu = 1 / 2.171e-3 // service rate: a zero-load p99 of ln(100)/μ = 10 ms
	p99 := func(rho float64) float64 { return math.Log(100) / (mu * (1 - rho)) }
	u := SLOUtilization(p99(0)*1000, 50)
	if math.Abs(u-0.8) > 0.001 {
		t.Errorf("SLOUtilization(%.2f ms, 50 ms) = %v, want 0.8", p99(0)*1000, u)
	}
	if got := p99(u) * 1000; math.Abs(got-50) > 0.1 {
		t.Errorf("an M/M/1 queue at ρ = %v has p99 %.2f ms, want the 50 ms objective", u, got)
	}
	for _, tc := range []struct{ p0, slo, want float64 }{{60, 50, 0}, {0, 50, 1}, {5, 0, 1}} {
		if got := SLOUtilization(tc.p0, tc.slo); got != tc.want {
			t.Errorf("SLOUtilization(%v, %v) = %v, want %v", tc.p0, tc.slo, got, tc.want)
		}
	}
}
