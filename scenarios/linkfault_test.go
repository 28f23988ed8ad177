package scenarios

import (
	"strings"
	"testing"
	"time"
)

const linkBase = `name: x
executor:
  type: constant-arrival-rate
  rate: 10
duration: 30s
mix:
  - op: get-user
faults:
`

func TestLinkFaults(t *testing.T) {
	s, err := Parse("x.yaml", []byte(linkBase+`  - at: 5s
    link: app->redis
    action: slow
    latency: 50ms
    for: 10s
  - at: 10s
    link: primary->replica-1
    action: partition
    direction: forward
  - at: 12s
    link: client->haproxy
    action: bandwidth
    rate_kbps: 100
    for: 1s
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Fault{
		{At: 5 * time.Second, Link: "app->redis", Action: FaultSlow, Latency: 50 * time.Millisecond, For: 10 * time.Second},
		{At: 10 * time.Second, Link: "primary->replica-1", Action: FaultPartition, Direction: "forward"},
		{At: 12 * time.Second, Link: "client->haproxy", Action: FaultBandwidth, RateKBps: 100, For: time.Second},
	}
	if len(s.Faults) != len(want) {
		t.Fatalf("Faults = %+v, want %+v", s.Faults, want)
	}
	for i := range want {
		if s.Faults[i] != want[i] {
			t.Errorf("Faults[%d] = %+v, want %+v", i, s.Faults[i], want[i])
		}
	}
	if got, w := s.Faults[0].String(), "at 5s: slow app->redis +50ms for 10s"; got != w {
		t.Errorf("String() = %q, want %q", got, w)
	}
}

func TestBadLinkFaults(t *testing.T) {
	tests := []struct{ name, fault, want string }{
		{"component and link", "  - {at: 1s, component: redis, link: app->redis, action: slow, latency: 1ms}\n", "x.yaml:9: faults[0].link: a fault acts on a component or on a link, not both"},
		{"neither", "  - {at: 1s, action: kill}\n", "faults[0].component: required, or link"},
		{"component action on a link", "  - {at: 1s, link: app->redis, action: kill}\n", `unknown action "kill" on a link (want partition, slow, bandwidth, reset)`},
		{"link action on a component", "  - {at: 1s, component: redis, action: partition}\n", `unknown action "partition"`},
		{"not a link", "  - {at: 1s, link: redis, action: reset}\n", `"redis": name a link from->to`},
		{"slow without latency", "  - {at: 1s, link: app->redis, action: slow}\n", "slow needs a positive latency"},
		{"bandwidth without rate", "  - {at: 1s, link: app->redis, action: bandwidth}\n", "bandwidth needs a positive rate"},
		{"bad direction", "  - {at: 1s, link: app->redis, action: reset, direction: up}\n", `"up", want both, forward or backward`},
		{"for on a component", "  - {at: 1s, component: redis, action: kill, for: 2s}\n", "belong to link faults"},
		{"unknown field", "  - {at: 1s, link: app->redis, action: reset, loss: 1}\n", "loss"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("x.yaml", []byte(linkBase+tt.fault))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
