package topologies_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scalelab/topologies"
	"scalelab/topologies/topotest"
)

// A bring-up that fails (an app instance that cannot start, or a cancelled
// context) stops everything it had started and marks the run stopped.
func TestUpFailureStopsEverything(t *testing.T) {
	t.Parallel()
	const badApp = `
phase: 3
postgres: {replicas: 1}
redis: {}
apps:
  count: 2
  flags: ["--db=${postgres.url}", "--cache-ttl=not-a-duration"]
`
	const good = `
phase: 3
postgres: {replicas: 1}
redis: {}
apps:
  count: 2
  flags: ["--db=${postgres.url}"]
haproxy: {}
`
	tests := []struct {
		name    string
		yaml    string
		cancel  time.Duration // cancel the bring-up after this long; 0: never
		wantErr string
	}{
		// Both instances fail the same way; either may be noticed first.
		{"app exits", badApp, 0, "exited before it was ready"},
		{"cancelled", good, 1500 * time.Millisecond, "context canceled"},
	}
	bin, err := topotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			def, err := topologies.Parse([]byte(tt.yaml), tt.name, commandFlags())
			if err != nil {
				t.Fatal(err)
			}
			dir := searchableTempDir(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel > 0 {
				time.AfterFunc(tt.cancel, cancel)
			}
			top, err := topologies.Up(ctx, def, topologies.Options{Binary: bin, Dir: dir, RunID: "run", FastPostgres: true, DieWithParent: true, Logger: topotest.Logger()})
			if err == nil {
				top.Down(context.Background())
				t.Fatalf("Up succeeded, want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Up: %v, want an error containing %q", err, tt.wantErr)
			}
			f := readTopologyJSON(t, filepath.Join(dir, "run"))
			if f.StoppedAt == nil {
				t.Errorf("topology.json has no stopped_at after a failed Up")
			}
			if len(f.Components) == 0 {
				t.Errorf("topology.json lists no components; the failure came before anything started?")
			}
			for _, c := range f.Components {
				if c.PID != 0 && processExists(c.PID) {
					t.Errorf("%s (pid %d) still runs after a failed Up", c.Name, c.PID)
				}
				if c.Addr != "" && listeningOn(c.Addr) {
					t.Errorf("%s still listens on %s after a failed Up", c.Name, c.Addr)
				}
			}
		})
	}
}

// Down works from another process: Open reads topology.json and stops
// every component by the PIDs recorded there.
func TestDownFromTopologyJSON(t *testing.T) {
	t.Parallel()
	top := topotest.Up(t, 3, commandFlags())
	before := readTopologyJSON(t, top.Dir)
	runs, err := topologies.ListRuns(filepath.Dir(top.Dir))
	if err != nil || len(runs) != 1 || runs[0] != top.Dir {
		t.Errorf("ListRuns = %v, %v; want [%s]", runs, err, top.Dir)
	}
	opened, err := topologies.Open(top.Dir, topotest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	if opened.EntryURL != top.EntryURL || len(opened.Components()) != len(before.Components) {
		t.Errorf("Open: entry %s, %d components; want %s, %d", opened.EntryURL, len(opened.Components()), top.EntryURL, len(before.Components))
	}
	if err := opened.Down(context.Background()); err != nil {
		t.Fatalf("Down of the opened topology: %v", err)
	}
	for _, c := range before.Components {
		if processExists(c.PID) {
			t.Errorf("%s (pid %d) still runs", c.Name, c.PID)
		}
	}
	if runs, _ := topologies.ListRuns(filepath.Dir(top.Dir)); len(runs) != 0 {
		t.Errorf("ListRuns after Down = %v, want none", runs)
	}
	// The first topology notices there is nothing left to stop.
	checkDown(t, top)
}

type topologyJSON struct {
	EntryURL   string                     `json:"entry_url"`
	Components []topologies.ComponentInfo `json:"components"`
	StoppedAt  *time.Time                 `json:"stopped_at"`
}

func readTopologyJSON(t *testing.T, dir string) topologyJSON {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "topology.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f topologyJSON
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("topology.json: %v", err)
	}
	return f
}

// searchableTempDir is a temporary directory that the postgres user can
// reach (t.TempDir's parents are private to the test's user).
func searchableTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "scalelab-topologies-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		}
	})
	return dir
}
