package model

import (
	"math"
	"testing"
)

// jain342 is the timesharing system of Jain, "The Art of Computer Systems
// Performance Analysis" (Wiley, 1991), example 34.2: a CPU (service time
// 0.125 s per visit, 16 visits), disk A (0.3 s, 10 visits) and disk B
// (0.2 s, 5 visits), think time 4 s.
var jain342 = struct {
	net    Network
	visits []float64
}{
	net: Network{
		Stations: []Station{
			{Name: "cpu", Demand: 0.125 * 16, Servers: 1},
			{Name: "disk A", Demand: 0.3 * 10, Servers: 1},
			{Name: "disk B", Demand: 0.2 * 5, Servers: 1},
		},
		ThinkTime: 4,
	},
	visits: []float64{16, 10, 5},
}

// TestMVAJainTable341 reproduces Jain's table 34.1, "MVA results for example
// 34.2", to its printed precision (three decimals): per population, the
// response time per visit of each device, the system response time, the
// throughput and each device's queue length.
func TestMVAJainTable341(t *testing.T) {
	table := []struct {
		n                 int
		perVisit          [3]float64
		response, through float64
		queue             [3]float64
	}{
		{1, [3]float64{0.125, 0.300, 0.200}, 6.000, 0.100, [3]float64{0.200, 0.300, 0.100}},
		{2, [3]float64{0.150, 0.390, 0.220}, 7.400, 0.175, [3]float64{0.421, 0.684, 0.193}},
		{3, [3]float64{0.178, 0.505, 0.239}, 9.088, 0.229, [3]float64{0.651, 1.158, 0.273}},
		{4, [3]float64{0.206, 0.647, 0.255}, 11.051, 0.266, [3]float64{0.878, 1.721, 0.338}},
		{5, [3]float64{0.235, 0.816, 0.268}, 13.256, 0.290, [3]float64{1.088, 2.365, 0.388}},
		{17, [3]float64{0.370, 3.962, 0.300}, 47.045, 0.333, [3]float64{1.974, 13.195, 0.499}},
		{18, [3]float64{0.372, 4.259, 0.300}, 50.032, 0.333, [3]float64{1.981, 14.187, 0.499}},
		{19, [3]float64{0.373, 4.556, 0.300}, 53.022, 0.333, [3]float64{1.987, 15.181, 0.500}},
		{20, [3]float64{0.373, 4.854, 0.300}, 56.016, 0.333, [3]float64{1.991, 16.177, 0.500}},
	}
	sols, err := MVA(jain342.net, 20)
	if err != nil {
		t.Fatalf("MVA: %v", err)
	}
	if len(sols) != 20 {
		t.Fatalf("MVA returned %d solutions, want 20", len(sols))
	}
	// Printed to three decimals: a value rounds to the printed one.
	const half = 0.0005 + 1e-9
	for _, row := range table {
		s := sols[row.n-1]
		if s.Population != row.n {
			t.Errorf("solution %d has population %d", row.n-1, s.Population)
		}
		for i, st := range jain342.net.Stations {
			if got := s.Residence[i] / jain342.visits[i]; math.Abs(got-row.perVisit[i]) > half {
				t.Errorf("N=%d: %s response time per visit = %.4f, want %.3f", row.n, st.Name, got, row.perVisit[i])
			}
			if got := s.QueueLength[i]; math.Abs(got-row.queue[i]) > half {
				t.Errorf("N=%d: %s queue length = %.4f, want %.3f", row.n, st.Name, got, row.queue[i])
			}
		}
		if math.Abs(s.ResponseTime-row.response) > half {
			t.Errorf("N=%d: response time = %.4f, want %.3f", row.n, s.ResponseTime, row.response)
		}
		if math.Abs(s.Throughput-row.through) > half {
			t.Errorf("N=%d: throughput = %.4f, want %.3f", row.n, s.Throughput, row.through)
		}
	}
}

