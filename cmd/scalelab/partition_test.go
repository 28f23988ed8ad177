package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// testV1UsageCounters: the owner's view shows the usage counters, exact
// after every kind of record write; no other view has them, and record
// writes leave the public view (what the CDN caches) and its tag alone.
func testV1UsageCounters(t *testing.T, s *v1Server) {
	u, other := s.newUser(t), s.newUser(t)
	url := s.userURL(u.ID)
	pubTag := do(t, "GET", url, nil).Header.Get("ETag")
	want := func(what string, records, size int) {
		t.Helper()
		full := wantJSON(t, "GET self "+what, do(t, "GET", url, nil, bearer(u.Token)...), http.StatusOK)
		if full["records_count"] != float64(records) || full["records_bytes"] != float64(size) {
			t.Errorf("GET self %s: records_count %v, records_bytes %v; want %d, %d", what, full["records_count"], full["records_bytes"], records, size)
		}
		for _, r := range []*response{do(t, "GET", url, nil), do(t, "GET", url, nil, bearer(other.Token)...)} {
			if bytes.Contains(r.Body, []byte("records_")) {
				t.Errorf("a public view %s shows the counters: %s", what, r.Body)
			}
		}
	}
	want("before any record", 0, 0)
	first := mustRecord(t, s, u, `{"a":1}`) // 7 bytes
	want("after a create", 1, 7)
	r := do(t, "POST", s.dataURL(u.ID)+":batch", `{"records":[{"data":[1,2]},{"data":"xy"},{"data":null}]}`, bearer(u.Token)...)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST data:batch = %d %s", r.Status, r.Body)
	}
	want("after a batch", 4, 7+5+4+4)
	if r := do(t, "PUT", s.dataURL(u.ID)+"/"+first, `{"data":{"a":12345}}`, bearer(u.Token)...); r.Status != http.StatusOK {
		t.Fatalf("PUT record = %d %s", r.Status, r.Body)
	}
	want("after an update", 4, 11+5+4+4)
	if r := do(t, "DELETE", s.dataURL(u.ID)+"/"+first, nil, bearer(u.Token)...); r.Status != http.StatusNoContent {
		t.Fatalf("DELETE record = %d %s", r.Status, r.Body)
	}
	want("after a delete", 3, 5+4+4)
	own := do(t, "GET", url, nil, bearer(u.Token)...)
	wantCaching(t, "GET self with counters", own, ccPrivate)
	if r := do(t, "GET", url, nil, append([]string{"If-None-Match", own.Header.Get("ETag")}, bearer(u.Token)...)...); r.Status != http.StatusNotModified {
		t.Errorf("GET self with its ETag = %d, want 304", r.Status)
	}
	mustRecord(t, s, u, `1`)
	if r := do(t, "GET", url, nil, append([]string{"If-None-Match", own.Header.Get("ETag")}, bearer(u.Token)...)...); r.Status != http.StatusOK {
		t.Errorf("GET self with the ETag from before a record write = %d, want 200: the counters changed", r.Status)
	}
	if tag := do(t, "GET", url, nil).Header.Get("ETag"); tag != pubTag {
		t.Errorf("public ETag %s changed to %s with record writes", pubTag, tag)
	}
}

// TestPartitionsFlag: --partitions picks the layout of a new database; a
// database keeps its layout, and a server asking for another one stops
// with a usage error (status 2) that names both, while seed takes
// whichever layout the database has.
func TestPartitionsFlag(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	cmd := func(args ...string) error {
		var out bytes.Buffer
		err := run(ctx, args, func(string) string { return "" }, &out, io.Discard)
		if err != nil {
			return fmt.Errorf("%w (output %q)", err, out.String())
		}
		return nil
	}
	wantUsage := func(what, mention string, err error) {
		t.Helper()
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, mention) {
			t.Errorf("%s = %v, want exit status 2 mentioning %q", what, err, mention)
		}
	}

	plain := postgresDSN(t)
	if err := cmd("seed", "--db", plain, "--users", "3"); err != nil {
		t.Fatalf("seed an empty database = %v", err)
	}
	wantUsage("server --partitions 16 on a plain database", "plain tables",
		cmd("server", "--addr", "127.0.0.1:0", "--db", plain, "--partitions", "16"))

	part := postgresDSN(t)
	s := startServer(t, "--db", part, "--partitions", "16")
	s.stop(t)
	if err := cmd("seed", "--db", part, "--users", "3"); err != nil {
		t.Fatalf("seed a partitioned database = %v", err)
	}
	wantUsage("server without --partitions on a partitioned database", "hash-partitioned 16 ways",
		cmd("server", "--addr", "127.0.0.1:0", "--db", part))
	wantUsage("server --partitions 8 on a database of 16", "hash-partitioned 16 ways",
		cmd("server", "--addr", "127.0.0.1:0", "--db", part, "--partitions", "8"))
	wantUsage("server --partitions on SQLite", "PostgreSQL",
		cmd("server", "--addr", "127.0.0.1:0", "--db", "sqlite:"+t.TempDir()+"/x.db", "--partitions", "4"))
	wantUsage("server --partitions 1", "2 to",
		cmd("server", "--addr", "127.0.0.1:0", "--db", postgresDSN(t), "--partitions", "1"))
}

// TestUnversionedAPIPartitioned runs the unversioned contract on the
// partitioned layout: concurrent sign-ups with one email give one 201 and
// 409s, through the lookup tables.
func TestUnversionedAPIPartitioned(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--api", "users", "--db", postgresDSN(t), "--partitions", "16")
	t.Run("crud", func(t *testing.T) { testCRUD(t, s.URL) })
	t.Run("conflicts", func(t *testing.T) { testConflicts(t, s.URL) })
	t.Run("read-after-update", func(t *testing.T) { testReadAfterUpdate(t, s.URL) })
}
