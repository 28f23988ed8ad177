package netsim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	toxiclient "github.com/Shopify/toxiproxy/v2/client"
)

// mustServe runs a Toxiproxy API server in this process until the test
// ends and returns a client of it.
func mustServe(tb testing.TB) *toxiclient.Client {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("proxy: %v", err)
		}
	})
	return toxiclient.NewClient(ln.Addr().String())
}

// mustEcho serves an echo on loopback until the test ends.
func mustEcho(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	tb.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// mustLink proxies a link to upstream, with each latency (one LatencyToxic
// per entry, in order) added each way, and returns the proxy's address.
func mustLink(tb testing.TB, cl *toxiclient.Client, name, upstream string, latencies ...time.Duration) string {
	tb.Helper()
	p, err := cl.CreateProxy(name, "127.0.0.1:0", upstream)
	if err != nil {
		tb.Fatal(err)
	}
	for i, l := range latencies {
		for _, stream := range []string{"upstream", "downstream"} {
			attrs := toxiclient.Attributes{"latency_us": l.Microseconds()}
			if _, err := p.AddToxic(stream+string(rune('a'+i)), LatencyToxicType, stream, 1, attrs); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return p.Listen
}

// roundTrips sends n lines over one connection to addr, each after the
// echo of the one before, and returns each round trip's time.
func roundTrips(tb testing.TB, addr string, n int) []time.Duration {
	tb.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	rtts := make([]time.Duration, n)
	for i := range rtts {
		start := time.Now()
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			tb.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
			tb.Fatalf("echo %d = %q, %v; want ping", i, line, err)
		}
		rtts[i] = time.Since(start)
	}
	return rtts
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// A round trip over a link pays its latency twice, and two latency toxics
// on one link add up (a slow fault on top of the profile's distance). A
// chunk may leave early by what the toxic's clock has been oversleeping,
// at most maxEarly and half its delay; the median chunk leaves about on
// time. Lower bounds only: how late a chunk leaves depends on the machine
// (see BenchmarkRoundTrip).
func TestLatencyToxicsAddUp(t *testing.T) {
	cl, echo := mustServe(t), mustEcho(t)
	tests := []struct {
		name      string
		latencies []time.Duration
	}{
		{"in-DC hop", []time.Duration{250 * time.Microsecond}},
		{"distance and a slow fault", []time.Duration{5 * time.Millisecond, 5 * time.Millisecond}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := mustLink(t, cl, fmt.Sprint("link-", i), echo, tt.latencies...)
			var oneWay, floor time.Duration
			for _, l := range tt.latencies {
				oneWay += l
				floor += l - min(maxEarly, l/2)
			}
			rtts := roundTrips(t, addr, 100)
			for i, rtt := range rtts {
				if rtt < 2*floor {
					t.Errorf("round trip %d took %v, less than the %v the link adds at the earliest", i, rtt, 2*floor)
				}
			}
			// Once the toxic has learnt its clock's median lateness, the
			// median chunk leaves on time; 50 µs leaves room for a machine
			// that got faster during the test.
			if p50, want := median(rtts), 2*oneWay-50*time.Microsecond; p50 < want {
				t.Errorf("median round trip %v, want at least %v", p50, want)
			}
		})
	}
}

// Data crosses a link with jitter whole and in order, and a toxic removed
// while it holds data back lets that data through.
func TestLatencyToxicKeepsEveryByteInOrder(t *testing.T) {
	cl, echo := mustServe(t), mustEcho(t)
	p, err := cl.CreateProxy("jitter", "127.0.0.1:0", echo)
	if err != nil {
		t.Fatal(err)
	}
	for _, stream := range []string{"upstream", "downstream"} {
		if _, err := p.AddToxic("d_"+stream, LatencyToxicType, stream, 1, toxiclient.Attributes{"latency_us": 3000, "jitter_us": 2500}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := net.Dial("tcp", p.Listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := make([]byte, 4<<20)
	rand.Read(sent)
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(c, int64(len(sent))))
		got <- b
	}()
	for i := 0; i < len(sent); i += 64 << 10 {
		if _, err := c.Write(sent[i : i+64<<10]); err != nil {
			t.Fatal(err)
		}
		if i == 2<<20 { // halfway: take the downstream delay away mid-stream
			if err := p.RemoveToxic("d_downstream"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if b := <-got; !bytes.Equal(b, sent) {
		t.Errorf("echoed %d bytes, not the %d sent in order", len(b), len(sent))
	}
}

// BenchmarkRoundTrip measures one small request's round trip over a
// loopback connection: direct, through a proxy without toxics, and
// through one with an in-DC hop's 250 µs each way (500 µs round trip
// added). p50-µs is the median round trip; added-µs in the last case is
// the median minus the proxy-only median, which should be near 500.
//
//	go test ./internal/netsim -run '^$' -bench RoundTrip -benchtime 2000x
func BenchmarkRoundTrip(b *testing.B) {
	cl, echo := mustServe(b), mustEcho(b)
	plain := mustLink(b, cl, "plain", echo)
	hop := mustLink(b, cl, "hop", echo, 250*time.Microsecond)
	var proxyOnly time.Duration
	for _, bc := range []struct{ name, addr string }{{"direct", echo}, {"proxy", plain}, {"proxy-250us", hop}} {
		b.Run(bc.name, func(b *testing.B) {
			rtts := roundTrips(b, bc.addr, b.N)
			p50 := median(rtts)
			b.ReportMetric(float64(p50.Microseconds()), "p50-µs")
			switch bc.name {
			case "proxy":
				proxyOnly = p50
			case "proxy-250us":
				b.ReportMetric(float64((p50 - proxyOnly).Microseconds()), "added-µs")
			}
		})
	}
}

// BenchmarkSleep250us compares how late a 250 µs wait ends on Go's timers
// and on the toxic's clock (a timerfd), median and mean: in an otherwise
// idle process the first is about a millisecond late (epoll_wait's
// millisecond timeout), the second tens of microseconds.
//
//	go test ./internal/netsim -run '^$' -bench Sleep250us -benchtime 2000x
func BenchmarkSleep250us(b *testing.B) {
	const d = 250 * time.Microsecond
	report := func(b *testing.B, late []time.Duration) {
		var sum time.Duration
		for _, l := range late {
			sum += l
		}
		b.ReportMetric(float64(median(late).Microseconds()), "p50-late-µs")
		b.ReportMetric(float64(sum.Microseconds())/float64(len(late)), "mean-late-µs")
	}
	b.Run("go-timer", func(b *testing.B) {
		late := make([]time.Duration, b.N)
		for i := range b.N {
			start := time.Now()
			time.Sleep(d)
			late[i] = time.Since(start) - d
		}
		report(b, late)
	})
	b.Run("clock", func(b *testing.B) {
		clk, err := newClock()
		if err != nil {
			b.Fatal(err)
		}
		defer clk.close()
		late := make([]time.Duration, b.N)
		for i := range b.N {
			start := time.Now()
			clk.sleepUntil(start.Add(d))
			late[i] = time.Since(start) - d
		}
		report(b, late)
	})
}

// Each latency toxic counts the chunks it delayed over all of the link's
// connections, and how late they left, and Toxiproxy's API shows both
// among its attributes.
func TestLatencyToxicCountsChunks(t *testing.T) {
	cl, echo := mustServe(t), mustEcho(t)
	addr := mustLink(t, cl, "counted", echo, 50*time.Microsecond)
	for range 2 { // two connections, 7 round trips each
		roundTrips(t, addr, 7)
	}
	p, err := cl.Proxy("counted")
	if err != nil {
		t.Fatal(err)
	}
	toxics, err := p.Toxics()
	if err != nil {
		t.Fatal(err)
	}
	if len(toxics) != 2 {
		t.Fatalf("toxics = %+v, want one each way", toxics)
	}
	for _, tx := range toxics {
		if got := tx.Attributes["chunks"]; got != float64(14) {
			t.Errorf("%s toxic counted %v chunks, want 14: %+v", tx.Stream, got, tx.Attributes)
		}
		if got := tx.Attributes["latency_us"]; got != float64(50) {
			t.Errorf("%s toxic shows latency %v µs, want 50", tx.Stream, got)
		}
		// How late the chunks left, in all: within a second of due on
		// any machine (early by the toxic's estimate at most).
		if late, ok := tx.Attributes["late_us"].(float64); !ok || late < -14*25 || late > 1e6 {
			t.Errorf("%s toxic shows late_us %v, want the chunks' total lateness", tx.Stream, tx.Attributes["late_us"])
		}
	}
}
