package pgserver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scalelab/internal/pgserver"
	"scalelab/internal/pgserver/pgtest"
)

// TestPrimaryAndReplica walks the whole life of a primary and a streaming
// replica: start, create a database, replicate a row, stop twice, reopen.
func TestPrimaryAndReplica(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	primary := pgtest.New(t)
	if primary.PID() == 0 {
		t.Fatalf("PID() = 0 after Start, want the postmaster's pid")
	}
	if err := primary.Start(ctx); err == nil {
		t.Errorf("second Start() = nil, want an error (already running)")
	}
	if err := primary.CreateDatabase(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	conn, err := primary.Connect(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'before')"); err != nil {
		t.Fatal(err)
	}
	var port int
	if err := conn.QueryRow(ctx, "SELECT inet_server_port()").Scan(&port); err != nil || port != primary.Port() {
		t.Fatalf("inet_server_port() = %d, %v, want %d", port, err, primary.Port())
	}

	dir := pgtest.Dir(t)
	replica, err := primary.NewReplica(ctx, "replica1", pgserver.Options{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := replica.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if replica.Port() == primary.Port() || replica.Port() == 0 {
		t.Fatalf("replica Port() = %d, want its own (primary has %d)", replica.Port(), primary.Port())
	}
	if err := replica.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replica.WaitStreaming(ctx); err != nil {
		t.Fatal(err)
	}
	var app, state string
	if err := conn.QueryRow(ctx, "SELECT application_name, state FROM pg_stat_replication").Scan(&app, &state); err != nil {
		t.Fatal(err)
	}
	if app != "replica1" || state != "streaming" {
		t.Errorf("pg_stat_replication = %q %q, want replica1 streaming", app, state)
	}
	if _, err := conn.Exec(ctx, "UPDATE t SET v = 'after' WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	rconn, err := replica.Connect(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	defer rconn.Close(ctx)
	var v string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if err := rconn.QueryRow(ctx, "SELECT v FROM t WHERE id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if v == "after" || time.Now().After(deadline) {
			break
		}
	}
	if v != "after" {
		t.Errorf("replica reads v = %q, want %q", v, "after")
	}
	if _, err := rconn.Exec(ctx, "INSERT INTO t VALUES (2, 'x')"); err == nil {
		t.Errorf("write on the replica succeeded, want a read-only error")
	}
	rconn.Close(ctx)

	// Stop is idempotent; Open finds a stopped server and can start it again.
	if err := replica.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := replica.Stop(ctx); err != nil {
		t.Errorf("second Stop() = %v, want nil", err)
	}
	if pid := replica.PID(); pid != 0 {
		t.Errorf("PID() after Stop = %d, want 0", pid)
	}
	again, err := pgserver.Open(pgserver.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if again.Port() != replica.Port() {
		t.Errorf("Open(%q).Port() = %d, want %d", dir, again.Port(), replica.Port())
	}
	if err := again.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.WaitStreaming(ctx); err != nil {
		t.Fatal(err)
	}
	if err := again.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestInitErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := pgserver.Init(ctx, pgserver.Options{}); err == nil {
		t.Errorf("Init without Dir = nil error, want one")
	}
	if os.Geteuid() == 0 {
		// A directory whose parent the postgres user cannot enter.
		dir := filepath.Join(t.TempDir(), "pg")
		_, err := pgserver.Init(ctx, pgserver.Options{Dir: dir})
		if err == nil || !strings.Contains(err.Error(), "not usable by user postgres") {
			t.Errorf("Init(%q) = %v, want a 'not usable by user postgres' error", dir, err)
		}
	}
}

func TestCheckBinaries(t *testing.T) {
	// On a machine without PostgreSQL this fails with the message that says
	// what to install, which is the point: the tests need PostgreSQL.
	if err := pgserver.CheckBinaries(); err != nil {
		t.Fatal(err)
	}
}
