// Package pgserver starts and stops real, throwaway PostgreSQL 15 servers as
// local processes: a primary made with initdb, and streaming replicas made
// with pg_basebackup -R. Tests use it through package pgtest; the topology
// runner uses it for the phases' primaries and replicas.
//
// Everything a server owns lives under its Dir:
//
//	Dir/data/            PGDATA (data/scalelab.conf holds the settings this package writes)
//	Dir/run/             the Unix socket directory
//	Dir/postgres.log     the server log
//
// Servers listen on 127.0.0.1 only and trust every local connection, so a
// lab server must never hold data that matters. PostgreSQL refuses to run as
// root: when this process is root, every PostgreSQL program runs as the
// "postgres" user (runuser -u postgres --) and Dir is chowned to that user,
// so Dir's parents must be searchable by it (a directory made directly
// under /tmp is; one under t.TempDir() is not).
//
// Processes are only ever stopped with pg_ctl on their own data directory,
// never by name.
package pgserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// BinDir is where Debian's postgresql-15 package installs the server programs.
const BinDir = "/usr/lib/postgresql/15/bin"

// ReplicationUser is the role replicas connect as. Init's server creates it on
// its first Start.
const ReplicationUser = "replicator"

// confFile is the file in the data directory that holds this package's
// settings; postgresql.conf includes it. Rewriting it (a new port, say) never
// touches the rest of the configuration, and pg_basebackup copies it along.
const confFile = "scalelab.conf"

// extraMarker precedes Options.Conf in confFile, so Open can read them back.
const extraMarker = "# Options.Conf:"

// Options configures a server.
type Options struct {
	// Dir holds everything the server owns (see the package doc). It is
	// created when missing. Required.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one (and picks again
	// if another process takes it before the server binds it).
	Port int
	// Conf holds extra postgresql.conf lines, e.g. "shared_buffers = 256MB".
	// They come after this package's settings, so they win.
	Conf []string
	// NoSync turns fsync, synchronous_commit and full_page_writes off (and
	// runs initdb --no-sync). Much faster for tests and throwaway lab runs;
	// a crash of the machine loses data. Never for measurements of durable
	// writes.
	NoSync bool
	// Logger receives what the server does; nil discards it.
	Logger *slog.Logger
}

// Server is one PostgreSQL server (data directory and, while running, its
// postmaster process). Its methods are safe for concurrent use.
type Server struct {
	dir     string
	port    atomic.Int64 // changes only in Start, when the port was taken
	conf    []string
	noSync  bool
	log     *slog.Logger
	runAs   *osUser // non-nil when PostgreSQL programs run as another user
	repick  bool    // the port was picked here; Start may pick another
	mu      sync.Mutex
	newRole bool // create the replication role on the next Start
}

type osUser struct {
	name     string
	uid, gid int
}

func newServer(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("pgserver: Options.Dir is required")
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{dir: dir, conf: opts.Conf, noSync: opts.NoSync, log: log}
	s.port.Store(int64(opts.Port))
	if os.Geteuid() == 0 {
		u, err := lookupUser("postgres")
		if err != nil {
			return nil, err
		}
		s.runAs = u
	}
	return s, nil
}

// pickPort picks a free port when opts.Port was 0.
func (s *Server) pickPort() error {
	if s.port.Load() != 0 {
		return nil
	}
	p, err := freePort()
	if err != nil {
		return err
	}
	s.port.Store(int64(p))
	s.repick = true
	return nil
}

