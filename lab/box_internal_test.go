package lab

import (
	"math"
	"testing"
	"time"

	"scalelab/internal/burn"
	"scalelab/model"
	"scalelab/reports"
)

// TestBoxPathFollowsTheTiers shapes a chain after phase 4's demands: one
// hop per tier in the order a request meets them, instances added up, the
// single-threaded tiers capped, and what the components beside the path
// spend put on the front, so the chain costs what the phase's tiers cost.
func TestBoxPathFollowsTheTiers(t *testing.T) {
	d := model.Demands{
		"varnish": 70e-6, "haproxy": 17e-6,
		"app-1": 18e-6, "app-2": 18e-6, "app-3": 18e-6,
		"redis-master-0": 6e-6, "redis-master-1": 6e-6, "redis-master-2": 5e-6,
		"pgbouncer": 11e-6, "replica-1": 10e-6, "replica-2": 9e-6, "primary": 67e-6,
		"prometheus": 12e-6, "postgres-exporter": 2e-6, model.Loadgen: 39e-6,
		"redis-replica-0": 0, "worker-1": 3e-6,
	}
	m := model.LabMachine(2, []string{"redis-master-0", "redis-master-1", "redis-master-2", "pgbouncer"})
	front, hops := boxPath(d, m.Threads)
	if want := (70 + 12 + 2 + 3) * time.Microsecond; front != want {
		t.Errorf("front spends %s, want %s (varnish's and the components' beside the path)", front, want)
	}
	want := []burn.Hop{
		{Name: "haproxy", Work: 17 * time.Microsecond},
		{Name: "app", Work: 54 * time.Microsecond},
		{Name: "redis-master", Work: 17 * time.Microsecond, Threads: 3},
		{Name: "pgbouncer", Work: 11 * time.Microsecond, Threads: 1},
		{Name: "replica", Work: 19 * time.Microsecond},
		{Name: "primary", Work: 67 * time.Microsecond},
	}
	if burn.FormatHops(hops) != burn.FormatHops(want) {
		t.Errorf("hops %s, want %s", burn.FormatHops(hops), burn.FormatHops(want))
	}
	total := front
	for _, h := range hops {
		total += h.Work
	}
	if wantTotal := time.Duration((d.Total()-d[model.Loadgen])*1e9+0.5) / time.Microsecond * time.Microsecond; total != wantTotal {
		t.Errorf("the chain spends %s, the tiers %s", total, wantTotal)
	}

	front, hops = boxPath(model.Demands{"app": 100e-6, model.Loadgen: 40e-6}, nil)
	if front != 100*time.Microsecond || len(hops) != 0 {
		t.Errorf("phase 1: front %s, hops %v; want the app's 100µs and no hop", front, hops)
	}
}

func TestTierOf(t *testing.T) {
	for name, want := range map[string]string{
		"app-2": "app", "redis-master-0": "redis-master", "replica-12": "replica",
		"haproxy": "haproxy", "postgres-exporter": "postgres-exporter", "app-": "app-", "a-b2": "a-b2", "worker-1": "worker",
	} {
		if got := tierOf(name); got != want {
			t.Errorf("tierOf(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestBoxSLO(t *testing.T) {
	phase := SLO{P99: 50 * time.Millisecond, MaxLost: 0.001, MinAchieved: 0.95}
	for _, tc := range []struct {
		p0   float64
		want time.Duration
		ok   bool
	}{
		{p0: 7.435, want: 42500 * time.Microsecond, ok: true}, // rounded down to the tenth of a ms
		{p0: 0, want: 50 * time.Millisecond, ok: true},
		{p0: 49, want: time.Millisecond, ok: true},
		{p0: 49.5, ok: false}, // less than a millisecond of room
		{p0: 60, ok: false},
	} {
		room, ok := boxSLO(phase, tc.p0)
		if ok != tc.ok || (ok && room.P99 != tc.want) {
			t.Errorf("boxSLO(p0 %v) = %v, %v; want p99 bound %v, %v", tc.p0, room.P99, ok, tc.want, tc.ok)
		}
		if ok && (room.MaxLost != phase.MaxLost || room.MinAchieved != phase.MinAchieved) {
			t.Errorf("boxSLO(p0 %v) = %+v: want the phase's losses and achieved share kept", tc.p0, room)
		}
	}
	if _, ok := boxSLO(SLO{MaxLost: 0.001}, 1); ok {
		t.Error("boxSLO with no p99 bound: ok, want none")
	}
}

// TestKneeBusyIsTheMedianOfThePassesAtTheKnee takes the busy share of the
// passing attempts at the knee only, and for two of them their mean, not
// the higher one.
func TestKneeBusyIsTheMedianOfThePassesAtTheKnee(t *testing.T) {
	step := func(rate, busyCores float64, pass bool) SearchStep {
		// BusyCores is the components' CPU per request times the rate.
		return SearchStep{Pass: pass, Step: reports.CapacityStep{Offered: rate, Achieved: rate, CPUUSPerRequest: map[string]float64{"box": busyCores / rate * 1e6}}}
	}
	steps := []SearchStep{
		step(5000, 1.2, true),
		step(6000, 1.9, false),
		step(5500, 1.6, true),
		step(5500, 1.8, true),
		step(5750, 1.9, false),
	}
	if got, want := kneeBusy(steps, 5500, 2), 0.85; math.Abs(got-want) > 1e-9 {
		t.Errorf("kneeBusy = %v, want %v (the mean of 0.8 and 0.9)", got, want)
	}
	steps = append(steps, step(5500, 1.0, false), step(5500, 1.7, true))
	if got, want := kneeBusy(steps, 5500, 2), 0.85; math.Abs(got-want) > 1e-9 {
		t.Errorf("kneeBusy = %v, want %v (the middle of 0.8, 0.85 and 0.9; the failed attempt left out)", got, want)
	}
	if got := kneeBusy(steps, 7000, 2); got != 0 {
		t.Errorf("kneeBusy with no pass at the knee = %v, want 0", got)
	}
}
