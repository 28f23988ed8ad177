package postgres_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/postgres"
)

// BenchmarkReplicaRead measures the cost of a cache-miss read (a user by
// id) served by the primary and by a replica, from one client (latency) and
// from many (throughput), and of a read right after the client's own write:
// from the primary (WithPrimary), or with the write's position, which finds
// the router's sample behind and re-checks a replica first.
//
//	go test ./server/postgres -run '^$' -bench ReplicaRead -benchtime 2s
func BenchmarkReplicaRead(b *testing.B) {
	const users = 10_000
	c := startCluster(b)
	url, replicas := c.database(b)
	primary := mustOpenURL(b, url, postgres.Options{})
	if err := primary.Seed(b.Context(), users, "hash", nil); err != nil {
		b.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	routed := c.openURL(b, url, replicas, postgres.Options{Registerer: reg})

	read := func(db *postgres.DB, ctx context.Context) func(b *testing.B) {
		return func(b *testing.B) {
			before := counts(b, reg)
			i := 0
			for b.Loop() {
				if _, err := db.User(ctx, server.SeedUserID(i*7919%users)); err != nil {
					b.Fatal(err)
				}
				i++
			}
			reportServed(b, before, counts(b, reg))
		}
	}
	parallel := func(db *postgres.DB) func(b *testing.B) {
		return func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for i := 0; pb.Next(); i++ {
					if _, err := db.User(b.Context(), server.SeedUserID(i*7919%users)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
	}
	afterWrite := func(withPosition bool) func(b *testing.B) {
		return func(b *testing.B) {
			before := counts(b, reg)
			i := 0
			for b.Loop() {
				id := server.SeedUserID(i % users)
				i++
				name := "x"
				ctx, rec := server.WithPositionRecorder(b.Context())
				if _, err := routed.UpdateUser(ctx, id, server.UserUpdate{Name: &name}); err != nil {
					b.Fatal(err)
				}
				rctx := server.WithPrimary(b.Context())
				if withPosition {
					rctx = server.WithMinPosition(b.Context(), rec.Position())
				}
				if _, err := routed.User(rctx, id); err != nil {
					b.Fatal(err)
				}
			}
			reportServed(b, before, counts(b, reg))
		}
	}
	b.Run("serial/primary", read(primary, b.Context()))
	b.Run("serial/replica", read(routed, b.Context()))
	b.Run("parallel/primary", parallel(primary))
	b.Run("parallel/replica", parallel(routed))
	b.Run("write-then-read/primary", afterWrite(false))
	b.Run("write-then-read/position", afterWrite(true))
}

// reportServed reports the share of reads the replicas served.
func reportServed(b *testing.B, before, after map[string]float64) {
	d := delta(before, after)
	total := d["primary"] + d["replica-1"] + d["replica-2"]
	if total > 0 {
		b.ReportMetric((d["replica-1"]+d["replica-2"])/total, "replica-share")
	}
}

// BenchmarkReplicaLag measures how long a committed write takes to become
// visible on a replica (its replay position passing the write's), and the
// lag the router reports while writes go on, as percentiles.
//
//	go test ./server/postgres -run '^$' -bench ReplicaLag -benchtime 2000x
func BenchmarkReplicaLag(b *testing.B) {
	c := startCluster(b)
	url, replicas := c.database(b)
	db := c.openURL(b, url, replicas, postgres.Options{ReplicaCheckInterval: 10 * time.Millisecond})
	u := mustCreate(b, db, "ada")
	conn, err := c.replicas[0].Connect(b.Context(), dbName(b, url))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())

	var visible, routerLag []time.Duration
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // the router's view, every 10 ms
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, s := range db.Replicas() {
					routerLag = append(routerLag, s.Lag)
				}
			}
		}
	}()
	for b.Loop() {
		name := "x"
		ctx, rec := server.WithPositionRecorder(b.Context())
		if _, err := db.UpdateUser(ctx, u.ID, server.UserUpdate{Name: &name}); err != nil {
			b.Fatal(err)
		}
		committed := time.Now()
		for {
			var ok bool
			if err := conn.QueryRow(b.Context(), `SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn`, rec.Position().String()).Scan(&ok); err != nil {
				b.Fatal(err)
			}
			if ok {
				break
			}
		}
		visible = append(visible, time.Since(committed))
	}
	close(done)
	<-sampled
	report := func(ds []time.Duration, name string) {
		if len(ds) == 0 {
			return
		}
		slices.Sort(ds)
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), name+"-p50-µs")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), name+"-p99-µs")
	}
	report(visible, "visible")
	report(routerLag, "router-lag")
}
