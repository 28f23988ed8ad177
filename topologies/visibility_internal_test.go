package topologies

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// A watcher credits each probe with the delay from its acknowledgement to
// the read that first showed it, counts the ones that outlive the timeout
// at the timeout, and at the end counts what is still pending at its age.
func TestVisibilityBookkeeping(t *testing.T) {
	const timeout = time.Second
	base := time.Unix(1_700_000_000, 0)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	w := newVisibilityWatcher(pgNode{name: "replica-1"}, timeout)
	w.start = base
	p := &visibilityProbe{watchers: []*visibilityWatcher{w}}

	w.push(probeWrite{seq: 1, ack: at(0)})
	if left, ok := w.seen(0, at(1)); !ok || left.seq != 1 {
		t.Fatalf("seen(0) left %+v, %v; want probe 1 pending", left, ok)
	}
	// One read shows probes 1 and 2, and began before 2 was acknowledged:
	// delays of 99 ms and 0.
	w.push(probeWrite{seq: 2, ack: at(100)})
	if left, ok := w.seen(2, at(99)); ok {
		t.Fatalf("seen(2) left %+v pending, want none", left)
	}
	// Probes 3-6 wait on a stuck replica: 3 times out while the watcher
	// polls; 4 has waited too long when a read finally shows it, with 5,
	// after 200 ms; 6 is still pending.
	w.push(probeWrite{seq: 3, ack: at(200)})
	w.push(probeWrite{seq: 4, ack: at(300)})
	w.push(probeWrite{seq: 5, ack: at(1250)})
	w.push(probeWrite{seq: 6, ack: at(1500)})
	if oldest, ok := w.oldest(at(1250)); !ok || oldest.seq != 4 {
		t.Fatalf("oldest at 1250 ms = %+v, %v; want probe 4 (3 timed out)", oldest, ok)
	}
	if left, ok := w.seen(5, at(1450)); !ok || left.seq != 6 {
		t.Fatalf("seen(5) left %+v, %v; want probe 6 pending", left, ok)
	}
	// The probe stops when 6 is 30 ms old.
	w.flush(at(1530))

	// The delays: 0, 30, 99, 200, 1000, 1000 ms; per second of
	// acknowledgement 99, 0, 1000, 1000 (probes 1-4) and 200, 30 (5, 6).
	got, ok := p.result("replica-1")
	want := visibility{p50: 99, p99: 1000, max: 1000, probes: 6, timeouts: 2, series: []VisibleSecond{
		{Start: at(0), P99MS: 1000, Probes: 4},
		{Start: at(1000), P99MS: 30 + 0.99*170, Probes: 2},
	}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(visibility{}), cmpopts.EquateApprox(0.001, 0)); !ok || diff != "" {
		t.Errorf("result(replica-1) = %+v, %v; mismatch (-want +got):\n%s", got, ok, diff)
	}
	if _, ok := p.result("replica-9"); ok {
		t.Errorf("result(replica-9) ok, want false: not watched")
	}
}