// Init creates a new primary in opts.Dir with initdb and writes its
// configuration: the port, listen_addresses = '127.0.0.1', the socket
// directory, and what streaming replicas need (wal_level = replica,
// max_wal_senders, hot_standby, hot_standby_feedback, wal_keep_size). The
// server is not started; its first Start also creates the role
// ReplicationUser. Init fails if opts.Dir already holds a data directory.
func Init(ctx context.Context, opts Options) (*Server, error) {
	if err := CheckBinaries(); err != nil {
		return nil, err
	}
	s, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	if err := s.pickPort(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.DataDir()); err == nil {
		return nil, fmt.Errorf("pgserver: %s already exists; use Open to reuse it", s.DataDir())
	}
	start := time.Now()
	if err := s.makeDirs(ctx); err != nil {
		return nil, err
	}
	args := []string{"-D", s.DataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"}
	if s.noSync {
		args = append(args, "--no-sync")
	}
	if _, err := s.run(ctx, "initdb", args...); err != nil {
		return nil, fmt.Errorf("pgserver: initdb in %s: %w", s.DataDir(), err)
	}
	if err := s.writeConf(); err != nil {
		return nil, err
	}
	// initdb --auth=trust already trusts 127.0.0.1 for all databases and for
	// replication; say it again so the rule does not depend on the sample.
	hba := "\n# scalelab: loopback only, no passwords (a lab server)\n" +
		"host all         all 127.0.0.1/32 trust\n" +
		"host replication all 127.0.0.1/32 trust\n"
	if err := appendFile(filepath.Join(s.DataDir(), "pg_hba.conf"), hba); err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s.newRole = true
	s.log.Info("postgres initialized", "dir", s.dir, "port", s.Port(), "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// Open returns the Server whose data directory Init or NewReplica made
// earlier in opts.Dir, running or not, for example so that another process
// can stop it. The port, Conf and NoSync are read back from the directory's
// configuration; only opts.Dir and opts.Logger are used.
func Open(opts Options) (*Server, error) {
	s, err := newServer(Options{Dir: opts.Dir, Logger: opts.Logger})
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(s.DataDir(), confFile))
	if err != nil {
		return nil, fmt.Errorf("pgserver: open %s: %w", s.dir, err)
	}
	conf, extra, _ := strings.Cut(string(b), extraMarker+"\n")
	for _, line := range strings.Split(strings.TrimSpace(extra), "\n") {
		if line != "" {
			s.conf = append(s.conf, line)
		}
	}
	for _, line := range strings.Split(conf, "\n") {
		if strings.TrimSpace(line) == "fsync = off" {
			s.noSync = true
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && strings.TrimSpace(k) == "port" {
			if p, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
				s.port.Store(int64(p))
			}
		}
	}
	if s.port.Load() <= 0 {
		return nil, fmt.Errorf("pgserver: open %s: no port in %s", s.dir, confFile)
	}
	return s, nil
}

// Dir returns the directory the server owns.
func (s *Server) Dir() string { return s.dir }

// DataDir returns the server's PGDATA.
func (s *Server) DataDir() string { return filepath.Join(s.dir, "data") }

// LogFile returns the path of the server log.
func (s *Server) LogFile() string { return filepath.Join(s.dir, "postgres.log") }

// Port returns the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return int(s.port.Load()) }

// URL returns a connection URL for database dbname as the superuser
// "postgres", e.g. postgres://postgres@127.0.0.1:5432/app?sslmode=disable.
func (s *Server) URL(dbname string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port(), url.PathEscape(dbname))
}

// PID returns the postmaster's process id from postmaster.pid while that
// process runs, and 0 otherwise (never started, stopped, or crashed and left
// a stale file behind).
func (s *Server) PID() int {
	b, err := os.ReadFile(filepath.Join(s.DataDir(), "postmaster.pid"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 || !alive(pid) {
		return 0
	}
	return pid
}

// Start starts the server with pg_ctl -w and returns once it accepts
// connections (a replica: once it is a hot standby). It is an error to start
// a running server. A Start that fails, its context cancelled included,
// leaves no server running.
func (s *Server) Start(ctx context.Context) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pid := s.PID(); pid != 0 {
		return fmt.Errorf("pgserver: start %s: already running (pid %d)", s.dir, pid)
	}
	defer func() {
		if err == nil {
			return
		}
		if serr := s.stopFailedStart(); serr != nil {
			err = errors.Join(err, serr)
		}
	}()
	start := time.Now()
	for attempt := 1; ; attempt++ {
		from := fileSize(s.LogFile())
		_, err := s.run(ctx, "pg_ctl", "-D", s.DataDir(), "-l", s.LogFile(), "-w", "-t", "60", "-s", "start")
		if err == nil {
			break
		}
		logTail := tail(s.LogFile(), from, 2048)
		if s.repick && attempt < 4 && strings.Contains(logTail, "Address already in use") {
			// Another process took the port between freePort and the bind.
			old := s.Port()
			p, err := freePort()
			if err != nil {
				return err
			}
			s.port.Store(int64(p))
			if err := s.writeConf(); err != nil {
				return err
			}
			s.log.Warn("postgres port taken, picking another", "dir", s.dir, "old", old, "new", p)
			continue
		}
		return fmt.Errorf("pgserver: start %s on port %d: %w\n--- %s:\n%s", s.dir, s.Port(), err, s.LogFile(), logTail)
	}
	if s.newRole {
		if err := s.createReplicationRole(ctx); err != nil {
			return err
		}
		s.newRole = false
	}
	s.log.Info("postgres started", "dir", s.dir, "port", s.Port(), "pid", s.PID(), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Stop stops the server with pg_ctl -m fast (and -m immediate if that
// fails) and waits until it is gone. Stopping a server that does not run is
// a no-op, so Stop may be called twice or on a server that never started.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pid := s.PID()
	if pid == 0 {
		return nil
	}
	start := time.Now()
	_, err := s.run(ctx, "pg_ctl", "-D", s.DataDir(), "-m", "fast", "-w", "-t", "60", "-s", "stop")
	if err != nil && s.PID() != 0 {
		s.log.Warn("postgres fast stop failed, stopping immediately", "dir", s.dir, "pid", pid, "err", err)
		if _, err2 := s.run(ctx, "pg_ctl", "-D", s.DataDir(), "-m", "immediate", "-w", "-t", "30", "-s", "stop"); err2 != nil && s.PID() != 0 {
			return fmt.Errorf("pgserver: stop %s (pid %d): %w", s.dir, pid, errors.Join(err, err2))
		}
	}
	s.log.Info("postgres stopped", "dir", s.dir, "pid", pid, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// stopFailedStart makes a failed Start leave nothing running. pg_ctl
// launches the postmaster in a session of its own, so ending pg_ctl (its
// context was cancelled, or its -t ran out) does not end the postmaster;
// and a postmaster launched a moment before writes postmaster.pid a moment
// after, when a Stop that read no PID would already have returned. So
// while a process of this data directory is still launching, wait for its
// PID, then stop it with pg_ctl -m immediate.
func (s *Server) stopFailedStart() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		if pid := s.PID(); pid != 0 {
			s.log.Warn("postgres ran on after a failed start; stopping it", "dir", s.dir, "pid", pid)
			if _, err := s.run(ctx, "pg_ctl", "-D", s.DataDir(), "-m", "immediate", "-w", "-t", "20", "-s", "stop"); err != nil && s.PID() != 0 {
				return fmt.Errorf("pgserver: stop %s (pid %d) after a failed start: %w", s.dir, pid, err)
			}
			return nil
		}
		if !launching(s.DataDir()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: %s: a postmaster launched by a failed start wrote no postmaster.pid in 30s", s.dir)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// launching reports whether a live process was started on dataDir: the
// shell pg_ctl runs the postmaster through, or the postmaster before it
// renames itself (its command line is "postgres -D dataDir").
func launching(dataDir string) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	want := []byte(dataDir)
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, want) && alive(pid) {
			return true
		}
	}
	return false
}

// Connect opens one connection to database dbname as the superuser.
func (s *Server) Connect(ctx context.Context, dbname string) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, s.URL(dbname))
	if err != nil {
		return nil, fmt.Errorf("pgserver: connect to %s: %w", s.URL(dbname), err)
	}
	return conn, nil
}

// CreateDatabase creates database name (a copy of template1).
func (s *Server) CreateDatabase(ctx context.Context, name string) error {
	return s.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// DropDatabase drops database name, disconnecting its sessions; a missing
// database is not an error.
func (s *Server) DropDatabase(ctx context.Context, name string) error {
	return s.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return fmt.Errorf("pgserver: %s: %w", sql, err)
	}
	return nil
}

func (s *Server) createReplicationRole(ctx context.Context) error {
	conn, err := s.Connect(ctx, "postgres")
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", ReplicationUser).Scan(&exists); err != nil {
		return fmt.Errorf("pgserver: look up role %s: %w", ReplicationUser, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE ROLE "+ReplicationUser+" WITH REPLICATION LOGIN"); err != nil {
		return fmt.Errorf("pgserver: create role %s: %w", ReplicationUser, err)
	}
	return nil
}

// makeDirs creates Dir and the socket directory and hands them to the user
// PostgreSQL runs as.
func (s *Server) makeDirs(ctx context.Context) error {
	for _, d := range []string{s.dir, s.sockDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
		if err := s.chown(d); err != nil {
			return err
		}
	}
	if s.runAs != nil {
		// Fail here with a clear message rather than deep inside initdb.
		if _, err := s.runCmd(ctx, "test", "-w", s.dir, "-a", "-x", s.dir); err != nil {
			return fmt.Errorf("pgserver: %s is not usable by user %s: its parent directories must be searchable by it (make Dir directly under /tmp, not under t.TempDir())", s.dir, s.runAs.name)
		}
	}
	return nil
}

func (s *Server) sockDir() string { return filepath.Join(s.dir, "run") }

// writeConf (re)writes this package's settings file and makes sure
// postgresql.conf includes it.
func (s *Server) writeConf() error {
	var b strings.Builder
	fmt.Fprintf(&b, "# written by scalelab's pgserver; rewritten on every port change\n")
	fmt.Fprintf(&b, "port = %d\n", s.Port())
	fmt.Fprintf(&b, "listen_addresses = '127.0.0.1'\n")
	fmt.Fprintf(&b, "unix_socket_directories = '%s'\n", strings.ReplaceAll(s.sockDir(), "'", "''"))
	b.WriteString("wal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\n")
	b.WriteString("hot_standby = on\nhot_standby_feedback = on\nwal_keep_size = 256MB\n")
	if s.noSync {
		b.WriteString("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
	}
	b.WriteString(extraMarker + "\n")
	for _, line := range s.conf {
		b.WriteString(line + "\n")
	}
	path := filepath.Join(s.DataDir(), confFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if err := s.chown(path); err != nil {
		return err
	}
	main := filepath.Join(s.DataDir(), "postgresql.conf")
	cur, err := os.ReadFile(main)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	include := "include '" + confFile + "'"
	if !bytes.Contains(cur, []byte(include)) {
		if err := appendFile(main, "\n"+include+"\n"); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	return nil
}

func (s *Server) chown(path string) error {
	if s.runAs == nil {
		return nil
	}
	if err := os.Chown(path, s.runAs.uid, s.runAs.gid); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	return nil
}

// run runs one PostgreSQL program from BinDir and returns its output.
func (s *Server) run(ctx context.Context, prog string, args ...string) ([]byte, error) {
	return s.runCmd(ctx, filepath.Join(BinDir, prog), args...)
}

// runCmd runs a program as the PostgreSQL user, in its own process group,
// with Dir as the working directory and no PG* variables in its environment
// (so nothing steers it to another server). Daemons it starts (pg_ctl puts
// the postmaster in a session of its own) outlive it; ctx only ends the
// program itself.
func (s *Server) runCmd(ctx context.Context, prog string, args ...string) ([]byte, error) {
	name, argv := prog, args
	if s.runAs != nil {
		name, argv = "runuser", append([]string{"-u", s.runAs.name, "--", prog}, args...)
	}
	cmd := exec.CommandContext(ctx, name, argv...)
	cmd.Dir = s.dir
	cmd.Env = cleanEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	s.log.Debug("ran", "cmd", filepath.Base(prog), "args", args, "took", time.Since(start).Round(time.Millisecond), "err", err)
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s: %w: %s", filepath.Base(prog), err, strings.TrimSpace(out.String()))
	}
	return out.Bytes(), nil
}

// CheckBinaries reports, in one message, which PostgreSQL 15 programs (and,
// as root, what running them as the postgres user needs) are missing.
func CheckBinaries() error {
	var missing []string
	for _, prog := range []string{"initdb", "pg_ctl", "postgres", "pg_basebackup"} {
		fi, err := os.Stat(filepath.Join(BinDir, prog))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			missing = append(missing, prog)
		}
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("runuser"); err != nil {
			missing = append(missing, "runuser (util-linux)")
		}
		if _, err := user.Lookup("postgres"); err != nil {
			missing = append(missing, `the "postgres" user`)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("PostgreSQL 15 is not installed: missing %s in %s; install the Debian package postgresql-15 (`make deps` does: apt-get install -y postgresql-15)",
			strings.Join(missing, ", "), BinDir)
	}
	return nil
}

func lookupUser(name string) (*osUser, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("pgserver: running as root needs the %q user (the postgresql-15 package creates it): %w", name, err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgserver: user %s has non-numeric ids %s:%s", name, u.Uid, u.Gid)
	}
	return &osUser{name: name, uid: uid, gid: gid}, nil
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// may take it before PostgreSQL binds it; Start handles that.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// alive reports whether pid runs and is not a zombie (a daemon reparented to
// PID 1 may stay a zombie for a moment after it exits).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	state := b[i+2]
	return state != 'Z' && state != 'X'
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// tail returns at most max bytes from the end of path, reading from offset from.
func tail(path string, from int64, max int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if size := fileSize(path); size-from > max {
		from = size - max
	}
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// LogTail returns up to the last n bytes of the server log, for failure
// messages.
func (s *Server) LogTail(n int64) string { return tail(s.LogFile(), 0, n) }
