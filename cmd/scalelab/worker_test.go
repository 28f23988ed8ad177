package main

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// syncBuffer is a bytes.Buffer safe to read while run writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWorkerCommand starts `scalelab worker` on a fresh Postgres database,
// waits until it works jobs, and stops it through its context. The worker
// migrates an empty database first when no app has: with --partitions it
// gives it the layout the apps ask for.
func TestWorkerCommand(t *testing.T) {
	for _, tt := range []struct {
		name       string
		flags      []string
		wantParted bool
	}{
		{"plain", nil, false},
		{"partitioned", []string{"--partitions", "4"}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			url := pg.Database(t)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var stdout, stderr syncBuffer
			errc := make(chan error, 1)
			args := append([]string{"worker", "--db", url, "--concurrency", "2", "--metrics-addr", "127.0.0.1:0"}, tt.flags...)
			go func() { errc <- run(ctx, args, func(string) string { return "" }, &stdout, &stderr) }()
			deadline := time.Now().Add(60 * time.Second)
			for !strings.Contains(stdout.String(), "scalelab worker running 2 jobs at once") {
				select {
				case err := <-errc:
					t.Fatalf("worker ended early: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("worker not running after 60s\nstderr:\n%s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			var kind string
			conn, err := pgx.Connect(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			if err := conn.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE relname = 'users'`).Scan(&kind); err != nil {
				t.Fatal(err)
			}
			if parted := kind == "p"; parted != tt.wantParted {
				t.Errorf("users has relkind %q: partitioned %v, want %v", kind, parted, tt.wantParted)
			}
			cancel()
			if err := <-errc; err != nil {
				t.Fatalf("worker = %v, want nil after its context ended\nstderr:\n%s", err, stderr.String())
			}
			if !strings.Contains(stderr.String(), "worker stopped") {
				t.Errorf("stderr lacks \"worker stopped\":\n%s", stderr.String())
			}
		})
	}
}

func TestWorkerRefusesSQLite(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"worker", "--db", "sqlite:x.db"}, func(string) string { return "" }, &stdout, &stderr)
	if ee, ok := err.(*exitError); !ok || ee.code != 2 {
		t.Errorf("worker --db sqlite: = %v, want exit status 2", err)
	}
}
