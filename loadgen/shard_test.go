package loadgen

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestParseShard(t *testing.T) {
	tests := []struct {
		in      string
		want    Shard
		wantErr bool
	}{
		{"", Shard{}, false},
		{"0/2", Shard{0, 2}, false},
		{"2/3", Shard{2, 3}, false},
		{"0/1", Shard{0, 1}, false},
		{"2/2", Shard{}, true},
		{"-1/2", Shard{}, true},
		{"1/0", Shard{}, true},
		{"1", Shard{}, true},
		{"a/b", Shard{}, true},
	}
	for _, tt := range tests {
		got, err := ParseShard(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("ParseShard(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// Shares deal things round robin and add up to the whole.
func TestShardShareAndWorkers(t *testing.T) {
	for _, n := range []int{0, 1, 5, 64} {
		for _, count := range []int{1, 2, 3, 7} {
			total := 0
			var workers []int
			for i := range count {
				s := Shard{i, count}
				share := s.Share(n)
				total += share
				for k := range share {
					workers = append(workers, s.Worker(k))
				}
			}
			slices.Sort(workers)
			if total != n || len(workers) != n || (n > 0 && workers[n-1] != n-1) {
				t.Errorf("%d things over %d shards: shares add to %d, workers %v; want 0..%d", n, count, total, workers, n-1)
			}
		}
	}
}

// A run split over three shards sends, operation by operation, exactly the
// arrivals of the same run made by one generator; merged, the shards'
// results count what one result counts, and each shard's histograms survive
// JSON so the merge is exact.
func TestShardsUnionIsTheWholeRun(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	ops := []Op{getOp("a", "/a"), {Name: "b", Weight: 3, Do: getOp("b", "/b").Do}, {Name: "c", Weight: 5, Do: getOp("c", "/c").Do}}
	cfg := func(s Shard) Config {
		return Config{
			Target: srv.URL, Ops: ops, Seed: 11, Shard: s,
			Executor: ConstantArrivalRate{Rate: 300, Duration: time.Second, Pool: Pool{MaxWorkers: 20, MaxDelay: time.Second}},
		}
	}
	whole := mustRun(t, cfg(Shard{}))

	const n = 3
	parts := make([]*Result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := Run(context.Background(), cfg(Shard{i, n}))
			if err != nil {
				t.Errorf("shard %d/%d: %v", i, n, err)
				return
			}
			// Through JSON, as scalelab merge reads them.
			b, err := json.Marshal(res)
			if err != nil {
				t.Error(err)
				return
			}
			parts[i] = &Result{}
			if err := json.Unmarshal(b, parts[i]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var merged Result
	direct := NewHistogram()
	for i, p := range parts {
		if want := int64(100); p.Offered != want {
			t.Errorf("shard %d/%d offered %d arrivals, want %d (a third of 300)", i, n, p.Offered, want)
		}
		direct.Merge(p.Total.Latency)
		merged.Merge(p)
	}
	if merged.Offered != whole.Offered {
		t.Errorf("shards offered %d arrivals together, the whole run %d", merged.Offered, whole.Offered)
	}
	for _, w := range whole.Operations {
		i := slices.IndexFunc(merged.Operations, func(s Stats) bool { return s.Name == w.Name })
		if i < 0 {
			t.Errorf("operation %s missing from the merged shards", w.Name)
			continue
		}
		m := merged.Operations[i]
		// Count+Dropped is every arrival of the operation, whatever the
		// machine's load made late.
		if m.Count+m.Dropped != w.Count+w.Dropped {
			t.Errorf("operation %s: shards ran %d+%d dropped, the whole run %d+%d", w.Name, m.Count, m.Dropped, w.Count, w.Dropped)
		}
	}
	if !merged.Total.Latency.Equals(direct) || merged.Total.Count != direct.TotalCount() {
		t.Errorf("merged total histogram (%d values) differs from the shards' histograms merged directly (%d)", merged.Total.Latency.TotalCount(), direct.TotalCount())
	}
}

// The closed model deals its virtual users out; a shard with none fails.
func TestShardsSplitVUs(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	run := func(s Shard, vus int) (*Result, error) {
		return Run(context.Background(), Config{
			Target: srv.URL, Ops: []Op{getOp("get", "/")}, Shard: s,
			Executor: ConstantVUs{VUs: vus, Duration: 200 * time.Millisecond},
		})
	}
	for i, want := range []int{2, 2, 1} {
		res, err := run(Shard{i, 3}, 5)
		if err != nil {
			t.Fatal(err)
		}
		if res.Workers != want {
			t.Errorf("shard %d/3 of 5 VUs ran %d, want %d", i, res.Workers, want)
		}
	}
	if _, err := run(Shard{2, 3}, 2); err == nil {
		t.Errorf("shard 2/3 of 2 VUs ran, want an error: it has none")
	}
}
