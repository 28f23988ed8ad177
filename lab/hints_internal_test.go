package lab

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"scalelab/loadgen"
)

// A simulated client sends back the write hint of its latest write, the
// write of a large record included: a client that kept sending "none"
// after writing would tell the server its own read need not wait for the
// write, and a replica that had not replayed it would answer 404.
func TestLargeRecordWriteHintIsSentBack(t *testing.T) {
	var mu sync.Mutex
	var readHint string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/data"):
			w.Header().Set(wroteHeader, "hint-of-the-large-write")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id":"rec-1"}`))
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/data/rec-1"):
			mu.Lock()
			readHint = r.Header.Get(wroteHeader)
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"id":"rec-1","data":{}}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	c, err := loadgen.NewClient(srv.URL, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d := &driver{accounts: SeededUsers(1)}
	v := &vu{user: 0, token: []loadgen.Header{{Key: "Authorization", Value: "Bearer t"}, {Key: wroteHeader, Value: "none"}}}
	s := &loadgen.Session{Value: v, Rand: rand.New(rand.NewPCG(1, 2))}
	// The client's first large read writes its record first.
	if err := d.getLargeRecord("")(context.Background(), c, s); err != nil {
		t.Fatalf("get-large-record: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if readHint != "hint-of-the-large-write" {
		t.Errorf("the read after the large write sent %s: %q, want the write's hint %q", wroteHeader, readHint, "hint-of-the-large-write")
	}
}
