package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"scalelab/server"
	"scalelab/server/auth"
	"scalelab/server/sqlite"
)

// FuzzReadJSON: the body decoder never panics, and refuses only with 400,
// 413 or 415.
func FuzzReadJSON(f *testing.F) {
	f.Add([]byte(`{"email":"a@b.c","username":"abc","password":"12345678","profile":{"name":"n"}}`), "application/json")
	f.Add([]byte(`{"email":1}`), "application/json")
	f.Add([]byte(`{} trailing`), "application/json; charset=utf-8")
	f.Add([]byte(strings.Repeat("[", 70)), "application/merge-patch+json")
	f.Add([]byte("{\"a\":\"\xff\"}"), "")
	f.Add([]byte(`<xml/>`), "text/xml")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/users", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		var v userRequest
		if herr := readJSON(httptest.NewRecorder(), r, &v); herr != nil {
			switch herr.status {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("readJSON(%q) = %d %s", body, herr.status, herr.detail)
			}
			return
		}
		// What decoded, validation must handle.
		n, _ := v.newUser()
		n.Validate()
		v.change().Validate()
	})
}

// FuzzAPI sends fuzzed bodies, content types and path ids to the write
// routes of /api/v1 on a real SQLite store, as a signed-in user: no input
// may give a 5xx, and every answer is JSON or problem+json.
func FuzzAPI(f *testing.F) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, f.TempDir()+"/fuzz.db", sqlite.Options{Quota: server.Quota{Records: 1000, Bytes: 1 << 20}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	hasher, err := auth.NewHasher(cheapParams, 0, auth.WithQueue(1000))
	if err != nil {
		f.Fatal(err)
	}
	key, _ := auth.NewKey("hex:" + strings.Repeat("cd", 32))
	tokens, err := auth.NewIssuer(auth.IssuerOptions{Key: key})
	if err != nil {
		f.Fatal(err)
	}
	h, err := NewHandler(Config{Store: db, Hasher: hasher, Tokens: tokens, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		f.Fatal(err)
	}
	serve := func(method, path, token, contentType string, body []byte) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "http://api.test/", bytes.NewReader(body))
		r.URL.Path, r.URL.RawPath, r.URL.RawQuery = path, "", ""
		if i := strings.IndexByte(path, '?'); i >= 0 {
			r.URL.Path, r.URL.RawQuery = path[:i], path[i+1:]
		}
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := serve(http.MethodPost, "/api/v1/users", "", "application/json",
		[]byte(`{"email":"fuzz@example.com","username":"fuzz","password":"correct horse fuzz"}`))
	var u struct{ ID string }
	if err := json.Unmarshal(w.Body.Bytes(), &u); err != nil || w.Code != http.StatusCreated {
		f.Fatalf("sign-up = %d %s", w.Code, w.Body)
	}
	w = serve(http.MethodPost, "/api/v1/auth/token", "", "application/json",
		[]byte(`{"login":"fuzz","password":"correct horse fuzz"}`))
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &tok); err != nil || w.Code != http.StatusOK {
		f.Fatalf("token = %d %s", w.Code, w.Body)
	}
	token := tok.AccessToken
	routes := []struct{ method, path string }{
		{http.MethodPost, "/api/v1/users"},
		{http.MethodPost, "/api/v1/auth/token"},
		{http.MethodPut, "/api/v1/users/" + u.ID},
		{http.MethodPost, "/api/v1/users/" + u.ID + "/data"},
		{http.MethodGet, "/api/v1/users/" + u.ID + "/data?limit="},
		{http.MethodGet, "/api/v1/users/" + u.ID + "/data?cursor="},
		{http.MethodGet, "/api/v1/users/"},
	}
	f.Add(uint8(0), []byte(`{"email":"x@example.com","username":"xyz","password":"12345678"}`), "application/json", "")
	f.Add(uint8(1), []byte(`{"login":"fuzz","password":"wrong password"}`), "application/json", "")
	f.Add(uint8(2), []byte(`{"profile":{"name":"<b>","avatar":"https://x.test/a"}}`), "application/json", "")
	f.Add(uint8(3), []byte(`{"data":{"a":[1,2,{"b":null}]}}`), "application/json", "")
	f.Add(uint8(3), []byte(`{"data":"\u0000"}`), "application/json", "")
	f.Add(uint8(4), []byte(nil), "", "101")
	f.Add(uint8(5), []byte(nil), "", "AZDA3gAAcACAAAAAAAAAAA")
	f.Add(uint8(6), []byte(nil), "", "0190C0DE-0000-7000-8000-000000000000")
	f.Fuzz(func(t *testing.T, route uint8, body []byte, contentType, param string) {
		rt := routes[int(route)%len(routes)]
		path := rt.path + param
		if !validPath(path) {
			return
		}
		w := serve(rt.method, path, token, contentType, body)
		if w.Code >= 500 {
			t.Fatalf("%s %s %q (%s) = %d %s", rt.method, path, body, contentType, w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); w.Body.Len() > 0 && ct != "application/json" && ct != "application/problem+json" {
			t.Fatalf("%s %s = %d with Content-Type %q", rt.method, path, w.Code, ct)
		}
	})
}

// validPath reports whether p could arrive as a request path.
func validPath(p string) bool {
	for _, c := range []byte(p) {
		if c <= ' ' || c == 0x7f || c == '#' {
			return false
		}
	}
	return true
}
