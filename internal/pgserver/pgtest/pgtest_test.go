package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"scalelab/internal/pgserver"
)

// TestReapOrphans shows that a server left behind by a dead test binary is
// stopped and removed, and one whose owner runs is left alone.
func TestReapOrphans(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	srv, err := pgserver.Init(ctx, pgserver.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Stop(context.Background()) })
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := srv.PID()

	// Owned by this process: kept.
	self, err := processID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(self), 0o644); err != nil {
		t.Fatal(err)
	}
	reapOrphans(ctx)
	if srv.PID() != pid {
		t.Fatalf("reapOrphans stopped a server whose owner runs")
	}

	// Owned by a process that is gone (same PID, other start time): reaped.
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(self+"0"), 0o644); err != nil {
		t.Fatal(err)
	}
	reapOrphans(ctx)
	if got := srv.PID(); got != 0 {
		t.Errorf("after reapOrphans PID() = %d, want 0", got)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after reapOrphans Stat(%q) = %v, want not exist", dir, err)
	}
}

func TestNewDatabase(t *testing.T) {
	srv := New(t)
	a, b := NewDatabase(t, srv), NewDatabase(t, srv)
	if a == b {
		t.Fatalf("NewDatabase twice = %q both times, want two databases", a)
	}
	conn, err := pgserver.Open(pgserver.Options{Dir: srv.Dir()})
	if err != nil {
		t.Fatal(err)
	}
	if conn.Port() != srv.Port() {
		t.Errorf("Open(%q).Port() = %d, want %d", srv.Dir(), conn.Port(), srv.Port())
	}
}
