package flows

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scalelab/topologies"
	"scalelab/topologies/topotest"
)

// The CDN tier (Varnish, phase 4) keeps the anonymous public view of a
// user, a write by the owner purges it so the next anonymous read shows
// the change within moments, and a read with a token is never served from
// (or stored in) the CDN.
//
// It brings up the package's one phase-4 topology for its subtests.
func TestCDN(t *testing.T) {
	top := topotest.Up(t, 4, commandFlags())
	if top.EntryURL != top.VarnishURL {
		t.Fatalf("phase 4 entry point = %s, want Varnish's %s", top.EntryURL, top.VarnishURL)
	}
	t.Run("public views cached, private not, purged on write", func(t *testing.T) { testCDNPurge(t, top) })
	t.Run("purges under concurrent readers", func(t *testing.T) { testCDNPurgeRace(t, top) })
	t.Run("a purge covers every Host", func(t *testing.T) { testCDNPurgeEveryHost(t, top) })
	t.Run("a purge the CDN missed goes to the job queue", func(t *testing.T) { testCDNPurgeQueued(t, top) })
	t.Run("a user with many records is deleted through the job queue", func(t *testing.T) { testDeferredDelete(t, top) })
}

// The same public URL reached under several Host names (the address the
// purger uses, localhost, a proxy's or a browser's own name) is one CDN
// object: a write purges it under every name within the purge's bound.
func testCDNPurgeEveryHost(t *testing.T, top *topologies.Topology) {
	cdn := top.EntryURL
	u := signUp(t, cdn)
	waitReplicated(t, top, u.ID, 1)
	url := userURL(cdn, u.ID)
	port := cdn[strings.LastIndex(cdn, ":")+1:]
	hosts := []string{"", "localhost:" + port, "127.0.0.1:" + port, "localhost", "api.example.com", "API.Example.com:443"}
	for _, h := range hosts {
		for range 2 {
			mustSend(t, request{Method: http.MethodGet, URL: url, Host: h}, http.StatusOK)
		}
		if resp := mustSend(t, request{Method: http.MethodGet, URL: url, Host: h}, http.StatusOK); resp.Header.Get("X-Cache") != "HIT" {
			t.Errorf("third anonymous GET with Host %q: X-Cache %q, want HIT", h, resp.Header.Get("X-Cache"))
		}
	}
	const renamed = "renamed under every host"
	written := time.Now()
	setName(t, cdn, u, renamed)
	stale := 0
	for _, h := range hosts {
		var got string
		if !eventually(2*time.Second, func() bool {
			got = profileName(t, mustSend(t, request{Method: http.MethodGet, URL: url, Host: h}, http.StatusOK).Body)
			return got == renamed
		}) {
			stale++
			t.Errorf("anonymous GET with Host %q through the CDN %v after the owner's PUT: name %q, want %q",
				h, time.Since(written).Round(time.Millisecond), got, renamed)
		}
	}
	t.Logf("%d of %d Host names showed the new name; the last check ended %v after the PUT was sent",
		len(hosts)-stale, len(hosts), time.Since(written).Round(time.Millisecond))
}