// TestBoundsJain337 reproduces Jain's examples 33.7 and 33.8: the
// timesharing system of example 33.2 with demands CPU 5 s, disk A 4 s, disk
// B 3 s and think time 18 s has D = 12, D_max = 5, X ≤ min(1/5, N/30),
// R(N) ≥ max(12, 5N − 18), its knee at N* = 6, and no more than 23.6 users
// if the response time must stay below 100 s.
func TestBoundsJain337(t *testing.T) {
	net := Network{
		Stations: []Station{
			{Name: "cpu", Demand: 5, Servers: 1},
			{Name: "disk A", Demand: 4, Servers: 1},
			{Name: "disk B", Demand: 3, Servers: 1},
		},
		ThinkTime: 18,
	}
	b, err := net.Bounds()
	if err != nil {
		t.Fatalf("Bounds: %v", err)
	}
	checks := []struct {
		name      string
		got, want float64
	}{
		{"D", b.TotalDemand, 12},
		{"X_max", b.MaxThroughput, 0.2},
		{"N*", b.Knee(), 6},
		{"N for R < 100", b.MaxPopulation(100), 23.6},
		{"X(3)", b.Throughput(3), 0.1},
		{"X(10)", b.Throughput(10), 0.2},
		{"R(2)", b.ResponseTime(2), 12},
		{"R(10)", b.ResponseTime(10), 32},
	}
	for _, c := range checks {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if b.Bottleneck != "cpu" {
		t.Errorf("bottleneck = %q, want cpu", b.Bottleneck)
	}
	// The exact solution respects its bounds (Jain, figure 33.4).
	sols, err := MVA(net, 30)
	if err != nil {
		t.Fatalf("MVA: %v", err)
	}
	for _, s := range sols {
		n := float64(s.Population)
		if s.Throughput > b.Throughput(n)+1e-12 || s.ResponseTime < b.ResponseTime(n)-1e-12 {
			t.Errorf("N=%d: X=%v R=%v outside the bounds X≤%v R≥%v", s.Population, s.Throughput, s.ResponseTime, b.Throughput(n), b.ResponseTime(n))
		}
	}
}

// TestMVAMultiServer checks the load-dependent solution of an m-server
// station against the closed form of the same network (the machine
// repairman model, a birth–death chain): with N clients of think time Z and
// one station of m servers and demand D, the probability of j requests at
// the station is proportional to N!/(N−j)! · (D/Z)^j / Π_{i≤j} min(i, m),
// and the throughput is Σ_j p(j)·min(j, m)/D.
func TestMVAMultiServer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		m, n     int
		demand   float64
		thinkSec float64
	}{
		{"2 cores light", 2, 5, 0.1, 1},
		{"2 cores saturated", 2, 40, 0.2, 1},
		{"8 cores", 8, 30, 0.5, 1},
		{"8 cores no think time", 8, 12, 0.5, 0.001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := Network{Stations: []Station{{Name: "cores", Demand: tc.demand, Servers: tc.m}}, ThinkTime: tc.thinkSec}
			sols, err := MVA(net, tc.n)
			if err != nil {
				t.Fatalf("MVA: %v", err)
			}
			for _, s := range sols {
				want := repairmanThroughput(s.Population, tc.m, tc.demand, tc.thinkSec)
				if math.Abs(s.Throughput-want) > 1e-9*want {
					t.Errorf("N=%d: throughput = %.12f, want %.12f", s.Population, s.Throughput, want)
				}
				// Little's law over the whole loop.
				if got := s.Throughput * (s.ResponseTime + tc.thinkSec); math.Abs(got-float64(s.Population)) > 1e-9 {
					t.Errorf("N=%d: X·(R+Z) = %v, want N", s.Population, got)
				}
			}
		})
	}
}

func repairmanThroughput(n, m int, d, z float64) float64 {
	w := make([]float64, n+1)
	w[0] = 1
	sum := 1.0
	for j := 1; j <= n; j++ {
		w[j] = w[j-1] * float64(n-j+1) * (d / z) / float64(min(j, m))
		sum += w[j]
	}
	x := 0.0
	for j := 1; j <= n; j++ {
		x += w[j] / sum * float64(min(j, m)) / d
	}
	return x
}

// TestMVADelayCenter checks that a delay center adds its demand without
// queueing: the throughput is that of the same network with the demand
// added to the think time.
func TestMVADelayCenter(t *testing.T) {
	net := jain342.net
	net.Stations = append(append([]Station(nil), net.Stations...), Station{Name: "network", Demand: 0.5, Servers: 0})
	with, err := MVA(net, 10)
	if err != nil {
		t.Fatalf("MVA: %v", err)
	}
	// Same as adding 0.5 s to the think time, apart from the response time.
	net2 := jain342.net
	net2.ThinkTime += 0.5
	without, err := MVA(net2, 10)
	if err != nil {
		t.Fatalf("MVA: %v", err)
	}
	for i := range with {
		if math.Abs(with[i].Throughput-without[i].Throughput) > 1e-12 {
			t.Errorf("N=%d: throughput with a delay center = %v, want %v", i+1, with[i].Throughput, without[i].Throughput)
		}
	}
}

func TestMVARejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		net  Network
		n    int
	}{
		{"no stations", Network{}, 1},
		{"negative demand", Network{Stations: []Station{{Name: "a", Demand: -1, Servers: 1}}}, 1},
		{"negative think time", Network{Stations: []Station{{Name: "a", Demand: 1, Servers: 1}}, ThinkTime: -1}, 1},
		{"no population", Network{Stations: []Station{{Name: "a", Demand: 1, Servers: 1}}}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := MVA(tc.net, tc.n); err == nil {
				t.Errorf("MVA(%+v, %d) = nil error, want one", tc.net, tc.n)
			}
		})
	}
}
