package cache

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeCDN records PURGE requests and answers with the statuses in plan,
// then 200.
type fakeCDN struct {
	*httptest.Server
	mu    sync.Mutex
	got   []string // "METHOD path host"
	plan  []int
	block chan struct{} // when set, requests wait on it
}

func newFakeCDN(t *testing.T, plan ...int) *fakeCDN {
	t.Helper()
	f := &fakeCDN{plan: plan}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		block := f.block
		f.mu.Unlock()
		if block != nil {
			<-block
		}
		f.mu.Lock()
		f.got = append(f.got, r.Method+" "+r.URL.Path+" "+r.Host)
		status := http.StatusOK
		if len(f.plan) > 0 {
			status, f.plan = f.plan[0], f.plan[1:]
		}
		f.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeCDN) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func mustPurger(t *testing.T, o PurgerOptions) *Purger {
	t.Helper()
	if o.Backoff == 0 {
		o.Backoff = 5 * time.Millisecond
	}
	p, err := NewPurger(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.Start(ctx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ccancel()
		if err := p.Close(cctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		cancel()
	})
	return p
}

func purges(p *Purger, result string) float64 {
	return value(p.results.WithLabelValues(result))
}

// settled waits until the purger has counted n final results (ok + failed).
func settled(t *testing.T, p *Purger, n float64) {
	t.Helper()
	waitFor(t, 5*time.Second, "purges to finish", func() bool { return purges(p, "ok")+purges(p, "failed") >= n })
}

func TestPurgeOK(t *testing.T) {
	a, b := newFakeCDN(t), newFakeCDN(t)
	reg := prometheus.NewRegistry()
	p := mustPurger(t, PurgerOptions{BaseURLs: []string{a.URL, b.URL + "/"}, Registerer: reg})
	p.Purge("/api/v1/users/0190a8a0-0000-7000-8000-000000000001")
	settled(t, p, 2)
	for _, cdn := range []*fakeCDN{a, b} {
		got := cdn.requests()
		want := "PURGE /api/v1/users/0190a8a0-0000-7000-8000-000000000001 " + cdn.Listener.Addr().String()
		if len(got) != 1 || got[0] != want {
			t.Errorf("CDN got %q, want [%q]", got, want)
		}
	}
	if ok, r, f := purges(p, "ok"), purges(p, "retry"), purges(p, "failed"); ok != 2 || r != 0 || f != 0 {
		t.Errorf("ok, retry, failed = %v, %v, %v; want 2, 0, 0", ok, r, f)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 1 || mfs[0].GetName() != "scalelab_cdn_purges_total" {
		t.Errorf("registry holds %v, %v", mfs, err)
	}
}

func TestPurgeHostAndNotFound(t *testing.T) {
	cdn := newFakeCDN(t, http.StatusNotFound)
	p := mustPurger(t, PurgerOptions{BaseURLs: []string{cdn.URL}, Host: "api.scalelab.test"})
	p.Purge("api/v1/users/x")
	settled(t, p, 1)
	if got := cdn.requests(); len(got) != 1 || got[0] != "PURGE /api/v1/users/x api.scalelab.test" {
		t.Errorf("CDN got %q", got)
	}
	if purges(p, "ok") != 1 {
		t.Error("a 404 (nothing cached) did not count as ok")
	}
}

// TestPurgeRepeats: with Repeat, a purge that succeeded is sent once more,
// Repeat later, to remove a copy a CDN fetch in flight stored after it.
func TestPurgeRepeats(t *testing.T) {
	cdn := newFakeCDN(t)
	const repeat = 50 * time.Millisecond
	p := mustPurger(t, PurgerOptions{BaseURLs: []string{cdn.URL}, Repeat: repeat})
	begin := time.Now()
	p.Purge("/u/1")
	waitFor(t, 5*time.Second, "the repeat", func() bool { return len(cdn.requests()) >= 2 })
	if d := time.Since(begin); d < repeat {
		t.Errorf("repeat came %v after Purge, want at least %v", d, repeat)
	}
	time.Sleep(3 * repeat)
	if got := cdn.requests(); len(got) != 2 || got[1] != got[0] {
		t.Errorf("CDN got %q, want the one purge twice", got)
	}
	if ok := purges(p, "ok"); ok != 2 {
		t.Errorf("ok = %v, want 2", ok)
	}
}

func TestPurgeRetries(t *testing.T) {
	tests := []struct {
		name                string
		plan                []int
		requests            int
		ok, retries, failed float64
	}{
		{"recovers", []int{503, 500}, 3, 1, 2, 0},
		{"rate limited", []int{429}, 2, 1, 1, 0},
		{"gives up", []int{500, 502, 503, 504, 500}, 4, 0, 3, 1},
		{"not retryable", []int{405}, 1, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cdn := newFakeCDN(t, tt.plan...)
			p := mustPurger(t, PurgerOptions{BaseURLs: []string{cdn.URL}, Attempts: 4})
			p.Purge("/u/1")
			settled(t, p, 1)
			if n := len(cdn.requests()); n != tt.requests {
				t.Errorf("CDN got %d requests, want %d", n, tt.requests)
			}
			ok, r, f := purges(p, "ok"), purges(p, "retry"), purges(p, "failed")
			if ok != tt.ok || r != tt.retries || f != tt.failed {
				t.Errorf("ok, retry, failed = %v, %v, %v; want %v, %v, %v", ok, r, f, tt.ok, tt.retries, tt.failed)
			}
		})
	}
}

func TestPurgeCDNDown(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	p := mustPurger(t, PurgerOptions{BaseURLs: []string{dead}, Attempts: 3})
	begin := time.Now()
	for range 10 {
		p.Purge("/u/1")
	}
	if d := time.Since(begin); d > 10*time.Millisecond {
		t.Errorf("10 Purge calls took %v with the CDN down", d)
	}
	settled(t, p, 10)
	if f, r := purges(p, "failed"), purges(p, "retry"); f != 10 || r != 20 {
		t.Errorf("failed, retry = %v, %v; want 10, 20", f, r)
	}
}

// TestPurgeNeverBlocks: a hung CDN fills the queue; Purge keeps returning
// at once and counts the overflow as dropped.
func TestPurgeNeverBlocks(t *testing.T) {
	cdn := newFakeCDN(t)
	release := make(chan struct{})
	cdn.mu.Lock()
	cdn.block = release
	cdn.mu.Unlock()
	p := mustPurger(t, PurgerOptions{BaseURLs: []string{cdn.URL}, QueueSize: 2})

	begin := time.Now()
	for range 50 {
		p.Purge("/u/1")
	}
	if d := time.Since(begin); d > 20*time.Millisecond {
		t.Errorf("50 Purge calls took %v with the CDN hung", d)
	}
	// One is in flight, two wait, the rest are dropped.
	if d := purges(p, "dropped"); d < 47 {
		t.Errorf("dropped = %v, want at least 47", d)
	}
	close(release)
	settled(t, p, 50-purges(p, "dropped"))
}

// TestPurgeCloseDrains: Close sends what is queued, then refuses more.
func TestPurgeCloseDrains(t *testing.T) {
	cdn := newFakeCDN(t)
	p, err := NewPurger(PurgerOptions{BaseURLs: []string{cdn.URL}})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 { // queued before the worker runs
		p.Purge("/u/1")
	}
	p.Start(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(cdn.requests()); n != 5 {
		t.Errorf("CDN got %d purges by Close, want 5", n)
	}
	p.Purge("/u/2")
	if d := purges(p, "dropped"); d != 1 {
		t.Errorf("Purge after Close: dropped = %v, want 1", d)
	}
	if err := p.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}

	// Close gives up at its deadline on a hung CDN.
	hung := newFakeCDN(t)
	unblock := make(chan struct{})
	hung.mu.Lock()
	hung.block = unblock
	hung.mu.Unlock()
	defer close(unblock)
	p2, _ := NewPurger(PurgerOptions{BaseURLs: []string{hung.URL}})
	p2.Start(context.Background())
	p2.Purge("/u/1")
	p2.Purge("/u/2")
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	begin := time.Now()
	if err := p2.Close(short); err == nil {
		t.Error("Close on a hung CDN returned no error")
	}
	if d := time.Since(begin); d > time.Second {
		t.Errorf("Close took %v past its deadline", d)
	}
}

func TestNewPurgerRejects(t *testing.T) {
	for _, bases := range [][]string{nil, {"ftp://cdn"}, {"127.0.0.1:6081"}, {"http://"}, {"http://cdn/?x=1"}} {
		if _, err := NewPurger(PurgerOptions{BaseURLs: bases}); err == nil {
			t.Errorf("NewPurger(%q) succeeded", bases)
		}
	}
}

// handoffs records what a Purger hands over.
type handoffs struct {
	mu   sync.Mutex
	got  []string // "target host"
	fail error
}

func (h *handoffs) handoff(_ context.Context, target, host string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return h.fail
	}
	h.got = append(h.got, target+" "+host)
	return nil
}

