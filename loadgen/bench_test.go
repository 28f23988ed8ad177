package loadgen

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"
)

// To compare with wrk on the same handler, in a separate process as wrk
// would see it:
//
//	go test ./loadgen -run TestBareServer -bare-server 127.0.0.1:18080 &
//	wrk -t2 -c32 -d5s http://127.0.0.1:18080/
//	go test ./loadgen -run '^$' -bench ClientVsWrk -bench-target http://127.0.0.1:18080
var (
	bareServer  = flag.String("bare-server", "", "serve the bare benchmark handler on this address until killed (TestBareServer)")
	benchTarget = flag.String("bench-target", "", "drive this server in BenchmarkClientVsWrk instead of starting one")
	benchDur    = flag.Duration("bench-duration", 4*time.Second, "how long BenchmarkClientVsWrk drives the server")
)

// bareBody is about 300 bytes of JSON, the size of a user.
var bareBody = []byte(`{"id":"01890f3e-7b7a-7cc4-9a4e-3f3c2a1b0c9d","email":"ada.lovelace@example.com",` +
	`"username":"ada_lovelace","profile":{"name":"Ada Lovelace","avatar":"https://example.com/avatars/ada.png"},` +
	`"created_at":"2024-05-01T12:00:00Z","updated_at":"2024-05-01T12:00:00Z","padding":"xxxxxxxxxxxxxxxxxxxxxxxxx"}`)

func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(bareBody)
	})
}

// TestBareServer serves the bare handler when -bare-server is given, for
// wrk to measure the ceiling our client is compared with.
func TestBareServer(t *testing.T) {
	if *bareServer == "" {
		t.Skip("no -bare-server address")
	}
	ln, err := net.Listen("tcp", *bareServer)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening on", ln.Addr())
	t.Fatal(http.Serve(ln, bareHandler()))
}

// BenchmarkClientVsWrk drives a bare handler as fast as 32 connections
// allow (the closed-model executor with 32 virtual users, recording
// included), like `wrk -t2 -c32`, and reports requests per second.
// "process" runs the handler in a child process, as wrk sees it; "inproc"
// shares this process with it. Each round lasts -bench-duration whatever
// b.N is.
func BenchmarkClientVsWrk(b *testing.B) {
	get := []Op{{Name: "get", Weight: 1, Do: func(ctx context.Context, c *Client, s *Session) error {
		_, err := c.Do(&Request{Path: "/"})
		return err
	}}}
	drive := func(b *testing.B, target string) {
		for range b.N {
			res, err := Run(context.Background(), Config{
				Target:   target,
				Ops:      get,
				Executor: ConstantVUs{VUs: 32, Duration: *benchDur},
			})
			if err != nil {
				b.Fatal(err)
			}
			if res.Total.Errors > 0 {
				b.Fatalf("%d errors: %v", res.Total.Errors, res.ErrorsByClass)
			}
			b.ReportMetric(res.Total.Rate(res.Duration), "req/s")
			b.ReportMetric(res.Total.Percentiles().P99, "p99-ms")
		}
	}
	if *benchTarget != "" {
		b.Run("target", func(b *testing.B) { drive(b, *benchTarget) })
		return
	}
	b.Run("process", func(b *testing.B) {
		target, _ := startBare(b)
		drive(b, target)
	})
	b.Run("inproc", func(b *testing.B) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		srv := &http.Server{Handler: bareHandler()}
		go srv.Serve(ln)
		defer srv.Close()
		drive(b, "http://"+ln.Addr().String())
	})
}

// BenchmarkRecord measures what recording one request costs a worker,
// with all goroutines recording at once.
func BenchmarkRecord(b *testing.B) {
	r := &run{mix: &mix{ops: []Op{{Name: "op"}}}}
	for range 8 {
		r.shards = append(r.shards, newShard(1))
	}
	b.RunParallel(func(pb *testing.PB) {
		w := &worker{r: r, recording: true}
		r.mu.Lock()
		w.sh = r.shards[len(r.workers)%len(r.shards)]
		r.workers = append(r.workers, w)
		r.mu.Unlock()
		req := &Request{Name: "GET /users/{id}"}
		lat := 300 * time.Microsecond
		for pb.Next() {
			w.recordRequest(req, lat, 200, "", false)
			w.sh.recordOp(0, lat, time.Microsecond, outcomeOK, true, "")
			lat += time.Microsecond
			if lat > 10*time.Millisecond {
				lat = 300 * time.Microsecond
			}
		}
	})
}
