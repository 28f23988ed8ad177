// Package dockerd finds a Docker daemon to talk to, or starts one.
//
// Ensure tries DOCKER_HOST, the default socket and the lab's own socket in
// turn; when none answers and the process is root it starts dockerd as its
// child on the lab's own socket, data root and exec root (so it never
// touches a system daemon's state) and waits until it answers. Stop ends
// such a child by its PID; a daemon that was already running is left
// alone.
//
//	d, err := dockerd.Ensure(ctx, dockerd.Options{Logger: log})
//	if err != nil { … }
//	defer d.Stop(context.WithoutCancel(ctx))
//	pool, err := dockertest.NewPool(d.Host())
package dockerd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Defaults for a daemon this package starts.
const (
	DefaultSocket   = "/run/scalelab-docker.sock"
	DefaultDataRoot = "/var/lib/scalelab-docker"
	DefaultExecRoot = "/run/scalelab-docker"
	systemSocket    = "/var/run/docker.sock"
)

// ErrUnavailable means no daemon answers and none could be started (not
// root, or dockerd is not installed).
var ErrUnavailable = errors.New("no Docker daemon")

// Options configures Ensure.
type Options struct {
	// Getenv reads DOCKER_HOST; nil means os.Getenv.
	Getenv func(string) string
	// Socket, DataRoot and ExecRoot are where a started daemon lives;
	// defaults DefaultSocket, DefaultDataRoot, DefaultExecRoot.
	Socket, DataRoot, ExecRoot string
	// Logger receives what Ensure finds or starts; nil discards it.
	Logger *slog.Logger
	// Timeout bounds the wait for a started daemon; default 60s.
	Timeout time.Duration
}

// Daemon is a Docker daemon that answers.
type Daemon struct {
	host string
	log  *slog.Logger
	// cmd is the daemon this process started; nil for one found running.
	cmd  *exec.Cmd
	done chan struct{}
}

// Host is the daemon's endpoint, e.g. unix:///run/scalelab-docker.sock,
// for DOCKER_HOST and dockertest.NewPool.
func (d *Daemon) Host() string { return d.host }

// Started reports whether this process started the daemon.
func (d *Daemon) Started() bool { return d.cmd != nil }

// PID is the started daemon's process ID, 0 for one found running.
func (d *Daemon) PID() int {
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Find returns the first of DOCKER_HOST, the default socket and the lab's
// own socket (DefaultSocket) whose daemon answers, starting none.
func Find(ctx context.Context, getenv func(string) string) (string, error) {
	var tried []string
	for _, host := range []string{getenv("DOCKER_HOST"), "unix://" + systemSocket, "unix://" + DefaultSocket} {
		if host == "" {
			continue
		}
		tried = append(tried, host)
		if err := Ping(ctx, host); err == nil {
			return host, nil
		}
	}
	return "", fmt.Errorf("%w: none answers at %s", ErrUnavailable, strings.Join(tried, ", "))
}

// Ensure returns a daemon that answers /_ping: the first of DOCKER_HOST,
// the default socket and opts.Socket that does, or else one it starts.
func Ensure(ctx context.Context, opts Options) (*Daemon, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	opts.Socket = cmpOr(opts.Socket, DefaultSocket)
	opts.DataRoot = cmpOr(opts.DataRoot, DefaultDataRoot)
	opts.ExecRoot = cmpOr(opts.ExecRoot, DefaultExecRoot)
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var tried []string
	candidates := []string{opts.Getenv("DOCKER_HOST"), "unix://" + systemSocket, "unix://" + opts.Socket}
	for _, host := range candidates {
		if host == "" {
			continue
		}
		tried = append(tried, host)
		if err := Ping(ctx, host); err == nil {
			log.Info("docker daemon answers", "host", host)
			return &Daemon{host: host, log: log}, nil
		}
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: none answers at %s, and starting dockerd needs root (run as root, or start one and set DOCKER_HOST)",
			ErrUnavailable, strings.Join(tried, ", "))
	}
	bin, err := exec.LookPath("dockerd")
	if err != nil {
		return nil, fmt.Errorf("%w: none answers at %s and dockerd is not installed (run `make deps`)", ErrUnavailable, strings.Join(tried, ", "))
	}
	return start(ctx, bin, opts, log)
}

func start(ctx context.Context, bin string, opts Options, log *slog.Logger) (*Daemon, error) {
	for _, dir := range []string{opts.DataRoot, opts.ExecRoot} {
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, fmt.Errorf("start dockerd: %w", err)
		}
	}
	logPath := filepath.Join(opts.ExecRoot, "dockerd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	defer logf.Close()
	host := "unix://" + opts.Socket
	cmd := exec.Command(bin,
		"--host", host,
		"--data-root", opts.DataRoot,
		"--exec-root", opts.ExecRoot,
		"--pidfile", filepath.Join(opts.ExecRoot, "dockerd.pid"),
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C reaches this process, which stops the
	// daemon (and the containerd it runs) in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start dockerd: %w", err)
	}
	d := &Daemon{host: host, log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(d.done)
	}()
	log.Info("dockerd started", "pid", cmd.Process.Pid, "host", host, "log", logPath)
	wctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		err := Ping(wctx, host)
		if err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("dockerd exited before it answered (log %s)", logPath)
		case <-wctx.Done():
			_ = d.Stop(context.WithoutCancel(ctx))
			return nil, fmt.Errorf("dockerd did not answer at %s (last: %v; log %s): %w", host, err, logPath, wctx.Err())
		case <-t.C:
		}
	}
}

// Stop ends a daemon this process started: SIGTERM to its PID (dockerd
// stops its containers and its containerd), SIGKILL to its process group
// after 30 s. A daemon found running is left alone.
func (d *Daemon) Stop(ctx context.Context) error {
	if d == nil || d.cmd == nil {
		return nil
	}
	pid := d.cmd.Process.Pid
	select {
	case <-d.done:
		return nil
	default:
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop dockerd pid %d: %w", pid, err)
	}
	select {
	case <-d.done:
		d.log.Info("dockerd stopped", "pid", pid)
		return nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-d.done:
		return fmt.Errorf("stop dockerd pid %d: killed after it ignored SIGTERM", pid)
	case <-time.After(5 * time.Second):
		return fmt.Errorf("stop dockerd pid %d: still running after SIGKILL", pid)
	}
}

// Ping checks once that the daemon at host (unix:// or tcp://) answers
// GET /_ping with OK.
func Ping(ctx context.Context, host string) error {
	client, base, err := httpClient(host)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ping %s: %w", host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ping %s: %s", host, resp.Status)
	}
	return nil
}

func httpClient(host string) (*http.Client, string, error) {
	switch {
	case strings.HasPrefix(host, "unix://"):
		path := strings.TrimPrefix(host, "unix://")
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &http.Client{Transport: tr}, "http://docker", nil
	case strings.HasPrefix(host, "tcp://"):
		return &http.Client{}, "http://" + strings.TrimPrefix(host, "tcp://"), nil
	}
	return nil, "", fmt.Errorf("docker host %q: want unix:// or tcp://", host)
}

func cmpOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
