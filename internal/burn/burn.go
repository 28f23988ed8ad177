// Package burn is a bare HTTP server that spends a set CPU time on every
// request and answers with a fixed body: the simplest server there is,
// with a cost per request the caller chooses.
//
// The capacity search loads it on the same machine, with the same load
// generator and the same objective, as the phase it has just searched,
// each request costing what the phase's tiers cost together. How busy the
// cores get before its tail breaks the objective is the machine's own
// ceiling: no hop, no cache, no database in the way, only the cores, the
// generator beside them and whatever the host does to them
// (internal/pauses). The queueing model takes that share of the cores as
// what requests may use.
//
// The server is a process of its own (Serve, which scalelab's hidden
// burn-server command runs), as every tier of a phase is: two Go runtimes,
// the generator's and the server's, share the cores as they do in a phase.
package burn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"time"

	"scalelab/internal/child"
)

// Body is what the server answers to every request: about the size of a
// user's public profile.
var body = []byte(`{"id":"00000000-0000-4000-8000-000000000000","name":"burn","bio":"` +
	"a fixed answer about the size of a user's public profile, so that the bytes written per request are about a phase's" +
	`","created_at":"2026-01-01T00:00:00Z","data":{"k":"v"}}` + "\n")

// Handler spends work of CPU time on every request (its thread's CPU
// clock, so a request preempted midway still costs work), then writes the
// fixed body with status 200.
func Handler(work time.Duration) http.Handler {
	return handler(work, nil)
}

// handler is Handler with the request taken through the chain of hops
// behind nx (nil: none) once work is spent; a hop that fails is a 502.
func handler(work time.Duration, nx *next) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Spin(work)
		if nx != nil {
			if err := nx.call(); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// Spin keeps the calling goroutine on its thread and busy for d of that
// thread's CPU time.
func Spin(d time.Duration) {
	if d <= 0 {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, err := threadCPU()
	if err != nil {
		spinWall(d)
		return
	}
	x := uint64(88172645463325252)
	for {
		for range 256 { // xorshift: work the compiler cannot drop
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
		now, err := threadCPU()
		if err != nil || now-start >= d {
			break
		}
	}
	sink(x)
}

//go:noinline
func sink(uint64) {}

// spinWall is Spin by the wall clock, where there is no thread CPU clock.
func spinWall(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
	}
}

// Address is the server's first line on stdout.
type Address struct {
	URL string `json:"url"`
}

// Config is a bare server to serve.
type Config struct {
	// Listen is a loopback address: the server is for the lab's own load.
	Listen string
	// Work is the CPU time every request costs the server itself.
	Work time.Duration
	// Hops are the processes a request goes through behind the server,
	// in order (ServeHop); none: the server answers on its own.
	Hops []Hop
	// Binary is the scalelab program that runs the hops; required with
	// Hops.
	Binary string
	// Log takes the hops' warnings; nil discards them.
	Log *slog.Logger
}

// Serve listens on c.Listen, starts c.Hops behind it, writes its URL to
// stdout as an Address and serves every request, c.Work of its own CPU and
// a trip through the hops, until ctx ends.
func Serve(ctx context.Context, c Config, stdout io.Writer) error {
	addr, work := c.Listen, c.Work
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("burn server: listen address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("burn server: listen address %q: not a loopback IP address", addr)
	}
	if work < 0 || work > time.Second {
		return fmt.Errorf("burn server: work %s per request: want 0 to 1s", work)
	}
	var nx *next
	if len(c.Hops) > 0 {
		if c.Binary == "" {
			return errors.New("burn server: hops need the scalelab binary to run them")
		}
		dir, err := os.MkdirTemp("", "scalelab-burn-")
		if err != nil {
			return fmt.Errorf("burn server: %w", err)
		}
		defer os.RemoveAll(dir)
		if nx, err = startNext(ctx, c.Binary, dir, c.Hops, log); err != nil {
			return fmt.Errorf("burn server: %w", err)
		}
		defer nx.stop()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("burn server: %w", err)
	}
	srv := &http.Server{Handler: handler(work, nx), ReadHeaderTimeout: 10 * time.Second}
	line, err := json.Marshal(Address{URL: "http://" + ln.Addr().String()})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		ln.Close()
		return fmt.Errorf("burn server: write address: %w", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("burn server: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		return fmt.Errorf("burn server: shut down: %w", err)
	}
	<-served
	return nil
}

// Process is a burn server started as a child process.
type Process struct {
	// URL is where it serves.
	URL string
	*child.Process
}

// parseAddress reads a server's or a hop's first line, an Address, and
// returns its URL.
func parseAddress(line []byte) (string, error) {
	var a Address
	if err := json.Unmarshal(line, &a); err != nil {
		return "", fmt.Errorf("bad address: %w", err)
	}
	if a.URL == "" {
		return "", errors.New("bad address: no URL")
	}
	return a.URL, nil
}

// Start runs command (scalelab burn-server with its flags) and returns
// once it has said where it serves. The server dies with this process;
// Stop stops it.
func Start(ctx context.Context, command []string, log *slog.Logger) (*Process, error) {
	p := &Process{}
	proc, err := child.Start(ctx, child.Config{
		Name: "burn server", Command: command, Log: log, Stderr: os.Stderr,
		First: func(line []byte) (err error) {
			p.URL, err = parseAddress(line)
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	p.Process = proc
	return p, nil
}
