package topologies_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"scalelab/topologies"
	"scalelab/topologies/topotest"
)

// BenchmarkUpDown measures each phase's bring-up (readiness checks
// included) and tear-down, with Postgres as `make phase-N` runs it (fsync
// on). Run it with: go test ./topologies -run '^$' -bench UpDown -benchtime 3x
func BenchmarkUpDown(b *testing.B) {
	bin, err := topotest.Binary()
	if err != nil {
		b.Fatal(err)
	}
	for phase := 1; phase <= 4; phase++ {
		b.Run(fmt.Sprintf("phase-%d", phase), func(b *testing.B) {
			def, err := topologies.Phase(phase, commandFlags())
			if err != nil {
				b.Fatal(err)
			}
			dir, err := os.MkdirTemp("", "scalelab-topologies-bench-")
			if err != nil {
				b.Fatal(err)
			}
			defer os.RemoveAll(dir)
			if err := os.Chmod(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			var up, down time.Duration
			for i := 0; b.Loop(); i++ {
				ctx := context.Background()
				start := time.Now()
				top, err := topologies.Up(ctx, def, topologies.Options{Binary: bin, Dir: dir, RunID: fmt.Sprint(i), Logger: topotest.Logger()})
				if err != nil {
					b.Fatal(err)
				}
				up += time.Since(start)
				start = time.Now()
				if err := top.Down(ctx); err != nil {
					b.Fatal(err)
				}
				down += time.Since(start)
			}
			b.ReportMetric(up.Seconds()/float64(b.N), "up-s/op")
			b.ReportMetric(down.Seconds()/float64(b.N), "down-s/op")
		})
	}
}
