// Package topotest gives tests real infrastructure from the topology
// runner: a standalone Redis, a Redis Cluster, or a whole phase, started in
// a temporary directory and stopped when the test (or, for Shared, the test
// binary) ends, failed or not.
//
// Nothing is skipped: when a program is missing the test fails with a
// message naming the Debian package and `make deps` (make test runs deps
// first), as package pgtest does for Postgres.
//
// A test binary that is killed (go test -timeout) cannot clean up; the next
// one that starts a topology here stops what such dead binaries left
// behind, by the PIDs in their topology.json.
package topotest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"scalelab/topologies"
)

const (
	// startTimeout bounds every bring-up a helper does.
	startTimeout = 2 * time.Minute
	// dirPrefix names the temporary directories, so orphans can be found.
	dirPrefix = "scalelab-topotest-"
	// ownerFile holds "PID STARTTICKS" of the test process that owns a directory.
	ownerFile = "owner"
	// keptFile marks a directory kept after a failed test, for its logs.
	keptFile = "kept"
)

// Redis starts a standalone Redis server on a free port and stops it when
// the test ends. Use r.Addr() as the server address.
func Redis(tb testing.TB) *topologies.Redis {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	r, err := topologies.StartRedis(ctx, tb.TempDir(), topologies.RedisOptions{Logger: Logger(), DieWithParent: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stop(tb, r.Stop) })
	return r
}

// RedisCluster starts a Redis Cluster of three masters with one replica
// each and stops it when the test ends. Use c.Addrs() as the seeds.
func RedisCluster(tb testing.TB) *topologies.RedisCluster {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c, err := topologies.StartRedisCluster(ctx, tb.TempDir(), topologies.RedisClusterOptions{Logger: Logger(), DieWithParent: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stop(tb, c.Stop) })
	return c
}

// Up brings phase n up for this test alone (with the scalelab binary from
// Binary) and takes it down when the test ends. flags are the flag sets
// of `scalelab server` and `scalelab worker` (app.FlagSet("server"),
// jobs.WorkerFlagSet("worker")) that the phase file is checked against;
// this package cannot import the server (server tests import it). Postgres runs without fsync. The run's folder is kept when
// the test failed, for its logs.
func Up(tb testing.TB, phase int, flags topologies.Flags) *topologies.Topology {
	tb.Helper()
	top, cleanup, err := up(phase, flags)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := cleanup(tb.Failed()); err != nil {
			tb.Error(err)
		}
	})
	return top
}

// Shared brings one phase up at most once per test binary, for tests that
// can share it (they must leave it as they found it). Use it from TestMain:
//
//	var phase4 = topotest.Shared{Phase: 4, Flags: commandFlags()}
//
//	func TestMain(m *testing.M) { os.Exit(phase4.Main(m)) }
//
//	func TestX(t *testing.T) { top := phase4.Topology(t); … }
type Shared struct {
	Phase int
	// Flags are the flag sets the phase file is checked against, as for
	// Up.
	Flags topologies.Flags

	once    sync.Once
	top     *topologies.Topology
	err     error
	cleanup func(keep bool) error
	mu      sync.Mutex
	failed  bool
	main    bool
}

