package burn

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"scalelab/internal/child"
)

// Hop is one process of a chain behind the bare server: a request that
// reaches it costs Work of its CPU, then goes on to the next hop, and its
// answer comes back the same way, as a request goes through a load
// balancer, an app instance and a cache. Each hop is a process of its own,
// so a request waits for the kernel to run each of them in turn, as it
// does for each tier of a phase.
type Hop struct {
	// Name names the tier the hop stands for, in logs.
	Name string
	// Work is the CPU time a request costs the hop.
	Work time.Duration
	// Threads caps the hop's Go runtime (GOMAXPROCS): 1 for a tier that
	// runs one thread, as Redis does; 0 leaves every core to it.
	Threads int
}

// String is the hop as ParseHops reads it: name=work, /threads when set.
func (h Hop) String() string {
	s := h.Name + "=" + h.Work.String()
	if h.Threads > 0 {
		s += "/" + strconv.Itoa(h.Threads)
	}
	return s
}

// FormatHops is hops as ParseHops reads them, comma-separated.
func FormatHops(hops []Hop) string {
	parts := make([]string, len(hops))
	for i, h := range hops {
		parts[i] = h.String()
	}
	return strings.Join(parts, ",")
}

// ParseHops reads "app=163µs,redis=21µs/1": hops in the order a request
// reaches them, each name=work with an optional /threads. "" is no hop.
func ParseHops(s string) ([]Hop, error) {
	if s == "" {
		return nil, nil
	}
	var hops []Hop
	for _, part := range strings.Split(s, ",") {
		name, rest, ok := strings.Cut(part, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("hop %q: want name=work[/threads]", part)
		}
		work, threads, _ := strings.Cut(rest, "/")
		d, err := time.ParseDuration(work)
		if err != nil || d < 0 || d > time.Second {
			return nil, fmt.Errorf("hop %q: work %q: want a duration from 0 to 1s", part, work)
		}
		h := Hop{Name: name, Work: d}
		if threads != "" {
			if h.Threads, err = strconv.Atoi(threads); err != nil || h.Threads < 1 {
				return nil, fmt.Errorf("hop %q: threads %q: want a whole number of 1 or more", part, threads)
			}
		}
		hops = append(hops, h)
	}
	return hops, nil
}

// next is the way to the next hop: a pool of connections to its Unix
// socket, each carrying one request at a time (one byte there, one back).
type next struct {
	path string
	hop  *child.Process
	idle chan net.Conn
}

// startNext starts hops[0] (scalelab burn-server --hop, which starts the
// rest behind it) on a socket in dir, and returns the way to it.
func startNext(ctx context.Context, binary, dir string, hops []Hop, log *slog.Logger) (*next, error) {
	if len(hops) == 0 {
		return nil, nil
	}
	h := hops[0]
	path := filepath.Join(dir, fmt.Sprintf("%d-%s.sock", len(hops), h.Name))
	command := []string{binary, "burn-server", "--hop", "--listen", path, "--work", h.Work.String(), "--hops", FormatHops(hops[1:])}
	var env []string
	if h.Threads > 0 {
		env = []string{"GOMAXPROCS=" + strconv.Itoa(h.Threads)}
	}
	proc, err := child.Start(ctx, child.Config{
		Name: "burn hop " + h.Name, Command: command, Env: env, Log: log, Stderr: os.Stderr,
		First: func(line []byte) error {
			url, err := parseAddress(line)
			if err == nil && url != "unix:"+path {
				err = fmt.Errorf("address %q, want unix:%s", url, path)
			}
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	return &next{path: path, hop: proc, idle: make(chan net.Conn, 4096)}, nil
}

// call takes one request to the next hop and waits for its answer.
func (n *next) call() error {
	var c net.Conn
	select {
	case c = <-n.idle:
	default:
		var err error
		if c, err = net.Dial("unix", n.path); err != nil {
			return fmt.Errorf("dial the next hop: %w", err)
		}
	}
	var b [1]byte
	if _, err := c.Write(b[:]); err != nil {
		c.Close()
		return fmt.Errorf("to the next hop: %w", err)
	}
	if _, err := io.ReadFull(c, b[:]); err != nil {
		c.Close()
		return fmt.Errorf("from the next hop: %w", err)
	}
	select {
	case n.idle <- c:
	default:
		c.Close()
	}
	return nil
}

// stop stops the next hop (and with it the hops behind it) and closes the
// idle connections; its owner calls it once, after the calls are done.
func (n *next) stop() {
	if n == nil {
		return
	}
	n.hop.Stop()
	for {
		select {
		case c := <-n.idle:
			c.Close()
		default:
			return
		}
	}
}

// ServeHop is one hop of the chain: it listens on the Unix socket path,
// starts the hops behind it (binary is scalelab), writes "unix:PATH" to
// stdout as an Address, and then answers every byte it reads, once work of
// CPU is spent and the next hop has answered, until ctx ends. log takes the
// warnings of a next hop that failed; nil discards them.
func ServeHop(ctx context.Context, binary, path string, work time.Duration, hops []Hop, stdout io.Writer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	nx, err := startNext(ctx, binary, filepath.Dir(path), hops, log)
	if err != nil {
		return fmt.Errorf("burn hop: %w", err)
	}
	defer nx.stop()
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("burn hop: %w", err)
	}
	var conns sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	closed := false
	// closeAll ends the accept loop and every connection's goroutine.
	closeAll := func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		closed = true
		for c := range open {
			c.Close()
		}
	}
	stop := context.AfterFunc(ctx, closeAll)
	defer func() {
		stop()
		closeAll()
		conns.Wait() // before nx.stop: they call the next hop
	}()
	line, err := json.Marshal(Address{URL: "unix:" + path})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", line); err != nil {
		return fmt.Errorf("burn hop: write address: %w", err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("burn hop: accept: %w", err)
		}
		mu.Lock()
		if closed { // accepted as closeAll ran: it never saw this one
			mu.Unlock()
			c.Close()
			continue
		}
		open[c] = struct{}{}
		mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer func() {
				mu.Lock()
				delete(open, c)
				mu.Unlock()
				c.Close()
			}()
			var b [1]byte
			for {
				if _, err := io.ReadFull(c, b[:]); err != nil {
					return
				}
				Spin(work)
				if nx != nil {
					if err := nx.call(); err != nil {
						log.Warn("burn hop", "err", err)
						return
					}
				}
				if _, err := c.Write(b[:]); err != nil {
					return
				}
			}
		}()
	}
}
