// Package redisserver starts and stops real redis-server processes on
// 127.0.0.1: a standalone server, or a small Redis Cluster. Tests use it
// through package redistest; the topology runner shares its redis.conf and
// its cluster join (Conf, Join).
//
// A Server is a child of this process, started in its own process group,
// and is only ever signalled by its own PID (its group's ID), never by
// name. Everything it owns lives in its Dir:
//
//	Dir/redis.conf   the configuration Conf wrote
//	Dir/redis.log    the server's output
//	Dir/nodes.conf   a cluster node's identity (kept across Restart)
//
// Servers keep no data on disk (no RDB, no AOF): they are caches.
package redisserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Ports are picked at random below the kernel's ephemeral range (32768 and
// up by default), so outgoing connections never hold a port a server is
// about to bind; the topology runner picks from the same range.
const (
	portLow  = 15000
	portHigh = 32000
)

// startTimeout bounds a start whose context has no deadline.
const startTimeout = 30 * time.Second

// Options configures one server. Only Dir is required.
type Options struct {
	// Dir holds the server's files; it is created when missing.
	Dir string
	// Name names the server in logs and errors; default "redis".
	Name string
	// Port is the client port; 0 picks a free one (and picks again if
	// another process takes it before the server binds it).
	Port int
	// Cluster enables cluster mode; the server then waits to be joined
	// (StartCluster does that). Its cluster bus gets a free port.
	Cluster bool
	// NodeTimeout is cluster-node-timeout: how long a cluster node may be
	// unreachable before it is failed over; default 2s, so fault tests end
	// quickly.
	NodeTimeout time.Duration
	// Settings are extra redis.conf directives ("maxmemory": "64mb").
	Settings map[string]string
	// Logger receives start and stop events; nil discards them.
	Logger *slog.Logger
	// DieWithParent has the kernel kill the server when this process dies,
	// so that a test binary killed by go test -timeout leaves nothing
	// running.
	DieWithParent bool
}

// Config is what Conf writes into redis.conf.
type Config struct {
	Dir         string // the working directory: nodes.conf goes here
	Port        int
	ClusterPort int           // 0 for a standalone server
	NodeTimeout time.Duration // cluster-node-timeout; 0 means 2s
	Settings    map[string]string
}

// Conf returns the text of a redis.conf for c: loopback only, in the
// foreground, output on stdout, no persistence, replicas that sync at once.
func Conf(c Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n", c.Port)
	fmt.Fprintf(&b, "dir %s\nlogfile \"\"\nsave \"\"\nappendonly no\n", c.Dir)
	// Replicas sync at once instead of 5 s later (the default waits for
	// more replicas to share one diskless transfer).
	fmt.Fprintf(&b, "repl-diskless-sync-delay 0\nshutdown-timeout 1\n")
	if c.ClusterPort != 0 {
		timeout := c.NodeTimeout
		if timeout == 0 {
			timeout = 2 * time.Second
		}
		fmt.Fprintf(&b, "cluster-enabled yes\ncluster-config-file %s\ncluster-port %d\ncluster-node-timeout %d\n",
			filepath.Join(c.Dir, "nodes.conf"), c.ClusterPort, timeout.Milliseconds())
	}
	for _, k := range slices.Sorted(maps.Keys(c.Settings)) {
		fmt.Fprintf(&b, "%s %s\n", k, c.Settings[k])
	}
	return b.String()
}

// Server is one redis-server process. Its methods are safe for concurrent
// use.
type Server struct {
	name string
	dir  string
	conf Config
	bin  string
	log  *slog.Logger
	die  bool

	mu   sync.Mutex
	proc *child // nil before the first start
}

// child is one run of the program: a process this package started and
// whose exit its own goroutine waits for, so its PID cannot be reused by
// another program while done is open.
type child struct {
	pid  int
	done chan struct{}
}

