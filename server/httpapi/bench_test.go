package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"scalelab/server"
	"scalelab/server/auth"
	"scalelab/server/cache"
	"scalelab/server/sqlite"
)

// nopWriter is a ResponseWriter that discards the body, so benchmarks
// measure the handler rather than a recorder's buffer.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkGetUser compares GET /api/users/{id} with L1 off and on against
// a bare handler that writes the same bytes, on a real SQLite store with
// 10,000 seeded users, read uniformly. Read the ratios, not the absolute
// numbers: this machine is noisy.
//
//	go test -run '^$' -bench GetUser -count 5 ./server/httpapi
func BenchmarkGetUser(b *testing.B) {
	ctx := context.Background()
	const users = 10000
	db, err := sqlite.Open(ctx, b.TempDir()+"/bench.db", sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Seed(ctx, users, "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5", nil); err != nil {
		b.Fatal(err)
	}
	hasher, _ := auth.NewHasher(auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 0)
	paths := make([]string, users)
	for i := range paths {
		paths[i] = "/api/users/" + server.SeedUserID(i)
	}
	sample, err := db.User(ctx, server.SeedUserID(0))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := json.Marshal(fullView(sample))

	handlers := map[string]http.Handler{
		"bare": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("ETag", `"0123456789abcdef"`)
			w.WriteHeader(200)
			w.Write(body)
		}),
		"l1-off": mustHandler(b, Config{Store: db, Hasher: hasher, Logger: slog.New(slog.DiscardHandler)}),
	}
	l1, err := cache.NewL1(cache.L1Options[*UserEntry]{TTL: time.Hour, MaxBytes: 256 << 20, Weigh: WeighUserEntry})
	if err != nil {
		b.Fatal(err)
	}
	defer l1.Close()
	handlers["l1-on"] = mustHandler(b, Config{Store: db, Hasher: hasher, UserCache: l1, Logger: slog.New(slog.DiscardHandler)})
	// Warm L1 so the benchmark measures hits.
	for _, p := range paths {
		handlers["l1-on"].ServeHTTP(&nopWriter{h: http.Header{}}, httptest.NewRequest("GET", p, nil))
	}

	for _, name := range []string{"bare", "l1-on", "l1-off"} {
		h := handlers[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				w := &nopWriter{h: http.Header{}}
				reqs := make([]*http.Request, 64)
				for j := range reqs {
					reqs[j] = httptest.NewRequest("GET", paths[(j*7919)%users], nil)
				}
				for pb.Next() {
					clear(w.h)
					h.ServeHTTP(w, reqs[i%len(reqs)])
					i++
				}
			})
		})
	}
}

// BenchmarkEncodeUser measures what L1 saves by keeping the encoded body:
// encoding the view on every hit against copying the stored bytes.
func BenchmarkEncodeUser(b *testing.B) {
	u := &server.User{ID: server.SeedUserID(1), Email: "ada@example.com", Username: "ada",
		Profile:   server.Profile{Name: "Ada Lovelace", Avatar: "https://example.com/a.png"},
		CreatedAt: server.Now(), UpdatedAt: server.Now(), Version: 1}
	e, _ := newUserEntry(u, "stamp")
	b.Run("encode-each-time", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(fullView(u)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stored-bytes", func(b *testing.B) {
		w := &nopWriter{h: http.Header{}}
		for b.Loop() {
			w.Write(e.Full)
		}
	})
}

func mustHandler(tb testing.TB, cfg Config) http.Handler {
	tb.Helper()
	h, err := NewHandler(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return h
}
