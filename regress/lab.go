package regress

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"scalelab/loadgen"
	"scalelab/server"
	"scalelab/server/app"
	"scalelab/server/auth"
	"scalelab/server/httpapi"
)

// lab is the two servers under test and what they serve.
type lab struct {
	paths []string // GET paths of the seeded users
	// planted, when set, is burnt by the server before each request.
	planted      atomic.Pointer[planted]
	server, bare *listening
	header       http.Header // the cached GET's headers, which bare writes
	body         []byte
	closers      []func()
}

// listening is a server on a port of its own.
type listening struct {
	url string
}

// startLab seeds users into a SQLite database in a temporary directory
// and starts the reference server on it through app.New, exactly as
// `scalelab server --api users` wires it (L1 on with its default TTL,
// admission control, metrics on their own listener): a change anywhere in
// the server's wiring is measured. It serves the unversioned GET, as phases
// 1 and 2 do: the cached GET is the server's hottest path, and its cost
// is the server's own (routing, id parsing, the L1 lookup, headers,
// metrics, admission), where an anonymous /api/v1 GET would add the rate
// limiter and token parsing, which have their own benchmarks, and would
// break the baseline's setup. The bare handler answers, on a listener of
// its own, the bytes and headers the server's cached GET answers.
func startLab(ctx context.Context, users int) (l *lab, err error) {
	l = &lab{}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	dir, err := os.MkdirTemp("", "scalelab-regress-")
	if err != nil {
		return nil, err
	}
	l.closers = append(l.closers, func() { os.RemoveAll(dir) })

	dsn := "sqlite:" + filepath.Join(dir, "regress.db")
	if err := seed(ctx, dsn, users); err != nil {
		return nil, err
	}

	cfg := app.Default()
	cfg.Addr = "127.0.0.1:0"
	cfg.DB = dsn
	cfg.API = httpapi.APIUsers
	cfg.Middleware = func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if p := l.planted.Load(); p != nil {
				p.burner.burn(p.iterations)
			}
			next.ServeHTTP(w, r)
		})
	}
	srv, err := app.New(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, fmt.Errorf("start the server: %w", err)
	}
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx) }()
	l.closers = append(l.closers, func() {
		stop()
		<-served
	})
	l.server = &listening{url: srv.URL()}

	// Fill L1 so that every measured GET is a hit, then record what a hit
	// answers: the bare handler answers exactly that.
	l.paths = make([]string, users)
	for i := range l.paths {
		l.paths[i] = "/api/users/" + server.SeedUserID(i)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, p := range append(l.paths, l.paths[0]) {
		header, body, err := get(ctx, client, l.server.url+p)
		if err != nil {
			return nil, err
		}
		l.header, l.body = header, body
	}
	l.bare, err = l.listen(bareHandler(l.header, l.body))
	if err != nil {
		return nil, err
	}
	return l, nil
}

// seed loads users into the database dsn names. GETs never check
// passwords, so the seeded users share one cheap hash.
func seed(ctx context.Context, dsn string, users int) error {
	st, err := app.OpenStore(ctx, app.StoreOptions{DSN: dsn})
	if err != nil {
		return err
	}
	defer st.Close()
	cheap := auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
	hash, err := auth.Hash(server.SeedPassword, cheap)
	if err != nil {
		return err
	}
	if err := st.Seed(ctx, users, hash, nil); err != nil {
		return fmt.Errorf("seed %d users: %w", users, err)
	}
	return nil
}

// get fetches url and returns the headers the handler set (net/http's own
// Date and Content-Length left out: the bare handler's server adds them
// alike) and the body.
func get(ctx context.Context, client *http.Client, url string) (http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: read body: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: status %d, want 200", url, resp.StatusCode)
	}
	h := resp.Header.Clone()
	h.Del("Date")
	h.Del("Content-Length")
	return h, body, nil
}

// bareHandler writes body with header and status 200 to every request:
// the least any server can do to answer a cached GET. Like the server's
// hot path, it assigns prepared header slices instead of calling Set.
func bareHandler(header http.Header, body []byte) http.Handler {
	header = header.Clone()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for k, v := range header {
			h[k] = v
		}
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	})
}

// listen serves h on 127.0.0.1:0 with the server's timeouts.
func (l *lab) listen(h http.Handler) (*listening, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	l.closers = append(l.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		<-errc
	})
	return &listening{url: "http://" + ln.Addr().String()}, nil
}

// close stops the servers, then removes the temporary directory: the
// reverse of the order they were made in.
func (l *lab) close() {
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
	l.closers = nil
}

// drive runs vus closed-model users against url for d, each reading
// seeded users picked uniformly, and measures the CPU time the process
// spent meanwhile (the generator's setup and wind-down included, the same
// for both targets). Any failed request fails the check: an erroring
// server is not a fast one.
func (l *lab) drive(ctx context.Context, url string, vus int, d time.Duration, seed uint64) (segment, error) {
	paths := l.paths
	cpu0 := processCPU()
	res, err := loadgen.Run(ctx, loadgen.Config{
		Target: url,
		Ops: []loadgen.Op{{Name: "GET /api/users/{id}", Weight: 1,
			Do: func(_ context.Context, c *loadgen.Client, s *loadgen.Session) error {
				_, err := c.Do(&loadgen.Request{Path: paths[s.Rand.IntN(len(paths))], Expect: []int{200}})
				return err
			}}},
		Executor:     loadgen.ConstantVUs{VUs: vus, Duration: d},
		Seed:         seed,
		GracefulStop: time.Second,
	})
	cpu := processCPU() - cpu0
	if err != nil {
		return segment{}, fmt.Errorf("drive %s: %w", url, err)
	}
	if res.Total.Errors > 0 || res.Total.Count == 0 {
		return segment{}, fmt.Errorf("drive %s: %d of %d requests failed %v", url, res.Total.Errors, res.Total.Count, res.ErrorsByClass)
	}
	return segment{requests: res.Total.Count, wall: res.Duration, cpu: cpu}, nil
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// processCPU returns the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAverage returns the 1, 5 and 15 minute load averages, or "unknown".
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func headerList(h http.Header) string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