func (c *child) running() bool {
	if c == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Start starts a server and returns once it answers PING. The caller stops
// it with Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("redisserver: Options.Dir is required")
	}
	if opts.Name == "" {
		opts.Name = "redis"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("redisserver %s: %w", opts.Name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("redisserver %s: %w", opts.Name, err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redisserver: redis-server not found (install the redis-server package, or run `make deps`): %w", err)
	}
	s := &Server{
		name: opts.Name, dir: dir, bin: bin, log: opts.Logger, die: opts.DieWithParent,
		conf: Config{Dir: dir, Port: opts.Port, NodeTimeout: opts.NodeTimeout, Settings: opts.Settings},
	}
	// A port picked free may be taken by someone else before the server
	// binds it; with picked ports, try again on fresh ones.
	for attempt := 1; ; attempt++ {
		if opts.Port == 0 {
			if s.conf.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if opts.Cluster {
			if s.conf.ClusterPort, err = freePort(); err != nil {
				return nil, err
			}
		}
		err = s.start(ctx)
		if err == nil || opts.Port != 0 || attempt == 3 || !strings.Contains(err.Error(), "in use") {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// start writes redis.conf, starts the program and waits for PONG.
func (s *Server) start(ctx context.Context) error {
	c, err := s.spawn()
	if err != nil {
		return err
	}
	s.log.Debug("redis started", "name", s.name, "pid", c.pid, "addr", s.Addr())
	if err := s.waitReady(ctx, c); err != nil {
		_ = c.signal(syscall.SIGKILL)
		<-c.done
		return err
	}
	return nil
}

// spawn starts the program unless it runs already.
func (s *Server) spawn() (*child, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc.running() {
		return nil, fmt.Errorf("redisserver %s: already running as pid %d", s.name, s.proc.pid)
	}
	conf := filepath.Join(s.dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(Conf(s.conf)), 0o644); err != nil {
		return nil, fmt.Errorf("redisserver %s: write redis.conf: %w", s.name, err)
	}
	logf, err := os.OpenFile(s.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("redisserver %s: %w", s.name, err)
	}
	defer logf.Close() // the child holds its own copy
	cmd := exec.Command(s.bin, conf)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a fork for a replica's sync is
	// signalled with it; the group's ID is the server's PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if s.die {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("redisserver %s: start %s: %w", s.name, s.bin, err)
	}
	c := &child{pid: cmd.Process.Pid, done: make(chan struct{})}
	// The owner of this goroutine is the child: it ends when the child
	// exits, which every stop path (and Pdeathsig) ensures.
	go func() {
		_ = cmd.Wait() // the exit status is in the log; waitReady quotes it
		close(c.done)
	}()
	s.proc = c
	return c, nil
}

func (s *Server) waitReady(ctx context.Context, c *child) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if !c.running() {
			return fmt.Errorf("redisserver %s exited before it was ready (log %s):\n%s", s.name, s.LogFile(), tail(s.LogFile(), 10))
		}
		err := ping(ctx, s.Addr())
		if err == nil {
			return nil
		}
		select {
		case <-c.done:
			return fmt.Errorf("redisserver %s exited before it was ready (log %s):\n%s", s.name, s.LogFile(), tail(s.LogFile(), 10))
		case <-ctx.Done():
			return fmt.Errorf("redisserver %s not ready (last PING: %v; log %s): %w", s.name, err, s.LogFile(), ctx.Err())
		case <-t.C:
		}
	}
}

// signal sends sig to the child's process group, whose ID is the child's
// PID, unless the child has exited (its PID may then belong to another).
func (c *child) signal(sig syscall.Signal) error {
	if !c.running() {
		return nil
	}
	if err := syscall.Kill(-c.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to pid %d: %w", sig, c.pid, err)
	}
	return nil
}

func (c *child) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pid %d still running: %w", c.pid, ctx.Err())
	}
}

