package topologies

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// plan probes the binary's flags: workers run only when it has their
// command, flags it lacks are dropped and reported.
func TestPlanFollowsTheBinary(t *testing.T) {
	const withWorker = `#!/bin/sh
case "$1 $2" in
"server -h"|"worker -h") printf 'Usage:\n  -addr string\n    \tlisten\n  -db string\n' >&2 ;;
*) echo "unknown command" >&2; exit 2 ;;
esac
`
	const serverOnly = `#!/bin/sh
case "$1 $2" in
"server -h") printf 'Usage:\n  -addr string\n  -db string\n' >&2 ;;
*) echo "unknown command" >&2; exit 2 ;;
esac
`
	tests := []struct {
		name        string
		script      string
		wantWorkers int
		wantSkipped []string
	}{
		{"with worker", withWorker, 2, []string{"apps: scalelab does not have --replica yet"}},
		{"server only", serverOnly, 0, []string{`workers: scalelab has no "worker" command yet`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := filepath.Join(t.TempDir(), "scalelab")
			if err := os.WriteFile(bin, []byte(tt.script), 0o755); err != nil {
				t.Fatal(err)
			}
			def, err := Phase(4)
			if err != nil {
				t.Fatal(err)
			}
			top := &Topology{rt: &runtime{log: discardLogger()}}
			b := &builder{t: top, def: def, bin: bin, ports: newPortPicker(), log: discardLogger()}
			if err := b.plan(context.Background()); err != nil {
				t.Fatal(err)
			}
			var workers []string
			for _, s := range b.steps {
				if strings.HasPrefix(s.name, "worker-") {
					workers = append(workers, s.name)
				}
			}
			if len(workers) != tt.wantWorkers || len(b.workerPorts) != tt.wantWorkers {
				t.Errorf("worker steps %v, ports %v; want %d of each", workers, b.workerPorts, tt.wantWorkers)
			}
			// Flags are filtered when an app starts.
			args, err := b.args(def.Apps.Flags, b.serverFlags, def.placeholderVars(), "apps")
			if err != nil {
				t.Fatal(err)
			}
			if want := []string{"--db=x"}; !slices.Equal(args, want) {
				t.Errorf("app args = %q, want %q (the only flag the binary has)", args, want)
			}
			for _, want := range tt.wantSkipped {
				if !slices.Contains(top.Skipped, want) {
					t.Errorf("Skipped = %q, want it to contain %q", top.Skipped, want)
				}
			}
		})
	}
}