func testCDNPurge(t *testing.T, top *topologies.Topology) {
	cdn := top.EntryURL
	u := signUp(t, cdn)
	waitReplicated(t, top, u.ID, 1)
	url := userURL(cdn, u.ID)
	anonymous := request{Method: http.MethodGet, URL: url}

	first := mustSend(t, anonymous, http.StatusOK)
	second := mustSend(t, anonymous, http.StatusOK)
	if got := first.Header.Get("X-Cache"); got != "MISS" {
		t.Errorf("first anonymous GET through the CDN: X-Cache %q, want MISS", got)
	}
	if got, want := first.Header.Get("Cache-Control"), "public, s-maxage=3600, max-age=0"; got != want {
		t.Errorf("anonymous GET: Cache-Control %q, want %q", got, want)
	}
	if got := second.Header.Get("X-Cache"); got != "HIT" {
		t.Errorf("second anonymous GET through the CDN: X-Cache %q (Age %q), want HIT", got, second.Header.Get("Age"))
	}
	if first.Header.Get("ETag") == "" || second.Header.Get("ETag") != first.Header.Get("ETag") {
		t.Errorf("ETags %q and %q, want one, the same", first.Header.Get("ETag"), second.Header.Get("ETag"))
	}
	if strings.Contains(string(second.Body), "email") {
		t.Errorf("the CDN's copy holds the full view: %s", second.Body)
	}

	// Reads with a token pass the CDN, twice in a row, and do not replace
	// the cached public view.
	for i := range 2 {
		resp := mustSend(t, request{Method: http.MethodGet, URL: url, Token: u.Token}, http.StatusOK)
		if got := resp.Header.Get("X-Cache"); got != "MISS" {
			t.Errorf("GET with a token #%d: X-Cache %q, want MISS", i+1, got)
		}
		if got := resp.Header.Get("Cache-Control"); got != "private" {
			t.Errorf("GET with a token #%d: Cache-Control %q, want private", i+1, got)
		}
		if !strings.Contains(string(resp.Body), u.Login+"@example.com") {
			t.Errorf("GET with a token #%d: %s, want the full view with the email", i+1, resp.Body)
		}
	}
	if resp := mustSend(t, anonymous, http.StatusOK); resp.Header.Get("X-Cache") != "HIT" || strings.Contains(string(resp.Body), "email") {
		t.Errorf("anonymous GET after reads with a token: X-Cache %q, body %s; want HIT of the public view", resp.Header.Get("X-Cache"), resp.Body)
	}

	// A write by the owner purges the public view.
	const renamed = "renamed through the CDN"
	written := time.Now()
	setName(t, cdn, u, renamed)
	var got string
	var polls int
	purged := eventually(2*time.Second, func() bool {
		polls++
		resp := mustSend(t, anonymous, http.StatusOK)
		got = profileName(t, resp.Body)
		return got == renamed
	})
	took := time.Since(written)
	if !purged {
		t.Fatalf("anonymous GET through the CDN 2s after the owner's PUT: name %q, want %q", got, renamed)
	}
	again := mustSend(t, anonymous, http.StatusOK)
	if got := profileName(t, again.Body); got != renamed || again.Header.Get("X-Cache") != "HIT" {
		t.Errorf("anonymous GET after the purge was refilled: name %q, X-Cache %q; want %q, HIT", got, again.Header.Get("X-Cache"), renamed)
	}
	var ok, failed float64
	for _, a := range appURLs(top) {
		m := scrape(t, a)
		ok += m.sum("scalelab_cdn_purges_total", `result="ok"`)
		failed += m.sum("scalelab_cdn_purges_total", `result="failed"`) + m.sum("scalelab_cdn_purges_total", `result="dropped"`)
	}
	t.Logf("the new name showed through the CDN %v after the PUT was sent (%d polls); purges ok %.0f, failed or dropped %.0f",
		took.Round(time.Millisecond), polls, ok, failed)
	if ok < 1 {
		t.Errorf("scalelab_cdn_purges_total{result=\"ok\"} = %.0f over all instances, want at least 1", ok)
	}
}

// The purge race at the CDN: anonymous readers keep missing and refilling
// the CDN's copy while the owner writes, so fetches that started before a
// write are in flight when its purge arrives. Whatever the interleaving,
// each write's new name must show through the CDN within the bound (an old
// copy stored after the purge would stay for the whole s-maxage, an hour).
func testCDNPurgeRace(t *testing.T, top *topologies.Topology) {
	cdn := top.EntryURL
	u := signUp(t, cdn)
	waitReplicated(t, top, u.ID, 1)
	url := userURL(cdn, u.ID)

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	var reads, hits atomic.Int64
	for range 4 {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := send(ctx, request{Method: http.MethodGet, URL: url})
				if err == nil && resp.Status == http.StatusOK {
					reads.Add(1)
					if resp.Header.Get("X-Cache") == "HIT" {
						hits.Add(1)
					}
				}
			}
		})
	}
	const writes = 200
	var slowest time.Duration
	late := 0
	for i := range writes {
		// Two writes back to back: the refetch that the first one's purge
		// causes is often in flight when the second one's purge arrives.
		setName(t, cdn, u, fmt.Sprintf("cdn-%d-first", i))
		name := fmt.Sprintf("cdn-%d", i)
		written := time.Now()
		setName(t, cdn, u, name)
		var got string
		polls := 0
		ok := eventually(2*time.Second, func() bool {
			polls++
			got = profileName(t, mustSend(t, request{Method: http.MethodGet, URL: url}, http.StatusOK).Body)
			return got == name
		})
		took := time.Since(written)
		slowest = max(slowest, took)
		if polls > 1 {
			late++
		}
		if !ok {
			t.Errorf("write %d: anonymous GET through the CDN 2s after the owner's PUT: name %q, want %q", i, got, name)
		}
	}
	stop()
	wg.Wait()
	t.Logf("%d writes under %d concurrent anonymous reads (%d CDN hits): the new name needed more than one poll %d times; slowest %v",
		writes, reads.Load(), hits.Load(), late, slowest.Round(time.Millisecond))
}
