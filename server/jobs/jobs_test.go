package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/internal/pgserver/pgtest"
	"scalelab/server"
	"scalelab/server/jobs"
	"scalelab/server/postgres"
)

// pg is one throwaway PostgreSQL server for this package's tests.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// TestExport runs an export end to end on a real Postgres: the store's
// migrations and River's, a user with 250 records, a worker with two
// slots; the job goes queued → done, its file gunzips to every record,
// another user cannot see it, and the metrics count one completed job.
func TestExport(t *testing.T) {
	ctx := t.Context()
	url := pg.Database(t)
	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Two processes migrating at once (an app and the worker) must both
	// succeed.
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- jobs.Migrate(ctx, pool) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Migrate: %v", err)
		}
	}

	owner := &server.User{Email: "owner@example.com", Username: "owner", PasswordHash: "h"}
	other := &server.User{Email: "other@example.com", Username: "other", PasswordHash: "h"}
	for _, u := range []*server.User{owner, other} {
		if err := db.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	const n = 250
	want := map[string]bool{}
	for i := range n {
		r := &server.Record{UserID: owner.ID, Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"note":"exported record"}`, i))}
		if err := db.CreateRecord(ctx, r); err != nil {
			t.Fatal(err)
		}
		want[r.ID] = true
	}

	// The API's queue inserts; the worker's works.
	api, err := jobs.New(pool, jobs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	worker, err := jobs.New(pool, jobs.Options{Records: db, Deleter: db, Concurrency: 2, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	id, err := api.EnqueueExport(ctx, owner.ID)
	if err != nil {
		t.Fatal(err)
	}
	st, err := api.ExportStatus(ctx, owner.ID, id)
	if err != nil || st.Status != jobs.StatusQueued {
		t.Fatalf("ExportStatus before the worker = %+v, %v; want queued", st, err)
	}
	if _, err := api.ExportStatus(ctx, other.ID, id); server.ErrorCode(err) != server.ENOTFOUND {
		t.Errorf("ExportStatus(other user) = %v, want ENOTFOUND", err)
	}

	if err := worker.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := worker.Stop(sctx); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err = api.ExportStatus(ctx, owner.ID, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status == jobs.StatusDone || st.Status == jobs.StatusFailed || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st.Status != jobs.StatusDone {
		t.Fatalf("export status = %+v after 30s, want done", st)
	}
	t.Logf("export of %d records: enqueue to done seen after %v", n, time.Since(start))

	f, err := api.ExportFile(ctx, owner.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.ExportFile(ctx, other.ID, id); server.ErrorCode(err) != server.ENOTFOUND {
		t.Errorf("ExportFile(other user) = %v, want ENOTFOUND", err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(f.Body))
	if err != nil {
		t.Fatalf("export file is not gzip (%s): %v", f.Encoding, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		UserID  string `json:"user_id"`
		Records []struct {
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
		} `json:"records"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("export file: %v", err)
	}
	if doc.UserID != owner.ID || len(doc.Records) != n || f.Records != n || f.RawBytes != int64(len(raw)) {
		t.Fatalf("export: user %s, %d records (row says %d, %d raw bytes; got %d), want %s and %d", doc.UserID, len(doc.Records), f.Records, f.RawBytes, len(raw), owner.ID, n)
	}
	for _, r := range doc.Records {
		if !want[r.ID] {
			t.Errorf("export has record %s, not one of the owner's", r.ID)
		}
		delete(want, r.ID)
	}
	t.Logf("export file: %d bytes of JSON, %d gzip-compressed (%.1f%%)", len(raw), len(f.Body), 100*float64(len(f.Body))/float64(len(raw)))

	// The completed event reaches the metrics asynchronously.
	for time.Now().Before(deadline) {
		if count(t, reg, "scalelab_jobs_finished_total") == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := count(t, reg, "scalelab_jobs_finished_total"); got != 1 {
		t.Errorf("scalelab_jobs_finished_total = %v, want 1", got)
	}
	if got := count(t, reg, "scalelab_job_queue_wait_seconds"); got != 1 {
		t.Errorf("scalelab_job_queue_wait_seconds count = %v, want 1", got)
	}
	if got := count(t, reg, "scalelab_queue_depth"); got != 0 {
		t.Errorf("scalelab_queue_depth = %v, want 0", got)
	}
}

// count sums a family's counters, gauges or histogram sample counts.
func count(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}
