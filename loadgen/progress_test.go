package loadgen

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestProgressLine(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf)
	p.Observe(Snapshot{
		Elapsed: 12 * time.Second, Open: true,
		Last:   Point{Interval: time.Second, Offered: 1000, Ops: 998, Requests: 1996, P99: 3.21},
		Errors: 4, Throttled: 1, Dropped: 2, Workers: 14,
	})
	p.Observe(Snapshot{Elapsed: 3 * time.Second, Last: Point{Interval: time.Second, Ops: 50, Requests: 50, P99: 0.25}, Workers: 2})
	p.Stop()
	p.Observe(Snapshot{Elapsed: time.Hour}) // after Stop: nothing
	want := "   12s  ops/s 998 of 1000  req/s 1996  p99 3.21ms  errors 4  throttled 1  dropped 2  workers 14\n" +
		"    3s  ops/s 50  req/s 50  p99 250µs  errors 0  throttled 0  workers 2\n"
	if got := buf.String(); got != want {
		t.Errorf("progress output:\n%s\nwant:\n%s", got, want)
	}
}

// syncBuffer is a bytes.Buffer safe for the bar's goroutine and the test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestBar(t *testing.T) {
	var out syncBuffer
	bar := StartBar(context.Background(), &out, "seed users", 1000)
	bar.Add(400)
	bar.Add(600)
	bar.Stop()
	bar.Stop() // twice is fine
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"seed users [========================] 100%", "1000/1000", "/s", " in "} {
		if !strings.Contains(last, want) {
			t.Errorf("final bar line %q does not contain %q", last, want)
		}
	}
	if bar.Done() != 1000 {
		t.Errorf("Done() = %d, want 1000", bar.Done())
	}

	// A cancelled context stops the redrawing goroutine too; Stop still
	// draws the final line.
	ctx, cancel := context.WithCancel(context.Background())
	var out2 syncBuffer
	bar2 := StartBar(ctx, &out2, "x", 10)
	cancel()
	bar2.Stop()
	if !strings.Contains(out2.String(), "0/10") {
		t.Errorf("bar output %q, want the final 0/10", out2.String())
	}
}

// A run calls its Observer once a second; Progress prints from it.
func TestRunReportsProgress(t *testing.T) {
	t.Parallel()
	srv := mustServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	var out syncBuffer
	p := NewProgress(&out)
	res := mustRun(t, Config{
		Target:   srv.URL,
		Ops:      []Op{getOp("get", "/")},
		Executor: ConstantArrivalRate{Rate: 50, Duration: 1500 * time.Millisecond},
		Observer: p,
	})
	p.Stop()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(res.Series) || len(lines) < 2 {
		t.Errorf("%d progress lines for %d seconds of series, want one each (>= 2):\n%s", len(lines), len(res.Series), out.String())
	}
	if !strings.Contains(lines[0], "ops/s") || !strings.Contains(lines[0], " of ") {
		t.Errorf("first line %q does not show the achieved and offered rates", lines[0])
	}
}
