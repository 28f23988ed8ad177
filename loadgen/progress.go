package loadgen

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Snapshot is a run's progress at the end of one of its seconds. Counts are
// cumulative since the start.
type Snapshot struct {
	// Elapsed is the time since the start of the run.
	Elapsed time.Duration
	// Last is the second that just ended.
	Last Point
	// Open is true for an open-model run, where Offered and Dropped apply.
	Open bool
	// Offered and Dropped count arrivals; Ops, Requests, Errors and
	// Throttled count what finished.
	Offered, Dropped, Ops, Requests, Errors, Throttled int64
	// Workers is the number of workers started so far.
	Workers int
}

// Observer receives a run's progress once a second (Config.Observer).
// Observe is called from the run's collector goroutine and should return
// quickly.
type Observer interface {
	Observe(Snapshot)
}

// Progress is an Observer that shows a run's progress: on a terminal one
// line rewritten in place each second, otherwise (a log, a CI job) one plain
// line per second:
//
//	12s  ops/s 998 of 1000  req/s 1996  p99 3.21ms  errors 0  throttled 0  dropped 2  workers 14
//
// It owns no goroutine: the run's collector calls it. Call Stop when the run
// is over to end the line.
type Progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	drawn   bool
	stopped bool
}

// NewProgress returns a Progress writing to w; it rewrites its line in place
// if w is a terminal.
func NewProgress(w io.Writer) *Progress {
	return &Progress{w: w, tty: isTerminal(w)}
}

// Observe writes one progress line.
func (p *Progress) Observe(s Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%5.0fs  ops/s %.0f", s.Elapsed.Seconds(), perSecond(s.Last.Ops, s.Last.Interval))
	if s.Open {
		fmt.Fprintf(&b, " of %.0f", s.Last.OfferedRate())
	}
	fmt.Fprintf(&b, "  req/s %.0f  p99 %s  errors %d  throttled %d", s.Last.Rate(), fmtMS(s.Last.P99), s.Errors, s.Throttled)
	if s.Open {
		fmt.Fprintf(&b, "  dropped %d", s.Dropped)
	}
	fmt.Fprintf(&b, "  workers %d", s.Workers)
	p.draw(b.String())
}

func (p *Progress) draw(line string) {
	if p.tty {
		// Return to the start of the line, write, clear what is left of
		// a longer previous line.
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	} else {
		fmt.Fprintln(p.w, line)
	}
	p.drawn = true
}

// Stop ends the progress line; later Observe calls write nothing.
func (p *Progress) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.stopped && p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
	p.stopped = true
}

func fmtMS(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 1:
		return fmt.Sprintf("%.2fms", ms)
	}
	return fmt.Sprintf("%.0fµs", ms*1000)
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Bar is a progress bar for work of known size, such as seeding users:
//
//	seed users [===========>            ]  48%  480000/1000000  151230/s  ETA 3s
//
// A goroutine owned by the Bar redraws it (every 200ms on a terminal, in
// place; every second as plain lines otherwise) until Stop is called or the
// context given to StartBar is done. Add may be called from any goroutine.
type Bar struct {
	w     io.Writer
	label string
	total int64
	tty   bool
	start time.Time
	done  atomic.Int64

	stopOnce sync.Once
	stop     chan struct{}
	exited   chan struct{}
}

// StartBar starts a bar for total units of work, labelled label.
func StartBar(ctx context.Context, w io.Writer, label string, total int64) *Bar {
	b := &Bar{
		w: w, label: label, total: total, tty: isTerminal(w), start: time.Now(),
		stop: make(chan struct{}), exited: make(chan struct{}),
	}
	every := time.Second
	if b.tty {
		every = 200 * time.Millisecond
	}
	go b.loop(ctx, every)
	return b
}

// Add records n more units done.
func (b *Bar) Add(n int64) { b.done.Add(n) }

// Done returns the units done so far.
func (b *Bar) Done() int64 { return b.done.Load() }

func (b *Bar) loop(ctx context.Context, every time.Duration) {
	defer close(b.exited)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			b.draw(false)
		case <-ctx.Done():
			return
		case <-b.stop:
			return
		}
	}
}

// Stop stops the redrawing and writes the final state of the bar, with the
// total time taken. It may be called more than once.
func (b *Bar) Stop() {
	b.stopOnce.Do(func() {
		close(b.stop)
		<-b.exited
		b.draw(true)
	})
}

func (b *Bar) draw(final bool) {
	done, elapsed := b.done.Load(), time.Since(b.start)
	rate := perSecond(done, elapsed)
	frac := 1.0
	if b.total > 0 {
		frac = min(float64(done)/float64(b.total), 1)
	}
	const width = 24
	full := int(frac * width)
	bar := strings.Repeat("=", full)
	if full < width {
		bar += ">" + strings.Repeat(" ", width-full-1)
	}
	line := fmt.Sprintf("%s [%s] %3.0f%%  %d/%d  %.0f/s", b.label, bar, frac*100, done, b.total, rate)
	switch {
	case final:
		line += fmt.Sprintf("  in %s", elapsed.Round(time.Millisecond))
	case rate > 0 && done < b.total:
		eta := time.Duration(float64(b.total-done) / rate * float64(time.Second))
		line += fmt.Sprintf("  ETA %s", eta.Round(time.Second))
	}
	switch {
	case b.tty && final:
		fmt.Fprintf(b.w, "\r%s\x1b[K\n", line)
	case b.tty:
		fmt.Fprintf(b.w, "\r%s\x1b[K", line)
	default:
		fmt.Fprintln(b.w, line)
	}
}
