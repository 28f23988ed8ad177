package burn

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain serves as the burn server itself when a test starts this
// binary as one (BURN_TEST_SERVER=1, with BURN_TEST_HOPS for its hops), and
// as one of its hops when the server starts this binary as scalelab
// ("burn-server --hop ...").
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "burn-server" {
		os.Exit(serveTestHop(os.Args[2:]))
	}
	if os.Getenv("BURN_TEST_SERVER") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		hops, err := ParseHops(os.Getenv("BURN_TEST_HOPS"))
		if err == nil {
			err = Serve(ctx, Config{Listen: "127.0.0.1:0", Work: time.Millisecond, Hops: hops, Binary: os.Args[0]}, os.Stdout)
		}
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveTestHop is scalelab burn-server --hop's flags, for this test
// binary standing in for scalelab.
func serveTestHop(args []string) int {
	fs := flag.NewFlagSet("burn-server", flag.ContinueOnError)
	listen := fs.String("listen", "", "")
	work := fs.Duration("work", 0, "")
	hopList := fs.String("hops", "", "")
	fs.Bool("hop", false, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	hops, err := ParseHops(*hopList)
	if err == nil {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err = ServeHop(ctx, os.Args[0], *listen, *work, hops, os.Stdout, nil)
		stop()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestSpinSpendsItsThreadCPU(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := threadCPU()
	if err != nil {
		t.Skipf("no thread CPU clock: %v", err)
	}
	const d = 20 * time.Millisecond
	Spin(d) // locks the same thread again: locks nest
	after, err := threadCPU()
	if err != nil {
		t.Fatal(err)
	}
	if got := after - before; got < d {
		t.Errorf("Spin(%s) spent %s of its thread's CPU", d, got)
	}
}

func TestServeRefusesWhatItShouldNot(t *testing.T) {
	for _, tc := range []struct {
		addr string
		work time.Duration
		want string
	}{
		{"0.0.0.0:0", 0, "not a loopback"},
		{"192.0.2.1:8080", 0, "not a loopback"},
		{"localhost", 0, "listen address"},
		{"127.0.0.1:0", -time.Microsecond, "want 0 to 1s"},
		{"127.0.0.1:0", 2 * time.Second, "want 0 to 1s"},
	} {
		err := Serve(t.Context(), Config{Listen: tc.addr, Work: tc.work}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Serve(%q, %s) = %v, want an error saying %q", tc.addr, tc.work, err, tc.want)
		}
	}
}

func TestStartServesAndStops(t *testing.T) {
	t.Setenv("BURN_TEST_SERVER", "1")
	p, err := Start(t.Context(), []string{os.Args[0], "-test.run=^$"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			p.Stop()
		}
	}()
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
		t.Fatalf("URL %q: want a loopback one", p.URL)
	}
	for _, path := range []string{"/", "/api/v1/users/anything"} {
		resp, err := http.Get(p.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
			t.Fatalf("GET %s: %d %q, %v; want 200 and the fixed body", path, resp.StatusCode, got, err)
		}
	}
	p.Stop()
	stopped = true
	if !p.Exited() {
		t.Fatal("after Stop the server has not exited")
	}
	if resp, err := http.Get(p.URL); err == nil {
		resp.Body.Close()
		t.Fatalf("after Stop %s still answers", p.URL)
	}
}

func TestParseHops(t *testing.T) {
	hops, err := ParseHops("haproxy=56µs,app=163us,redis=21µs/1")
	if err != nil {
		t.Fatal(err)
	}
	want := []Hop{{"haproxy", 56 * time.Microsecond, 0}, {"app", 163 * time.Microsecond, 0}, {"redis", 21 * time.Microsecond, 1}}
	if fmt.Sprint(hops) != fmt.Sprint(want) {
		t.Fatalf("ParseHops = %v, want %v", hops, want)
	}
	if again, err := ParseHops(FormatHops(hops)); err != nil || fmt.Sprint(again) != fmt.Sprint(want) {
		t.Fatalf("ParseHops(FormatHops(%v)) = %v, %v", hops, again, err)
	}
	for _, bad := range []string{"app", "=1ms", "app=fast", "app=-1ms", "app=2s", "app=1ms/0", "app=1ms/x", "app=1ms,"} {
		if _, err := ParseHops(bad); err == nil {
			t.Errorf("ParseHops(%q): no error", bad)
		}
	}
}

// TestChainGoesThroughEveryHop starts a server with two hops behind it:
// every answer comes after the server's and both hops' CPU have been spent
// (their sum bounds the latency from below, whatever the machine), and
// stopping the server stops the hops.
func TestChainGoesThroughEveryHop(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	t.Setenv("BURN_TEST_SERVER", "1")
	t.Setenv("BURN_TEST_HOPS", "app=3ms,redis=5ms/1")
	p, err := Start(t.Context(), []string{os.Args[0], "-test.run=^$"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	hops := processesNaming(t, tmp)
	if len(hops) != 2 {
		t.Fatalf("%d hop processes on %s, want 2", len(hops), tmp)
	}
	const least = (1 + 3 + 5) * time.Millisecond
	for range 5 {
		start := time.Now()
		resp, err := http.Get(p.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
			t.Fatalf("GET: %d %q, %v; want 200 and the fixed body", resp.StatusCode, got, err)
		}
		if took < least {
			t.Fatalf("an answer took %s, less than the %s of CPU the server and its hops spend on it", took, least)
		}
	}
	p.Stop()
	deadline := time.Now().Add(10 * time.Second)
	for left := processesNaming(t, tmp); len(left) > 0; left = processesNaming(t, tmp) {
		if time.Now().After(deadline) {
			t.Fatalf("hops %v still run 10s after the server stopped", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processesNaming lists the PIDs of processes whose command line names
// dir (the hops' sockets are made under it).
func processesNaming(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var pids []string
	for _, e := range entries {
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte(dir)) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}
