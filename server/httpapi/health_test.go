package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"scalelab/server"
	"scalelab/server/auth"
)

// unreachableStore is a store whose database does not answer; only Ping
// is called.
type unreachableStore struct{ server.Store }

func (unreachableStore) Ping(context.Context) error {
	return errors.New("dial tcp 10.1.2.3:5432: connect: connection refused (user scalelab_admin, PostgreSQL 15.4)")
}

// /readyz names the dependency that is down and never its error text,
// which can name hosts, users and versions.
func TestReadyzNamesTheDependencyNotItsError(t *testing.T) {
	hasher, err := auth.NewHasher(auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHandler(Config{Store: unreachableStore{}, Hasher: hasher})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/readyz", nil))
	body := w.Body.String()
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET /readyz = %d %s, want 503", w.Code, body)
	}
	if !strings.Contains(body, "database") {
		t.Errorf("GET /readyz = %s, want it to name the database", body)
	}
	for _, leak := range []string{"10.1.2.3", "5432", "scalelab_admin", "refused", "PostgreSQL"} {
		if strings.Contains(body, leak) {
			t.Errorf("GET /readyz = %s: it leaks %q from the error text", body, leak)
		}
	}
	if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("GET /readyz: X-Content-Type-Options = %q, want nosniff", got)
	}
}
