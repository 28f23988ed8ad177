// Package child runs the helper programs the lab starts beside a
// measurement (scalelab pause-probe, scalelab burn-server): a process that
// says what it is on its first line of stdout, may go on writing lines,
// dies with this process and is stopped by its own PID.
package child

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a running helper program.
type Process struct {
	name string
	cmd  *exec.Cmd
	log  *slog.Logger
	done chan struct{} // closed once its stdout has ended
}

// Config is one helper program to run.
type Config struct {
	// Name is the program's name in errors and logs, e.g. "pause probe".
	Name string
	// Command is the program and its arguments. Required.
	Command []string
	// Log takes the warnings of stopping it; nil discards them.
	Log *slog.Logger
	// Env is added to this process's environment for the program.
	Env []string
	// Stderr takes the program's stderr; nil discards it.
	Stderr io.Writer
	// First is given the program's first line of stdout, and says whether
	// the program started as it should. Required.
	First func(line []byte) error
	// Next, if set, is given every later line, from the goroutine that
	// reads them, until stdout ends.
	Next func(line []byte)
}

// Start runs c.Command and returns once its first line of stdout has been
// accepted by c.First, within 10 s. The program dies with this process;
// Stop stops it.
func Start(ctx context.Context, c Config) (*Process, error) {
	name, next := c.Name, c.Next
	if len(c.Command) == 0 {
		return nil, fmt.Errorf("%s: no command", name)
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cmd := exec.Command(c.Command[0], c.Command[1:]...)
	cmd.SysProcAttr = dieWithParent()
	cmd.Stderr = c.Stderr
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, c.Command[0], err)
	}
	p := &Process{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		defer close(p.done)
		lines := bufio.NewScanner(out)
		if !lines.Scan() {
			started <- fmt.Errorf("%s: no first line: %v", name, cmp.Or(lines.Err(), io.ErrUnexpectedEOF))
			return
		}
		if err := c.First(lines.Bytes()); err != nil {
			started <- fmt.Errorf("%s: first line %q: %w", name, lines.Text(), err)
			return
		}
		started <- nil
		for next != nil && lines.Scan() {
			next(lines.Bytes())
		}
		_, _ = io.Copy(io.Discard, out) // past a scanner error, or with no next: let the program exit
	}()
	select {
	case err = <-started:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(10 * time.Second):
		err = fmt.Errorf("%s: no first line within 10s", name)
	}
	if err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// Stop stops the program by its PID (SIGTERM, then SIGKILL after 5 s) and
// waits for it.
func (p *Process) Stop() {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.log.Warn(p.name+": stop", "err", err)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	if err := p.cmd.Wait(); err != nil {
		p.log.Debug(p.name+": exit", "err", err) // stopped by our signal: its status says little
	}
}

// Exited reports whether the program has exited and been waited for.
func (p *Process) Exited() bool { return p.cmd.ProcessState != nil }

// Pid is the program's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }
