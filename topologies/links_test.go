package topologies

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"scalelab/internal/netsim"
)

// mustProxy runs a Toxiproxy API server in this process on a free port
// until the test ends.
func mustProxy(t *testing.T, ports *portPicker) *Toxiproxy {
	t.Helper()
	port, err := ports.pick()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- netsim.Serve(ctx, loopback(port)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("proxy: %v", err)
		}
	})
	x := &Toxiproxy{port: port}
	if err := poll(ctx, func(ctx context.Context) error {
		_, err := httpGet(ctx, "http://"+x.Addr()+"/version")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return x
}

// mustEcho serves a line echo on loopback until the test ends.
func mustEcho(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
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
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

func TestLinkThroughToxiproxy(t *testing.T) {
	ports := newPortPicker()
	n := &network{profile: NetworkDatacenter, ports: ports, proxy: mustProxy(t, ports)}
	echo := mustEcho(t)

	listen, err := n.link("app", "redis", echo)
	if err != nil {
		t.Fatal(err)
	}
	if listen == echo {
		t.Fatalf("link = %q, the upstream itself; want a proxy's address", listen)
	}
	if again, err := n.link("app", "redis", echo); err != nil || again != listen {
		t.Errorf("second link = %q, %v, want the same proxy %q", again, err, listen)
	}
	if got, want := n.rewrite("app", "--redis="+echo), "--redis="+listen; got != want {
		t.Errorf("rewrite = %q, want %q", got, want)
	}
	if got := n.rewrite("haproxy", "--redis="+echo); got != "--redis="+echo {
		t.Errorf("rewrite for another component = %q, want it untouched", got)
	}
	links := n.Links()
	if len(links) != 1 || links[0].Name != "app->redis" || links[0].LatencyMS != 0.25 || links[0].Upstream != echo {
		t.Errorf("Links = %+v, want one app->redis link of 0.25 ms to %s", links, echo)
	}

	// Data crosses the proxy, and a round trip cannot be quicker than the
	// latency added each way twice (a lower bound, not a timing).
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for i := range 5 {
		start := time.Now()
		if _, err := io.WriteString(c, "ping\n"); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		rtt := time.Since(start)
		if line != "ping\n" {
			t.Fatalf("echo %d = %q, want ping", i, line)
		}
		if min := 2 * (250 - 25) * time.Microsecond; rtt < min {
			t.Errorf("round trip %d took %v, less than the %v the link adds", i, rtt, min)
		}
	}
}

func TestLinkFaults(t *testing.T) {
	ports := newPortPicker()
	n := &network{profile: NetworkDatacenter, ports: ports, proxy: mustProxy(t, ports)}
	echo := mustEcho(t)
	listen, err := n.link("primary", "replica-1", echo)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := n.fault(ctx, "primary->replica-9", LinkFault{Action: LinkPartition}); err == nil || !strings.Contains(err.Error(), "primary->replica-1") {
		t.Errorf("fault on a missing link = %v, want an error listing the links", err)
	}

	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	roundTrip := func(deadline time.Duration) error {
		_ = c.SetDeadline(time.Now().Add(deadline))
		if _, err := io.WriteString(c, "x\n"); err != nil {
			return err
		}
		_, err := r.ReadString('\n')
		return err
	}
	if err := roundTrip(5 * time.Second); err != nil {
		t.Fatalf("before the partition: %v", err)
	}
	heal, err := n.fault(ctx, "primary->replica-1", LinkFault{Action: LinkPartition})
	if err != nil {
		t.Fatal(err)
	}
	var ne net.Error
	if err := roundTrip(300 * time.Millisecond); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("during the partition: %v, want a timeout (nothing crosses)", err)
	}
	if err := heal(ctx); err != nil {
		t.Fatal(err)
	}
	// What was held back arrives once the link heals: the line written
	// during the partition, then this one's.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatalf("after healing: %v", err)
	}
	if err := roundTrip(5 * time.Second); err != nil {
		t.Fatalf("after healing: %v", err)
	}
}
