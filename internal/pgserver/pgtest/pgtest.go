// Package pgtest gives tests a real, throwaway PostgreSQL 15 server of their
// own (package pgserver), never one that happens to run on the machine.
//
// Nothing is skipped: when PostgreSQL is not installed, a test that asks for
// it fails with pgserver.CheckBinaries' message (install postgresql-15, or
// `make deps`).
//
// One server per test binary is the cheap way (initdb and start take about
// a second); each test then gets a fresh database:
//
//	var pg pgtest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		url := pg.Database(t) // a new, empty database; dropped when t ends
//		...
//	}
//
// Servers are stopped with pg_ctl when the test (New) or the binary (Shared)
// ends, failed or not. A test binary that is killed cannot clean up; the
// next test binary that starts a server stops and removes what such dead
// binaries left in the temporary directory.
package pgtest

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"scalelab/internal/pgserver"
)

// dirPrefix names the temporary directories of test servers, so orphans can
// be found.
const dirPrefix = "scalelab-pgtest-"

// ownerFile in a test server's Dir names the test process that owns it:
// "PID STARTTIME" (the start time guards against a reused PID).
const ownerFile = "owner"

// conf keeps test servers small and quick.
var conf = []string{
	"shared_buffers = 32MB",
	"max_connections = 200",
	"log_min_messages = warning",
	"log_line_prefix = '%m [%p] %d '",
}

// start makes and starts a test server in a fresh directory under the
// temporary directory.
func start(ctx context.Context) (*pgserver.Server, error) {
	if err := pgserver.CheckBinaries(); err != nil {
		return nil, err
	}
	reapOrphans(ctx)
	dir, err := newDir()
	if err != nil {
		return nil, err
	}
	srv, err := pgserver.Init(ctx, pgserver.Options{Dir: dir, Conf: conf, NoSync: true})
	if err == nil {
		err = srv.Start(ctx)
	}
	if err != nil {
		if srv != nil {
			srv.Stop(context.WithoutCancel(ctx))
		}
		os.RemoveAll(dir)
		return nil, err
	}
	return srv, nil
}

// newDir makes a directory for a server under the temporary directory,
// marked as this process's, so that reapOrphans can clean up after it should
// this process be killed.
func newDir() (string, error) {
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return "", fmt.Errorf("pgtest: %w", err)
	}
	owner, err := processID(os.Getpid())
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(owner), 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("pgtest: %w", err)
	}
	return dir, nil
}

// Dir returns a new, empty directory for a server that tb makes itself (a
// replica, say: srv.NewReplica(ctx, "r1", pgserver.Options{Dir: pgtest.Dir(t)})).
// It is removed when tb ends, so stop the server in a t.Cleanup registered
// after calling Dir. Should the test binary be killed, a later one stops the
// server and removes the directory.
func Dir(tb testing.TB) string {
	tb.Helper()
	dir, err := newDir()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// stop stops srv and removes its directory.
func stop(srv *pgserver.Server) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := srv.Stop(ctx); err != nil {
		return err // keep the directory: the server may still run in it
	}
	return os.RemoveAll(srv.Dir())
}

// New starts a server for tb alone and stops it (and removes its directory)
// when tb ends, whether it failed or not. A failing test gets the end of the
// server log in its output.
func New(tb testing.TB) *pgserver.Server {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := start(ctx)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("pgtest: end of %s:\n%s", srv.LogFile(), srv.LogTail(4096))
		}
		if err := stop(srv); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return srv
}

// NewDatabase creates a fresh database on srv, named after tb, drops it when
// tb ends, and returns its URL.
func NewDatabase(tb testing.TB, srv *pgserver.Server) string {
	tb.Helper()
	return newDatabase(tb, srv, "t"+strings.ToLower(rand.Text()[:6]))
}

// Shared is one server for a whole test binary, started on first use and
// stopped by Main. The zero value is ready to use; declare one per package
// and call Main from TestMain. Its methods are safe for concurrent use.
type Shared struct {
	once   sync.Once
	srv    *pgserver.Server
	err    error
	inMain atomic.Bool
	n      atomic.Int64
}

// Main runs the tests and then stops the server if a test started it; its
// result is the exit code: func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }.
func (s *Shared) Main(m *testing.M) int {
	s.inMain.Store(true)
	code := m.Run()
	s.inMain.Store(false)
	s.once.Do(func() { s.err = fmt.Errorf("pgtest: tests finished") }) // no start after this
	if s.srv != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "pgtest: end of %s:\n%s\n", s.srv.LogFile(), s.srv.LogTail(4096))
		}
		if err := stop(s.srv); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Server returns the shared server, starting it on first use.
func (s *Shared) Server(tb testing.TB) *pgserver.Server {
	tb.Helper()
	if !s.inMain.Load() {
		tb.Fatal("pgtest: Shared needs TestMain to stop its server: func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }")
	}
	s.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		s.srv, s.err = start(ctx)
	})
	if s.err != nil {
		tb.Fatalf("pgtest: %v", s.err)
	}
	return s.srv
}

// Database creates a fresh database on the shared server, named after tb,
// drops it when tb ends, and returns its URL.
func (s *Shared) Database(tb testing.TB) string {
	tb.Helper()
	srv := s.Server(tb)
	return newDatabase(tb, srv, "t"+strconv.FormatInt(s.n.Add(1), 10))
}

var nonIdent = regexp.MustCompile(`[^a-z0-9_]+`)

func newDatabase(tb testing.TB, srv *pgserver.Server, prefix string) string {
	tb.Helper()
	name := prefix + "_" + nonIdent.ReplaceAllString(strings.ToLower(tb.Name()), "_")
	if len(name) > 63 {
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.CreateDatabase(ctx, name); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.DropDatabase(ctx, name); err != nil {
			tb.Logf("pgtest: %v", err)
		}
	})
	return srv.URL(name)
}

// processID returns "PID STARTTIME" for a running process, which names it
// uniquely even when PIDs are reused.
func processID(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	// After "pid (comm) " come state (field 3) ... starttime (field 22).
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return fmt.Sprintf("%d %s", pid, f[19]), nil
}

// reapOrphans stops and removes test servers whose owning test process is
// gone (a test binary killed by a timeout or a signal runs no cleanup).
func reapOrphans(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			// Being set up right now, or not ours: leave young ones alone.
			if fi, err := os.Stat(dir); err != nil || time.Since(fi.ModTime()) < time.Hour {
				continue
			}
		} else {
			pidText, _, _ := strings.Cut(string(b), " ")
			pid, _ := strconv.Atoi(pidText)
			if id, err := processID(pid); err == nil && id == string(b) {
				continue // its owner still runs
			}
		}
		if srv, err := pgserver.Open(pgserver.Options{Dir: dir}); err == nil {
			if err := srv.Stop(ctx); err != nil {
				continue
			}
		}
		os.RemoveAll(dir)
	}
}
