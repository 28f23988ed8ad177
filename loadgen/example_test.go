package loadgen_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"time"

	"scalelab/loadgen"
)

// A mix of reads and read-after-write updates at a constant arrival rate,
// each virtual user with its own token, counting stale reads.
func Example() {
	srv := httptest.NewServer(userServer())
	defer srv.Close()

	read := loadgen.Op{Name: "read", Weight: 9, Do: func(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
		id := fmt.Sprint(s.Rand.IntN(100))
		_, err := c.Do(&loadgen.Request{Name: "GET /users/{id}", Path: "/users/" + id})
		return err
	}}
	update := loadgen.Op{Name: "update-then-read", Weight: 1, Do: func(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
		id, name := fmt.Sprint(s.Rand.IntN(100)), fmt.Sprint("name-", s.Rand.Int())
		if _, err := c.Do(&loadgen.Request{Name: "PUT /users/{id}", Method: "PUT", Path: "/users/" + id, Body: []byte(name)}); err != nil {
			return err
		}
		resp, err := c.Do(&loadgen.Request{Name: "GET /users/{id}", Path: "/users/" + id})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.Body, []byte(name)) {
			s.Counter("stale_reads").Add(1)
		}
		return nil
	}}

	progress := loadgen.NewProgress(io.Discard) // os.Stderr in a real driver
	res, err := loadgen.Run(context.Background(), loadgen.Config{
		Target:   srv.URL,
		Ops:      []loadgen.Op{read, update},
		Executor: loadgen.ConstantArrivalRate{Rate: 200, Duration: time.Second},
		Seed:     1,
		Setup: func(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
			c.SetHeader("Authorization", fmt.Sprintf("Bearer token-%d", s.ID))
			return nil
		},
		Observer: progress,
	})
	progress.Stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println("offered:", res.Offered)
	for _, op := range res.Operations {
		fmt.Println(op.Name, "ran:", op.Count > 0, "errors:", op.Errors)
	}
	fmt.Println("stale reads:", res.Counters["stale_reads"])
	// Output:
	// offered: 200
	// read ran: true errors: 0
	// update-then-read ran: true errors: 0
	// stale reads: 0
}

func userServer() http.Handler {
	var mu sync.Mutex
	names := map[string]string{}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if r.Method == "PUT" {
			b, _ := io.ReadAll(r.Body)
			names[r.URL.Path] = string(b)
		}
		io.WriteString(w, names[r.URL.Path])
	})
}