// Main runs the tests and then takes the topology down if a test brought
// it up. Its result is the exit code.
func (s *Shared) Main(m *testing.M) int {
	s.mu.Lock()
	s.main = true
	s.mu.Unlock()
	code := m.Run()
	if s.cleanup != nil {
		s.mu.Lock()
		keep := s.failed || code != 0
		s.mu.Unlock()
		if err := s.cleanup(keep); err != nil {
			fmt.Fprintln(os.Stderr, "topotest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Topology returns the shared topology, bringing it up on first use.
func (s *Shared) Topology(tb testing.TB) *topologies.Topology {
	tb.Helper()
	s.mu.Lock()
	main := s.main
	s.mu.Unlock()
	if !main {
		tb.Fatal("topotest: Shared needs TestMain to take it down: func TestMain(m *testing.M) { os.Exit(s.Main(m)) }")
	}
	s.once.Do(func() { s.top, s.cleanup, s.err = up(s.Phase, s.Flags) })
	if s.err != nil {
		tb.Fatal(s.err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			s.mu.Lock()
			s.failed = true
			s.mu.Unlock()
		}
	})
	return s.top
}

// Logger is what the helpers log to: warnings on stderr, or everything
// with SCALELAB_TOPO_LOG=debug.
func Logger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("SCALELAB_TOPO_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// up brings phase n up in a fresh directory under the system's temporary
// directory (whose parents the postgres user can search, unlike
// t.TempDir()'s). cleanup takes it down and removes the directory unless
// keep is set.
func up(phase int, flags topologies.Flags) (*topologies.Topology, func(keep bool) error, error) {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	reapOrphans(ctx)
	def, err := topologies.Phase(phase, flags)
	if err != nil {
		return nil, nil, err
	}
	bin, err := Binary()
	if err != nil {
		return nil, nil, err
	}
	dir, err := ownedDir()
	if err != nil {
		return nil, nil, err
	}
	top, err := topologies.Up(ctx, def, topologies.Options{
		Binary: bin, Dir: dir, RunID: fmt.Sprintf("phase-%d", phase), Logger: Logger(), FastPostgres: true, DieWithParent: true,
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	cleanup := func(keep bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := top.Down(ctx); err != nil {
			return fmt.Errorf("topotest: phase %d down: %w (folder kept: %s)", phase, err, top.Dir)
		}
		if keep {
			fmt.Fprintf(os.Stderr, "topotest: phase %d folder kept for inspection: %s\n", phase, top.Dir)
			return os.WriteFile(filepath.Join(dir, keptFile), nil, 0o644)
		}
		return os.RemoveAll(dir)
	}
	return top, cleanup, nil
}

// ownedDir makes a directory that other users can search and records this
// process as its owner.
func ownedDir() (string, error) {
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return "", fmt.Errorf("topotest: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("topotest: %w", err)
	}
	id, err := processID(os.Getpid())
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, ownerFile), []byte(id), 0o644)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("topotest: %w", err)
	}
	return dir, nil
}

// processID is "PID STARTTICKS", which a reused PID does not match.
func processID(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("short /proc/%d/stat", pid)
	}
	return fmt.Sprintf("%d %s", pid, f[19]), nil
}

// reapOrphans stops and removes the topologies of test processes that died
// without cleaning up. Folders kept after a failed test stay.
func reapOrphans(ctx context.Context) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, keptFile)); err == nil {
			continue
		}
		owner, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		var pid int
		fmt.Sscan(string(owner), &pid)
		if id, err := processID(pid); err == nil && id == string(owner) {
			continue // its test process still runs
		}
		runs, _ := topologies.ListRuns(dir)
		ok := true
		for _, run := range runs {
			top, err := topologies.Open(run, Logger())
			if err == nil {
				err = top.Down(ctx)
			}
			if err != nil {
				ok = false
				fmt.Fprintf(os.Stderr, "topotest: reap orphan %s: %v\n", run, err)
			}
		}
		if ok {
			os.RemoveAll(dir)
		}
	}
}

// binary caches the scalelab build for the life of the test process:
// building takes a while, and every test wants the same one.
var binary = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("SCALELAB_BIN"); p != "" {
		return p, nil
	}
	// One folder for every test process of a checkout, so builds do not
	// pile up, and another for each checkout, so that two work trees tested
	// at once never run each other's binary; each process builds to its own
	// name and renames, so a running binary is never overwritten in place.
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("topotest: go env GOMOD: %w", err)
	}
	sum := sha256.Sum256(bytes.TrimSpace(gomod))
	dir := filepath.Join(os.TempDir(), "scalelab-topotest-bin-"+hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("topotest: %w", err)
	}
	tmp := filepath.Join(dir, fmt.Sprintf("scalelab.%d", os.Getpid()))
	out, err := exec.Command("go", "build", "-o", tmp, "scalelab/cmd/scalelab").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("topotest: go build scalelab/cmd/scalelab: %w\n%s", err, out)
	}
	path := filepath.Join(dir, "scalelab")
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("topotest: %w", err)
	}
	return path, nil
})

// Binary returns the scalelab binary the app instances run: $SCALELAB_BIN,
// or a build of scalelab/cmd/scalelab made once per test process.
func Binary() (string, error) { return binary() }

func stop(tb testing.TB, fn func(context.Context) error) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fn(ctx); err != nil {
		tb.Errorf("stop: %v", err)
	}
}
