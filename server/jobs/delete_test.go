package jobs_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"scalelab/server"
	"scalelab/server/app"
	"scalelab/server/jobs"
	"scalelab/server/postgres"
)

// apiClient calls one in-process server.
type apiClient struct {
	t    *testing.T
	base string
}

func (c apiClient) call(method, path, token string, body any) (*http.Response, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp, out
}

func (c apiClient) signUp(name string) (id, token string) {
	c.t.Helper()
	resp, out := c.call(http.MethodPost, "/api/v1/users", "", map[string]string{"email": name + "@example.com", "username": name, "password": "correct horse " + name})
	if resp.StatusCode != http.StatusCreated {
		c.t.Fatalf("sign-up %s = %d %s", name, resp.StatusCode, out)
	}
	var u struct{ ID string }
	json.Unmarshal(out, &u)
	resp, out = c.call(http.MethodPost, "/api/v1/auth/token", "", map[string]string{"login": name, "password": "correct horse " + name})
	if resp.StatusCode != http.StatusOK {
		c.t.Fatalf("token %s = %d %s", name, resp.StatusCode, out)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(out, &tok)
	return u.ID, tok.AccessToken
}

// addRecords adds n records through the batch route.
func (c apiClient) addRecords(id, token string, n int) {
	c.t.Helper()
	for n > 0 {
		k := min(n, 100)
		var recs []map[string]any
		for i := range k {
			recs = append(recs, map[string]any{"data": map[string]any{"n": i, "note": "to be deleted"}})
		}
		if resp, out := c.call(http.MethodPost, "/api/v1/users/"+id+"/data:batch", token, map[string]any{"records": recs}); resp.StatusCode != http.StatusCreated {
			c.t.Fatalf("POST data:batch = %d %s", resp.StatusCode, out)
		}
		n -= k
	}
}

// TestDeleteUserLater: through the API on a real Postgres with River, a
// user with at least --async-delete-records records is deleted with 202
// and a status URL; the user is gone at once (GET 404, the token 401, the
// email and username free for a new sign-up) while its records wait for
// the worker, which deletes them in batches; the status URL goes from
// queued to done and answers 404 to a wrong key. A user with fewer
// records still gets 204 and loses its records at once.
func TestDeleteUserLater(t *testing.T) {
	ctx := t.Context()
	url := pg.Database(t)
	const threshold, many = 150, 2*jobs.DeleteBatch + 30
	c := app.Default()
	c.DB, c.Addr, c.MetricsAddr = url, "127.0.0.1:0", ""
	c.ArgonMemoryKiB, c.ArgonTime = 64, 1
	c.TokenSecret = "hex:" + string(bytes.Repeat([]byte("cd"), 32))
	c.AsyncDeleteRecords = threshold
	srv, err := app.New(ctx, c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx) }()
	t.Cleanup(func() { stop(); <-done })
	api := apiClient{t: t, base: srv.URL()}

	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	records := func(userID string) int64 {
		t.Helper()
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM records WHERE user_id = $1`, userID).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A small user: 204, records gone in the same transaction.
	smallID, smallToken := api.signUp("small")
	api.addRecords(smallID, smallToken, threshold-1)
	if resp, out := api.call(http.MethodDelete, "/api/v1/users/"+smallID, smallToken, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE user with %d records = %d %s, want 204", threshold-1, resp.StatusCode, out)
	}
	if n := records(smallID); n != 0 {
		t.Errorf("after a synchronous delete %d records are left, want 0", n)
	}

	// A big user: 202, gone at once, records still there until a worker
	// runs.
	bigID, bigToken := api.signUp("big")
	api.addRecords(bigID, bigToken, many)
	resp, out := api.call(http.MethodDelete, "/api/v1/users/"+bigID, bigToken, nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		t.Fatalf("DELETE user with %d records = %d (Location %q) %s, want 202 with a Location", many, resp.StatusCode, loc, out)
	}
	if resp, out := api.call(http.MethodGet, "/api/v1/users/"+bigID, "", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET the deleted user = %d %s, want 404", resp.StatusCode, out)
	}
	if resp, _ := api.call(http.MethodGet, "/api/v1/users/"+bigID+"/data", bigToken, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the deleted user's token on its records = %d, want 401", resp.StatusCode)
	}
	if resp, _ := api.call(http.MethodDelete, "/api/v1/users/"+bigID, bigToken, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a second DELETE with the deleted user's token = %d, want 401", resp.StatusCode)
	}
	newID, newToken := api.signUp("big") // same email and username
	if newID == bigID {
		t.Fatalf("the new sign-up got the deleted user's id %s", newID)
	}
	if n := records(bigID); n != many {
		t.Fatalf("before any worker ran, %d records are left, want all %d", n, many)
	}
	status := func(path string) (int, string) {
		t.Helper()
		resp, out := api.call(http.MethodGet, path, "", nil)
		var v struct{ Status string }
		json.Unmarshal(out, &v)
		return resp.StatusCode, v.Status
	}
	if code, st := status(loc); code != http.StatusOK || st != jobs.StatusQueued {
		t.Errorf("GET %s before the worker = %d %q, want 200 queued", loc, code, st)
	}
	jobID, _, _ := strings.Cut(strings.TrimPrefix(loc, "/api/v1/deletions/"), "-")
	if code, _ := status("/api/v1/deletions/" + jobID + "-" + strings.Repeat("0", 32)); code != http.StatusNotFound {
		t.Errorf("GET the status with a wrong key = %d, want 404", code)
	}
	if code, _ := status("/api/v1/deletions/1-nothex"); code != http.StatusNotFound {
		t.Errorf("GET a malformed status URL = %d, want 404", code)
	}
	// Only a token that is valid may come along, as everywhere.
	if resp, _ := api.call(http.MethodGet, loc, bigToken, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s with the deleted user's token = %d, want 401", loc, resp.StatusCode)
	}

	db, err := postgres.Open(ctx, url, postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	// The worker's deletion never touches a live user's records.
	api.addRecords(newID, newToken, 10)
	if n, err := db.DeleteDeletedUserRecords(ctx, newID, jobs.DeleteBatch); err != nil || n != 0 {
		t.Fatalf("DeleteDeletedUserRecords(live user) = %d, %v; want 0, nil", n, err)
	}

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
	start := time.Now()
	var st string
	for time.Since(start) < time.Minute {
		var code int
		if code, st = status(loc); code != http.StatusOK {
			t.Fatalf("GET %s = %d", loc, code)
		}
		if st == jobs.StatusDone || st == jobs.StatusFailed {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st != jobs.StatusDone {
		t.Fatalf("deletion status = %q after a minute, want done", st)
	}
	t.Logf("%d records deleted by the queue %v after the DELETE's 202", many, time.Since(start))
	if n := records(bigID); n != 0 {
		t.Errorf("after the job, %d records of the deleted user are left, want 0", n)
	}
	if n := records(newID); n != 10 {
		t.Errorf("the new user with the old email has %d records, want its 10", n)
	}
	if _, err := db.User(ctx, bigID); server.ErrorCode(err) != server.ENOTFOUND {
		t.Errorf("User(deleted) = %v, want ENOTFOUND", err)
	}
}

// TestAsyncDeleteNeedsPostgres: the flag is refused where there is no
// queue, rather than silently ignored.
func TestAsyncDeleteNeedsPostgres(t *testing.T) {
	c := app.Default()
	c.DB, c.Addr, c.MetricsAddr = "sqlite:"+t.TempDir()+"/db.sqlite", "127.0.0.1:0", ""
	c.AsyncDeleteRecords = 1000
	srv, err := app.New(t.Context(), c, slog.New(slog.DiscardHandler))
	if err == nil {
		srv.Close()
		t.Fatal("app.New(sqlite, --async-delete-records=1000) = nil error, want a configuration error")
	}
	if !errors.Is(err, app.ErrConfig) {
		t.Errorf("app.New error = %v, want a configuration error", err)
	}
}