func (h *handoffs) list() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

// TestPurgeHandoff: a purge that fails every attempt goes to the Handoff
// (the job queue in phase 4) with its full URL and Host, counted queued;
// a handoff that fails counts the purge failed; a refused purge is never
// handed over (retrying cannot help); at Close, retries still waiting are
// handed over rather than lost.
func TestPurgeHandoff(t *testing.T) {
	t.Run("out of attempts", func(t *testing.T) {
		cdn := newFakeCDN(t, 503, 503, 503)
		h := &handoffs{}
		p := mustPurger(t, PurgerOptions{BaseURLs: []string{cdn.URL}, Host: "api.test", Attempts: 2, Handoff: h.handoff})
		p.Purge("/u/1")
		waitFor(t, 5*time.Second, "the handoff", func() bool { return purges(p, "queued") >= 1 })
		if got, want := h.list(), []string{cdn.URL + "/u/1 api.test"}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("handed over %q, want %q", got, want)
		}
		if n, f := len(cdn.requests()), purges(p, "failed"); n != 2 || f != 0 {
			t.Errorf("CDN got %d requests and failed = %v; want 2 and 0", n, f)
		}
	})
	t.Run("handoff fails", func(t *testing.T) {
		cdn := newFakeCDN(t, 503, 503)
		h := &handoffs{fail: context.DeadlineExceeded}
		p := mustPurger(t, PurgerOptions{BaseURLs: []string{cdn.URL}, Attempts: 2, Handoff: h.handoff})
		p.Purge("/u/1")
		settled(t, p, 1)
		if q, f := purges(p, "queued"), purges(p, "failed"); q != 0 || f != 1 {
			t.Errorf("queued, failed = %v, %v; want 0, 1", q, f)
		}
	})
	t.Run("refused", func(t *testing.T) {
		cdn := newFakeCDN(t, 405)
		h := &handoffs{}
		p := mustPurger(t, PurgerOptions{BaseURLs: []string{cdn.URL}, Handoff: h.handoff})
		p.Purge("/u/1")
		settled(t, p, 1)
		if got := h.list(); len(got) != 0 {
			t.Errorf("a refused purge was handed over: %q", got)
		}
	})
	t.Run("at close", func(t *testing.T) {
		cdn := newFakeCDN(t, 503)
		h := &handoffs{}
		p, err := NewPurger(PurgerOptions{BaseURLs: []string{cdn.URL}, Backoff: time.Hour, Handoff: h.handoff})
		if err != nil {
			t.Fatal(err)
		}
		p.Start(context.Background())
		p.Purge("/u/1")
		waitFor(t, 5*time.Second, "the first try", func() bool { return purges(p, "retry") >= 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.Close(ctx); err != nil {
			t.Fatal(err)
		}
		if got := h.list(); len(got) != 1 || got[0] != cdn.URL+"/u/1 " {
			t.Errorf("handed over at Close: %q, want the waiting retry", got)
		}
	})
}