func (s *Server) current() *child {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Name is the server's name from Options.
func (s *Server) Name() string { return s.name }

// Addr is the server's host:port on 127.0.0.1.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.conf.Port)) }

// Port is the client port.
func (s *Server) Port() int { return s.conf.Port }

// ClusterPort is the cluster bus port, 0 for a standalone server.
func (s *Server) ClusterPort() int { return s.conf.ClusterPort }

// Dir holds redis.conf, redis.log and, in a cluster, nodes.conf.
func (s *Server) Dir() string { return s.dir }

// LogFile is the server's output.
func (s *Server) LogFile() string { return filepath.Join(s.dir, "redis.log") }

// PID is the running server's process ID, 0 once it has exited.
func (s *Server) PID() int {
	c := s.current()
	if !c.running() {
		return 0
	}
	return c.pid
}

// Stop asks the server to shut down (SHUTDOWN NOSAVE NOW), signals it by
// its PID if that fails (SIGTERM, then SIGKILL after 5 s), and returns once
// the process has exited. Stopping a stopped server does nothing.
func (s *Server) Stop(ctx context.Context) error {
	c := s.current()
	if !c.running() {
		return nil
	}
	_ = c.signal(syscall.SIGCONT) // a paused server cannot act on SHUTDOWN
	sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err := shutdown(sctx, s.Addr())
	if err == nil {
		err = c.wait(sctx)
	}
	cancel()
	if err == nil {
		s.log.Debug("redis stopped", "name", s.name, "pid", c.pid)
		return nil
	}
	s.log.Debug("redis SHUTDOWN failed; signalling", "name", s.name, "pid", c.pid, "err", err)
	if err := c.signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stop redis %s: %w", s.name, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = c.wait(wctx)
	cancel()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stop redis %s: %w", s.name, err)
	}
	return s.Kill(ctx)
}

// Kill sends SIGKILL and returns once the process has exited, as a crash
// would leave it: clients see connections refused.
func (s *Server) Kill(ctx context.Context) error {
	c := s.current()
	if err := c.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill redis %s: %w", s.name, err)
	}
	if c == nil {
		return nil
	}
	if err := c.wait(ctx); err != nil {
		return fmt.Errorf("kill redis %s: %w", s.name, err)
	}
	return nil
}

// Pause freezes the server (SIGSTOP): it keeps its sockets open but
// answers nothing, like a machine that hangs.
func (s *Server) Pause() error {
	c := s.current()
	if !c.running() {
		return fmt.Errorf("pause redis %s: not running", s.name)
	}
	return c.signal(syscall.SIGSTOP)
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() error {
	c := s.current()
	if !c.running() {
		return fmt.Errorf("resume redis %s: not running", s.name)
	}
	return c.signal(syscall.SIGCONT)
}

// Restart stops the server if it runs and starts it again on the same
// ports; a cluster node keeps its identity (nodes.conf).
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	return s.start(ctx)
}

// do runs one command on a fresh connection to addr: a connection per
// command keeps a paused or dead server from wedging a shared client.
func do(ctx context.Context, addr string, args ...any) *redis.Cmd {
	c := redis.NewClient(&redis.Options{
		Addr: addr, Protocol: 2, MaxRetries: -1, DialerRetries: 1, PoolSize: 1, ContextTimeoutEnabled: true,
		DialTimeout: 2 * time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second,
		// No CLIENT SETINFO before the command: a round trip that admin
		// commands do not need.
		DisableIdentity: true,
	})
	defer c.Close()
	cmd := c.Do(ctx, args...)
	_ = cmd.Err()
	return cmd
}

// ping sends an inline PING on a plain connection: until the server
// listens, a refused dial is the expected answer, and go-redis would log
// each one.
func ping(ctx context.Context, addr string) error {
	pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(pctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := pctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line = strings.TrimRight(line, "\r\n"); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}

// shutdown sends SHUTDOWN NOSAVE NOW (do not wait for replicas: this is a
// cache). The server closes the connection instead of answering.
func shutdown(ctx context.Context, addr string) error {
	err := do(ctx, addr, "SHUTDOWN", "NOSAVE", "NOW").Err()
	if err == nil || isConnClosed(err) {
		return nil
	}
	return err
}

func isConnClosed(err error) bool {
	s := err.Error()
	return strings.Contains(s, "EOF") || strings.Contains(s, "connection reset")
}

// freePort returns a port on 127.0.0.1 that nothing listens on right now.
func freePort() (int, error) {
	for range 200 {
		port := portLow + rand.IntN(portHigh-portLow)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = l.Close()
		return port, nil
	}
	return 0, errors.New("redisserver: no free port on 127.0.0.1 after 200 tries")
}

// tail returns the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return "  " + strings.Join(lines[max(len(lines)-n, 0):], "\n  ")
}
