package lab

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"scalelab/reports"
	"scalelab/scenarios"
	"scalelab/topologies"
)

// linkLog records what injectLinkFaults did to which link, and when.
type linkLog struct {
	mu     sync.Mutex
	links  []string
	events []string
}

func (l *linkLog) HasLink(name string) error {
	for _, n := range l.links {
		if n == name {
			return nil
		}
	}
	return errors.New("no such link")
}

func (l *linkLog) InjectLinkFault(_ context.Context, name string, f topologies.LinkFault) (func(context.Context) error, error) {
	l.add(string(f.Action) + " " + name)
	return func(context.Context) error { l.add("heal " + name); return nil }, nil
}

func (l *linkLog) add(e string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func TestCheckLinkFaults(t *testing.T) {
	top := &linkLog{links: []string{"primary->replica-1"}}
	_, err := checkLinkFaults(top, []scenarios.Fault{{Link: "primary->replica-2", Action: scenarios.FaultPartition}})
	if err == nil || !strings.Contains(err.Error(), "no such link") {
		t.Errorf("checkLinkFaults(missing link) = %v, want the topology's error", err)
	}
	got, err := checkLinkFaults(top, []scenarios.Fault{{Link: "primary->replica-1", Action: scenarios.FaultSlow, Latency: time.Millisecond}})
	if err != nil || len(got) != 1 || got[0].fault.Action != topologies.LinkSlow || got[0].fault.Latency != time.Millisecond {
		t.Errorf("checkLinkFaults = %+v, %v, want one slow fault of 1ms", got, err)
	}
}

// Each fault is healed after For; one without For, when the run ends.
func TestInjectLinkFaults(t *testing.T) {
	top := &linkLog{links: []string{"a->b", "c->d"}}
	faults, err := checkLinkFaults(top, []scenarios.Fault{
		{At: 0, Link: "a->b", Action: scenarios.FaultPartition, For: 20 * time.Millisecond},
		{At: 40 * time.Millisecond, Link: "c->d", Action: scenarios.FaultReset},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	type outcome struct {
		lines    []string
		injected []injectedLink
	}
	start := time.Now()
	done := make(chan outcome, 1)
	go func() {
		lines, injected := injectLinkFaults(ctx, top, faults, start, io.Discard)
		done <- outcome{lines, injected}
	}()
	for {
		top.mu.Lock()
		n := len(top.events)
		top.mu.Unlock()
		if n == 3 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	out := <-done
	lines := out.lines
	want := []string{"partition a->b", "heal a->b", "reset c->d", "heal c->d"}
	if strings.Join(top.events, ",") != strings.Join(want, ",") {
		t.Errorf("events = %v, want %v", top.events, want)
	}
	if len(lines) != 4 || !strings.Contains(lines[3], "healed when the run ended") {
		t.Errorf("lines = %q, want 4, the last healed when the run ended", lines)
	}
	marks := reportLinkFaults(out.injected, start)
	if len(marks) != 2 || marks[0].Fault != "partition a->b for 20ms" || marks[1].AtS < 0.04 || marks[0].Error != "" || marks[1].Error != "" {
		t.Errorf("faults for the charts = %+v, want the partition at 0 s and the reset from 0.04 s", marks)
	}
}

func TestNetworkResult(t *testing.T) {
	res := reports.Result{Components: []reports.Component{{Name: "app-1", CPUS: 3}, {Name: "toxiproxy", CPUS: 1}}}
	path := []topologies.ReadStep{{Tier: "l1", Links: []string{"client->app-1"}, RoundTripMS: 0.5}, {Tier: "l2", Links: []string{"app->redis"}, RoundTripMS: 0.5}}
	n := networkResult("datacenter", []topologies.Link{{Name: "app->redis", LatencyMS: 0.25, JitterMS: 0.025, TimeoutS: 30}}, path, nil, &res)
	if n.Profile != "datacenter" || len(n.Links) != 1 || n.Links[0].Name != "app->redis" || n.Links[0].LatencyMS != 0.25 || n.Links[0].TimeoutS != 30 {
		t.Errorf("network = %+v", n)
	}
	if len(n.ReadPath) != 2 || n.ReadPath[1].Tier != "l2" || n.ReadPath[1].RoundTripMS != 0.5 {
		t.Errorf("read path = %+v, want l1 then l2", n.ReadPath)
	}
	if none := networkResult("none", nil, path, nil, &res); none.ReadPath != nil {
		t.Errorf("read path under none = %+v, want none: no link was proxied", none.ReadPath)
	}
	if n.ProxyCPUS != 1 || n.ProxyCPUShare != 0.25 {
		t.Errorf("proxy CPU = %v s, share %v; want 1 s, 0.25", n.ProxyCPUS, n.ProxyCPUShare)
	}
	if len(res.Components) != 1 || res.Components[0].Name != "app-1" {
		t.Errorf("components = %+v, want app-1 only: the proxies are not the system", res.Components)
	}
}

// The round trips a request made on each link are the chunks that crossed
// it the fewer way (Redis pushes pub/sub messages no request waits for),
// less what crosses it with no load, over the run's requests; replication
// is not on a request's path.
func TestLinkTraffic(t *testing.T) {
	links := []topologies.Link{
		{Name: "client->app-1", LatencyMS: 0.25},
		{Name: "app->redis", LatencyMS: 0.25},
		{Name: "primary->replica-1", LatencyMS: 0.25},
	}
	start := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	m := &topologies.Measurements{
		Start: start, End: start.Add(10 * time.Second),
		Links: []topologies.LinkTraffic{
			{Name: "client->app-1", Upstream: 1000, Downstream: 1000, Late: 100 * time.Millisecond}, // 50 µs a chunk
			{Name: "app->redis", Upstream: 2600, Downstream: 2700},                                  // 100 of them idle; 100 pub/sub messages
			{Name: "primary->replica-1", Upstream: 900, Downstream: 950},
		},
		IdleLinks: []topologies.LinkTraffic{
			{Name: "client->app-1"},
			{Name: "app->redis", Upstream: 20, Downstream: 20},
			{Name: "primary->replica-1", Upstream: 90, Downstream: 95},
		},
		IdleSeconds: 2,
	}
	got, added, late := linkTraffic(links, m, 1000)
	want := []reports.LinkTraffic{
		{Link: "client->app-1", ChunksUp: 1000, ChunksDown: 1000, RoundTripsPerRequest: 1, AddedMSPerRequest: 0.5, LateMSPerChunk: 0.05},
		{Link: "app->redis", ChunksUp: 2600, ChunksDown: 2700, IdleRoundTripsPerS: 10, RoundTripsPerRequest: 2.5, AddedMSPerRequest: 1.25},
		{Link: "primary->replica-1", ChunksUp: 900, ChunksDown: 950, IdleRoundTripsPerS: 45, RoundTripsPerRequest: 0.45, AddedMSPerRequest: 0.225},
	}
	if !slices.Equal(got, want) {
		t.Errorf("traffic =\n%+v\nwant\n%+v", got, want)
	}
	if added != 1.75 {
		t.Errorf("added per request = %v ms, want 1.75: replication waits on no request", added)
	}
	if late != 0.1 {
		t.Errorf("late per request = %v ms, want 0.1: one round trip, two chunks 50 µs late each", late)
	}
}
