package burn

import (
	"bytes"
	"context"
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
// binary as one.
func TestMain(m *testing.M) {
	if os.Getenv("BURN_TEST_SERVER") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		err := Serve(ctx, "127.0.0.1:0", time.Millisecond, os.Stdout)
		stop()
		if err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
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
		err := Serve(t.Context(), tc.addr, tc.work, io.Discard)
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
