package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ReadyLine is what a generator started with `run --wait-start` prints
// when it has signed in and warmed up; it then waits for a line on its
// standard input before it starts measuring (WaitStart).
const ReadyLine = "generator ready: waiting for the start signal on stdin"

// thresholdsFailedStatus is scalelab run's exit status when the run
// completed but its thresholds failed: for a generator, a finished share.
const thresholdsFailedStatus = 99

// WaitStart returns a TargetConfig.Ready that prints ReadyLine to w and
// waits for a line from r (or for ctx). The goroutine reading r ends when
// r ends: the generator's parent closes the pipe when it starts or stops
// the generators, or when it dies.
func WaitStart(w io.Writer, r io.Reader) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		fmt.Fprintln(w, ReadyLine)
		got := make(chan error, 1)
		go func() {
			_, err := bufio.NewReader(r).ReadString('\n')
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				return fmt.Errorf("read the start signal: %w", err)
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// GeneratorsConfig is one run split between N load generators on this
// machine: N child processes of Binary, each running
//
//	scalelab run ARGS --shard i/N --out OUT/generator-i --wait-start
//
// so each takes its share of the run (loadgen.Shard) and writes its own
// result.json, histograms included, for Merge.
type GeneratorsConfig struct {
	// Binary is the scalelab executable. Required.
	Binary string
	// Args are the generators' `run` flags: the target, the scenario, the
	// load and a users file; not --shard, --out or --wait-start.
	Args []string
	// N is the number of generators, at least 2.
	N int
	// Out is the folder that receives generator-0 … generator-N-1.
	Out string
	// Stdout receives the generators' output, each line prefixed with its
	// generator; nil discards it.
	Stdout io.Writer
	// Logger receives the start and end of each generator; nil discards.
	Logger *slog.Logger
}

// generator is one child process.
type generator struct {
	i     int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	dir   string
	// gone is set once the process has been waited for: its PID (and
	// group) may then belong to another process.
	gone atomic.Bool
}

// signal sends sig to the generator's process group, unless it is gone.
func (g *generator) signal(sig syscall.Signal) {
	if !g.gone.Load() {
		_ = syscall.Kill(-g.cmd.Process.Pid, sig)
	}
}

type exited struct {
	i   int
	err error
}

// RunGenerators starts c.N generators, waits until every one is ready to
// measure, starts them together (so that their seconds line up within
// milliseconds), waits for all of them and returns their result folders.
// When one fails, or ctx ends, the others are stopped: SIGTERM to each
// one's process group by its PID, then SIGKILL after a grace period.
func RunGenerators(ctx context.Context, c GeneratorsConfig) ([]string, error) {
	if c.Binary == "" || c.N < 2 {
		return nil, invalidf("generators: need the scalelab binary and at least 2 generators, got %d", c.N)
	}
	out, log := c.Stdout, c.Logger
	if out == nil {
		out = io.Discard
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var mu sync.Mutex // serialises the generators' lines on out
	ready := make(chan int, c.N)
	done := make(chan exited, c.N)
	gens := make([]*generator, 0, c.N)
	var running sync.WaitGroup
	defer running.Wait()

	stopAll := func() {
		for _, g := range gens {
			g.signal(syscall.SIGTERM)
			g.stdin.Close()
		}
	}
	for i := range c.N {
		g, err := startGenerator(c, i, out, &mu, ready, done, &running)
		if err != nil {
			stopAll()
			waitExits(done, len(gens), gens)
			return nil, err
		}
		log.Info("generator started", "shard", fmt.Sprintf("%d/%d", i, c.N), "pid", g.cmd.Process.Pid)
		gens = append(gens, g)
	}

	// Phase 1: every generator signs in and warms up, then says so.
	var failed error
	left := c.N
	for nready := 0; nready < c.N && failed == nil; {
		select {
		case <-ready:
			nready++
		case e := <-done:
			left--
			failed = fmt.Errorf("generator %d/%d ended before the start: %w", e.i, c.N, orExit(e.err))
		case <-ctx.Done():
			failed = ctx.Err()
		}
	}
	if failed == nil {
		fmt.Fprintf(out, "all %d generators ready: starting them together\n", c.N)
		for _, g := range gens {
			if _, err := io.WriteString(g.stdin, "start\n"); err != nil {
				failed = fmt.Errorf("start generator %d/%d: %w", g.i, c.N, err)
				break
			}
			g.stdin.Close()
		}
	}
	// Phase 2: the measured runs.
	for left > 0 && failed == nil {
		select {
		case e := <-done:
			left--
			if e.err != nil {
				failed = fmt.Errorf("generator %d/%d: %w", e.i, c.N, e.err)
			}
		case <-ctx.Done():
			failed = ctx.Err()
		}
	}
	if failed != nil {
		stopAll()
		waitExits(done, left, gens)
		return nil, failed
	}
	dirs := make([]string, c.N)
	for i, g := range gens {
		dirs[i] = g.dir
	}
	return dirs, nil
}

// startGenerator starts generator i of c.N in its own process group. Its
// output goes to out, line by line with a prefix, until it exits; its
// ReadyLine goes to ready and its exit (a status 99, thresholds failed,
// counts as success) to done.
func startGenerator(c GeneratorsConfig, i int, out io.Writer, mu *sync.Mutex, ready chan<- int, done chan<- exited, running *sync.WaitGroup) (*generator, error) {
	shard := fmt.Sprintf("%d/%d", i, c.N)
	dir := filepath.Join(c.Out, fmt.Sprintf("generator-%d", i))
	args := append([]string{"run"}, c.Args...)
	args = append(args, "--shard", shard, "--out", dir, "--wait-start")
	cmd := exec.Command(c.Binary, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("generator %s: %w", shard, err)
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		stdin.Close()
		return nil, fmt.Errorf("start generator %s: %w", shard, err)
	}
	prefix := "[generator " + shard + "] "
	running.Add(2)
	go func() {
		defer running.Done()
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == ReadyLine {
				select {
				case ready <- i:
				default: // said twice; once is counted
				}
			}
			mu.Lock()
			fmt.Fprintln(out, prefix+line)
			mu.Unlock()
		}
		_, _ = io.Copy(io.Discard, pr) // a line past the buffer: keep the child unblocked
	}()
	g := &generator{i: i, cmd: cmd, stdin: stdin, dir: dir}
	go func() {
		defer running.Done()
		err := cmd.Wait()
		g.gone.Store(true)
		pw.Close()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == thresholdsFailedStatus {
			err = nil
		}
		done <- exited{i: i, err: err}
	}()
	return g, nil
}

// waitExits waits for n more exits, killing what is still running after a
// grace period.
func waitExits(done <-chan exited, n int, gens []*generator) {
	grace := time.NewTimer(15 * time.Second)
	defer grace.Stop()
	for n > 0 {
		select {
		case <-done:
			n--
		case <-grace.C:
			for _, g := range gens {
				g.signal(syscall.SIGKILL)
			}
		}
	}
}

func orExit(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}
