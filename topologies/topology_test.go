package topologies_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"scalelab/topologies"
	"scalelab/topologies/topotest"
)

// phase4 is shared by the tests that disturb a full topology and put it
// back as they found it.
var phase4 = topotest.Shared{Phase: 4, Flags: commandFlags()}

func TestMain(m *testing.M) { os.Exit(phase4.Main(m)) }

// TestUpDown brings phases 1-3 up (concurrently: most of a bring-up is
// waiting), checks they answer through their entry point, takes them down
// and checks nothing of the run is left. Phase 4 is the shared topology
// of the TestPhase4 tests; topotest checks its Down the same way.
func TestUpDown(t *testing.T) {
	t.Parallel()
	for _, phase := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("phase-%d", phase), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			top := topotest.Up(t, phase, commandFlags())
			t.Logf("phase %d up in %v (%s)", phase, time.Since(start).Round(time.Millisecond), top.Dir)
			mustGet(t, top.EntryURL+"/healthz")
			if phase == 3 && top.EntryURL != top.HAProxyURL {
				t.Errorf("EntryURL = %s, want HAProxy's %s", top.EntryURL, top.HAProxyURL)
			}
			checkDown(t, top)
		})
	}
}

// checkDown takes top down and checks that no process and no port of the
// run is left, and that a second Down is a no-op.
func checkDown(t *testing.T, top *topologies.Topology) {
	t.Helper()
	comps := top.Components()
	ports := top.Ports()
	ctx := context.Background()
	start := time.Now()
	if err := top.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	t.Logf("down took %v", time.Since(start).Round(time.Millisecond))
	for _, c := range comps {
		if c.PID != 0 && processExists(c.PID) {
			t.Errorf("after Down: %s (pid %d) still runs", c.Name, c.PID)
		}
	}
	for _, p := range ports {
		if addr := fmt.Sprintf("127.0.0.1:%d", p); listeningOn(addr) {
			t.Errorf("after Down: %s still listening", addr)
		}
	}
	if err := top.Down(ctx); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

func mustGet(t *testing.T, url string) *http.Response {
	t.Helper()
	return mustGetStatus(t, url, http.StatusOK)
}

func mustGetStatus(t *testing.T, url string, status int) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != status {
		t.Fatalf("GET %s = %s, want %d", url, resp.Status, status)
	}
	return resp
}
