package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/klauspost/compress/gzip"

	"scalelab/server/app"
	"scalelab/server/jobs"
	"scalelab/server/postgres"
)

// TestExportThroughAPI: the owner POSTs an export (202 + Location), polls
// the status until done, and fetches the gzip file the link names; another
// user's token gets 403 or 404 on both.
func TestExportThroughAPI(t *testing.T) {
	ctx := t.Context()
	url := pg.Database(t)
	c := app.Default()
	c.DB, c.Addr, c.MetricsAddr = url, "127.0.0.1:0", ""
	c.ArgonMemoryKiB, c.ArgonTime = 64, 1
	c.TokenSecret = "hex:" + string(bytes.Repeat([]byte("ab"), 32))
	log := slog.New(slog.DiscardHandler)
	srv, err := app.New(ctx, c, log)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	t.Cleanup(func() { stop(); <-done })

	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	worker, err := jobs.New(pool, jobs.Options{Records: db, Deleter: db, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := worker.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		worker.Stop(cctx)
	})

	call := func(method, path, token string, body any) (*http.Response, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, srv.URL()+path, rd)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, out
	}
	signUp := func(name string) (id, token string) {
		resp, out := call(http.MethodPost, "/api/v1/users", "", map[string]string{"email": name + "@example.com", "username": name, "password": "correct horse " + name})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("sign-up = %d %s", resp.StatusCode, out)
		}
		var u struct{ ID string }
		json.Unmarshal(out, &u)
		resp, out = call(http.MethodPost, "/api/v1/auth/token", "", map[string]string{"login": name, "password": "correct horse " + name})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token = %d %s", resp.StatusCode, out)
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		json.Unmarshal(out, &tok)
		return u.ID, tok.AccessToken
	}
	id, token := signUp("exporter")
	_, otherToken := signUp("snooper")
	for i := range 30 {
		if resp, out := call(http.MethodPost, "/api/v1/users/"+id+"/data", token, map[string]any{"data": map[string]any{"n": i}}); resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST data = %d %s", resp.StatusCode, out)
		}
	}

	resp, out := call(http.MethodPost, "/api/v1/users/"+id+"/exports", token, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("POST exports = %d (Location %q) %s, want 202 with a Location", resp.StatusCode, loc, out)
	}
	if resp, _ := call(http.MethodGet, loc, otherToken, nil); resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET %s with another user's token = %d, want 403 or 404", loc, resp.StatusCode)
	}
	var st struct {
		Status string
		File   *string
	}
	start := time.Now()
	for time.Since(start) < 30*time.Second {
		resp, out = call(http.MethodGet, loc, token, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d %s", loc, resp.StatusCode, out)
		}
		json.Unmarshal(out, &st)
		if st.Status == jobs.StatusDone || st.Status == jobs.StatusFailed {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Status != jobs.StatusDone || st.File == nil {
		t.Fatalf("export = %s, want done with a file link", out)
	}
	t.Logf("export done %v after the POST", time.Since(start))
	resp, out = call(http.MethodGet, *st.File, token, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("GET %s = %d %s", *st.File, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	zr, err := gzip.NewReader(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(zr)
	var doc struct {
		Records []json.RawMessage `json:"records"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Records) != 30 {
		t.Fatalf("export file: %d records, %v; want 30", len(doc.Records), err)
	}
	if resp, _ := call(http.MethodGet, *st.File, otherToken, nil); resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET file with another user's token = %d, want 403 or 404", resp.StatusCode)
	}
}
