package topologies

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is a component that is one foreground program (plus whatever it
// forks into its process group): Redis, HAProxy, Varnish, pgbouncer,
// Prometheus and the app instances. It knows how to start the program again
// with the same command line, how to tell it is ready, and how to stop it.
//
// Its exported methods are promoted into the public component types.
type daemon struct {
	name string
	kind string
	dir  string
	spec procSpec
	log  *slog.Logger

	// ready probes once whether the program serves; start polls it.
	ready func(ctx context.Context) error
	// shutdown asks the program to stop through its own interface (Redis
	// SHUTDOWN NOSAVE); nil means stopSignal only.
	shutdown   func(ctx context.Context) error
	stopSignal syscall.Signal
	// stopGrace is how long a graceful stop may take before SIGKILL.
	stopGrace time.Duration
	// onStart runs after each (re)start, e.g. to rewrite topology.json.
	onStart func()

	mu   sync.Mutex
	proc *process
}

const (
	// readyPoll is how often start probes readiness.
	readyPoll = 25 * time.Millisecond
	// defaultReadyTimeout bounds a readiness wait whose context has no deadline.
	defaultReadyTimeout = 60 * time.Second
)

// start starts the program and waits until ready succeeds, the program
// exits (the error quotes the end of its log), or ctx ends. On failure the
// program is stopped again.
func (d *daemon) start(ctx context.Context) error {
	d.mu.Lock()
	if d.proc.alive() {
		d.mu.Unlock()
		return fmt.Errorf("%s: already running as pid %d", d.name, d.proc.pid)
	}
	p, err := startProcess(d.spec)
	if err != nil {
		d.mu.Unlock()
		return fmt.Errorf("%s: %w", d.name, err)
	}
	d.proc = p
	d.mu.Unlock()
	d.log.Debug("started", "component", d.name, "pid", p.pid)
	if d.onStart != nil {
		d.onStart()
	}
	if err := d.waitReady(ctx, p); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = p.terminate(sctx, syscall.SIGKILL, time.Second)
		return err
	}
	return nil
}

func (d *daemon) waitReady(ctx context.Context, p *process) error {
	if d.ready == nil {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
	}
	var last error
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		last = d.ready(pctx)
		cancel()
		if last == nil {
			return nil
		}
		if !p.alive() {
			return fmt.Errorf("%s exited before it was ready (log %s):\n%s", d.name, d.spec.logPath, tailFile(d.spec.logPath, 15))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (last check: %v; log %s): %w", d.name, last, d.spec.logPath, ctx.Err())
		case <-t.C:
		}
	}
}

// Name is the component's name in the topology, e.g. "app-2" or "redis".
func (d *daemon) Name() string { return d.name }

// PID is the process ID of the running program, or 0 once it is stopped.
func (d *daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.proc == nil || !d.proc.alive() {
		return 0
	}
	return d.proc.pid
}

// Running reports whether the program's process exists (it may be paused).
func (d *daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc.alive()
}

func (d *daemon) current() *process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// Stop stops the program gracefully (its own shutdown command or signal,
// SIGKILL after a grace period) and waits until it is gone. Stopping a
// stopped component does nothing.
func (d *daemon) Stop(ctx context.Context) error {
	p := d.current()
	if !p.alive() {
		return nil
	}
	_ = p.signal(syscall.SIGCONT) // a paused program cannot act on a stop request
	if d.shutdown != nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := d.shutdown(sctx)
		if err == nil {
			err = p.wait(sctx)
		}
		cancel()
		if err == nil {
			p.killStragglers()
			return nil
		}
		d.log.Debug("shutdown command failed; signalling", "component", d.name, "err", err)
	}
	sig := d.stopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	grace := d.stopGrace
	if grace == 0 {
		grace = 10 * time.Second
	}
	if err := p.terminate(ctx, sig, grace); err != nil {
		return fmt.Errorf("stop %s: %w", d.name, err)
	}
	return nil
}

// Kill sends SIGKILL to the program's process group and waits until the
// process is gone, as a crash would leave it.
func (d *daemon) Kill(ctx context.Context) error {
	p := d.current()
	if err := p.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", d.name, err)
	}
	if err := p.wait(ctx); err != nil {
		return fmt.Errorf("kill %s: %w", d.name, err)
	}
	p.killStragglers()
	return nil
}

// Pause freezes the program's process group (SIGSTOP): it keeps its
// sockets but answers nothing, like a machine that hangs.
func (d *daemon) Pause() error {
	p := d.current()
	if !p.alive() {
		return fmt.Errorf("pause %s: not running", d.name)
	}
	return p.signal(syscall.SIGSTOP)
}

// Resume continues a paused program (SIGCONT).
func (d *daemon) Resume() error {
	p := d.current()
	if !p.alive() {
		return fmt.Errorf("resume %s: not running", d.name)
	}
	return p.signal(syscall.SIGCONT)
}

// Restart stops the program if it runs and starts it again with the same
// command line, on the same port, and waits until it is ready.
func (d *daemon) Restart(ctx context.Context) error {
	if err := d.Stop(ctx); err != nil {
		return err
	}
	return d.start(ctx)
}

// tailFile returns the last n lines of a log file for error messages,
// preceded by earlier lines that look like the reason (a bad flag's
// message comes before the usage text that fills the tail).
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	from := max(len(lines)-n, 0)
	var out []string
	for _, l := range lines[:from] {
		if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			continue // usage text, stack frames
		}
		low := strings.ToLower(l)
		for _, w := range []string{"error", "invalid", "fatal", "panic", "not defined", "address already in use"} {
			if strings.Contains(low, w) && len(out) < 5 {
				out = append(out, l)
				break
			}
		}
	}
	if len(out) > 0 {
		out = append(out, "...")
	}
	out = append(out, lines[from:]...)
	return "  " + strings.Join(out, "\n  ")
}
