// Command withdocker runs a command with a Docker daemon at hand:
//
//	go run ./internal/dockerd/withdocker -- make images
//
// It finds a daemon that answers (DOCKER_HOST, the default socket, the
// lab's own socket) or, as root, starts dockerd as its child on the lab's
// own socket; runs the command with DOCKER_HOST set; and stops a daemon it
// started, by PID, when the command ends or on Ctrl-C. With -detach it
// only makes sure a daemon runs and leaves a started one running.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"scalelab/internal/dockerd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		os.Exit(ee.ExitCode())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "withdocker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("withdocker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	detach := fs.Bool("detach", false, "start a daemon if none answers and leave it running")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	d, err := dockerd.Ensure(ctx, dockerd.Options{Logger: log})
	if err != nil {
		return err
	}
	if *detach {
		if d.Started() {
			fmt.Fprintf(stdout, "dockerd runs as pid %d: export DOCKER_HOST=%s (stop it with: kill %d)\n", d.PID(), d.Host(), d.PID())
		} else {
			fmt.Fprintf(stdout, "a Docker daemon answers at %s\n", d.Host())
		}
		return nil
	}
	defer func() {
		if err := d.Stop(context.WithoutCancel(ctx)); err != nil {
			log.Error("stop dockerd", "err", err)
		}
	}()
	if fs.NArg() == 0 {
		return errors.New("usage: withdocker [-detach] -- COMMAND [ARG...]")
	}
	cmd := exec.CommandContext(ctx, fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host())
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	return cmd.Run()
}
