package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"scalelab/server/auth"
	"scalelab/server/ratelimit"
)

// send is do with extra request headers; it returns the response headers
// too.
func (s *testServer) send(t *testing.T, method, path, token string, hdr map[string]string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// A write sent again with the same Idempotency-Key is applied once and
// answered as the first time; the key with another body is 422, a
// malformed key 400, and another user's same key is theirs alone.
func TestIdempotencyKey(t *testing.T) {
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServer(t, hasher, ratelimit.Config{Rate: 1000})
	id, token := s.signUpAndToken(t, "idem")
	_, other := s.signUpAndToken(t, "idem2")
	path := "/api/v1/users/" + id + "/data"
	key := map[string]string{"Idempotency-Key": "k-1"}

	code, h1, first := s.send(t, http.MethodPost, path, token, key, []byte(`{"data":{"n":1}}`))
	if code != http.StatusCreated || h1.Get("Idempotent-Replayed") != "" {
		t.Fatalf("first POST = %d %s (replayed %q), want 201", code, first, h1.Get("Idempotent-Replayed"))
	}
	code, h2, again := s.send(t, http.MethodPost, path, token, key, []byte(`{"data":{"n":1}}`))
	if code != http.StatusCreated || !bytes.Equal(again, first) || h2.Get("Location") != h1.Get("Location") || h2.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retried POST = %d %s (Location %q, replayed %q), want 201 %s (Location %q, replayed true)",
			code, again, h2.Get("Location"), h2.Get("Idempotent-Replayed"), first, h1.Get("Location"))
	}
	code, list := s.do(t, http.MethodGet, path, token, nil)
	var page struct{ Items []json.RawMessage }
	json.Unmarshal(list, &page)
	if code != http.StatusOK || len(page.Items) != 1 {
		t.Errorf("GET %s after a POST and its retry = %d with %d records, want 200 with 1", path, code, len(page.Items))
	}
	if code, _, body := s.send(t, http.MethodPost, path, token, key, []byte(`{"data":{"n":2}}`)); code != http.StatusUnprocessableEntity {
		t.Errorf("POST with the same key and another body = %d %s, want 422", code, body)
	}
	if code, _, body := s.send(t, http.MethodPost, path, token, map[string]string{"Idempotency-Key": "bad key"}, []byte(`{"data":1}`)); code != http.StatusBadRequest {
		t.Errorf("POST with a malformed key = %d %s, want 400", code, body)
	}
	// The key names the request in its sender's scope: another user's
	// identical key is a write of its own (here, refused as not theirs).
	if code, _, body := s.send(t, http.MethodPost, path, other, key, []byte(`{"data":{"n":1}}`)); code != http.StatusForbidden {
		t.Errorf("another user's POST with the same key = %d %s, want 403", code, body)
	}
	// A PUT and its retry: one version step.
	upath := "/api/v1/users/" + id
	pkey := map[string]string{"Idempotency-Key": "put-1"}
	_, _, a := s.send(t, http.MethodPut, upath, token, pkey, []byte(`{"profile":{"name":"once"}}`))
	code, _, b := s.send(t, http.MethodPut, upath, token, pkey, []byte(`{"profile":{"name":"once"}}`))
	if code != http.StatusOK || !bytes.Equal(a, b) {
		t.Errorf("retried PUT = %d %s, want 200 %s", code, b, a)
	}
}

// PUT with If-Match applies only to the version it names: 412 otherwise,
// and nothing changes.
func TestIfMatch(t *testing.T) {
	hasher, err := auth.NewHasher(cheapParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	s := mustTestServer(t, hasher, ratelimit.Config{Rate: 1000})
	id, token := s.signUpAndToken(t, "ifmatch")
	path := "/api/v1/users/" + id
	code, h, _ := s.send(t, http.MethodGet, path, token, nil, nil)
	tag := h.Get("ETag")
	if code != http.StatusOK || tag == "" {
		t.Fatalf("GET %s = %d, ETag %q", path, code, tag)
	}
	code, h, body := s.send(t, http.MethodPut, path, token, map[string]string{"If-Match": tag}, []byte(`{"profile":{"name":"first"}}`))
	if code != http.StatusOK || h.Get("ETag") == "" || h.Get("ETag") == tag {
		t.Fatalf("PUT with the current ETag = %d %s (ETag %q), want 200 with a new ETag", code, body, h.Get("ETag"))
	}
	newTag := h.Get("ETag")
	// A late write of the old view: refused.
	if code, _, body := s.send(t, http.MethodPut, path, token, map[string]string{"If-Match": tag}, []byte(`{"profile":{"name":"late"}}`)); code != http.StatusPreconditionFailed {
		t.Errorf("PUT with a stale ETag = %d %s, want 412", code, body)
	}
	if code, h, _ := s.send(t, http.MethodGet, path, token, nil, nil); code != http.StatusOK || h.Get("ETag") != newTag {
		t.Errorf("GET after the refused PUT = %d, ETag %q, want the first PUT's %q", code, h.Get("ETag"), newTag)
	}
	if code, _, body := s.send(t, http.MethodPut, path, token, map[string]string{"If-Match": "*"}, []byte(`{"profile":{"name":"any"}}`)); code != http.StatusOK {
		t.Errorf("PUT with If-Match: * = %d %s, want 200", code, body)
	}
}
