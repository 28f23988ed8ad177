package loadgen

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Recording has to be cheap: on a 2-core box every microsecond the generator
// spends is taken from the server. Workers therefore record into a few
// shards (worker i into shard i mod n, n a small multiple of GOMAXPROCS)
// under a mutex that is almost never contended, instead of one global lock
// or a channel to a collector goroutine. A dense HDR histogram records in a
// few nanoseconds but holds about 140 KB, so histograms are per shard, not
// per worker (a run may have hundreds). Once a second the collector swaps
// each shard's current-second counts for an empty set (a pointer swap under
// the lock) and merges them outside it; at the end it merges the shards'
// per-name histograms. BenchmarkRecord measures the cost of one request.
//
// The current second also keeps a tally per operation, so that each
// operation has its own series: recording an operation adds one counter
// and one histogram value under the lock it already holds. It costs two
// dense histograms per operation per shard (the current second and the
// spare), as the operation's whole-run tally already does.

// outcome of a request or an operation, ordered by severity.
type outcome uint8

const (
	outcomeOK outcome = iota
	outcomeThrottled
	outcomeFailed
)

// tally counts one operation or request name in one shard.
type tally struct {
	count, errors, throttled int64
	hist                     *hdrhistogram.Histogram
}

func (t *tally) add(o outcome, lat time.Duration, hasLatency bool) {
	t.count++
	switch o {
	case outcomeThrottled:
		t.throttled++
	case outcomeFailed:
		t.errors++
	}
	if hasLatency {
		recordLatency(t.hist, lat)
	}
}

func (t *tally) stats(name string) Stats {
	return Stats{Name: name, Count: t.count, Errors: t.errors, Throttled: t.throttled, Latency: t.hist}
}

func (t *tally) reset() {
	t.count, t.errors, t.throttled = 0, 0, 0
	t.hist.Reset()
}

// second counts what completed in one second, in one shard: requests, and
// operations both in all and each on its own.
type second struct {
	ops, requests, errors, throttled int64
	hist                             *hdrhistogram.Histogram
	byOp                             []tally // by operation index
}

func newSecond(nops int) *second {
	s := &second{hist: NewHistogram(), byOp: make([]tally, nops)}
	for i := range s.byOp {
		s.byOp[i].hist = NewHistogram()
	}
	return s
}

func (s *second) reset() {
	s.ops, s.requests, s.errors, s.throttled = 0, 0, 0, 0
	s.hist.Reset()
	for i := range s.byOp {
		s.byOp[i].reset()
	}
}

type shard struct {
	mu         sync.Mutex
	requests   map[string]*tally
	ops        []tally // by operation index
	classes    map[string]int64
	startDelay *hdrhistogram.Histogram
	cur        *second
	_          [64]byte // keep shards' hot fields off each other's cache lines
}

func newShard(nops int) *shard {
	sh := &shard{
		requests:   make(map[string]*tally),
		ops:        make([]tally, nops),
		classes:    make(map[string]int64),
		startDelay: NewHistogram(),
		cur:        newSecond(nops),
	}
	for i := range sh.ops {
		sh.ops[i].hist = NewHistogram()
	}
	return sh
}

func (sh *shard) recordRequest(name string, lat time.Duration, o outcome, hasLatency bool, class string) {
	sh.mu.Lock()
	t := sh.requests[name]
	if t == nil {
		t = &tally{hist: NewHistogram()}
		sh.requests[name] = t
	}
	t.add(o, lat, hasLatency)
	c := sh.cur
	c.requests++
	switch o {
	case outcomeThrottled:
		c.throttled++
	case outcomeFailed:
		c.errors++
		sh.classes[class]++
	}
	if hasLatency {
		recordLatency(c.hist, lat)
	}
	sh.mu.Unlock()
}

func (sh *shard) recordOp(i int, lat, delay time.Duration, o outcome, hasLatency bool, class string) {
	sh.mu.Lock()
	sh.ops[i].add(o, lat, hasLatency)
	if delay >= 0 {
		recordLatency(sh.startDelay, delay)
	}
	if class != "" {
		sh.classes[class]++
	}
	sh.cur.ops++
	sh.cur.byOp[i].add(o, lat, hasLatency)
	sh.mu.Unlock()
}

func (sh *shard) recordClass(class string) {
	sh.mu.Lock()
	sh.classes[class]++
	sh.mu.Unlock()
}

// swap replaces the shard's current second with next and returns the old
// one.
func (sh *shard) swap(next *second) *second {
	sh.mu.Lock()
	old := sh.cur
	sh.cur = next
	sh.mu.Unlock()
	return old
}

// worker is one goroutine of a run with its client and session, running one
// operation at a time.
type worker struct {
	r       *run
	sh      *shard
	client  *Client
	session *Session

	// Set per operation.
	op        int       // index into r.mix.ops; -1 during Setup
	sched     time.Time // when the operation's first request is due; zero once taken
	worst     outcome   // of the operation's requests so far
	noLatency bool      // a request failed without a meaningful latency
	aborted   bool      // a request was cut off by the end of the run
	recording bool      // false during Setup
}

func (w *worker) takeScheduled() time.Time {
	t := w.sched
	w.sched = time.Time{}
	return t
}

func (w *worker) opName() string {
	if w.op < 0 {
		return "setup"
	}
	return w.r.mix.ops[w.op].Name
}

func (w *worker) recordRequest(req *Request, lat time.Duration, status int, class string, aborted bool) {
	if aborted {
		w.aborted = true
		return
	}
	o := outcomeOK
	switch class {
	case "":
	case ClassThrottled:
		o = outcomeThrottled
	default:
		o = outcomeFailed
	}
	w.worst = max(w.worst, o)
	hasLatency := status != 0 || class == ClassTimeout
	if !hasLatency {
		w.noLatency = true
	}
	if !w.recording {
		return
	}
	name := req.Name
	if name == "" {
		name = w.opName()
	}
	w.sh.recordRequest(name, lat, o, hasLatency, class)
}

// runOp runs operation i. due is when it was scheduled to start (open
// model), or zero to time it from its actual start (closed model).
func (w *worker) runOp(ctx context.Context, i int, due time.Time) {
	start := time.Now()
	delay := time.Duration(-1)
	if due.IsZero() {
		due = start
	} else {
		delay = start.Sub(due)
	}
	w.op, w.sched, w.worst, w.noLatency, w.aborted = i, due, outcomeOK, false, false
	err := w.r.mix.ops[i].Do(ctx, w.client, w.session)
	end := time.Now()
	if w.aborted || errors.Is(err, errClosed) || (err != nil && ctx.Err() != nil) {
		return // cut off by the end of the run: neither success nor failure
	}
	o, class := w.worst, ""
	if err != nil {
		var re *RequestError
		switch {
		case !errors.As(err, &re):
			o, class = outcomeFailed, ClassCheck
		case re.Class == ClassThrottled:
			o = max(o, outcomeThrottled)
		default:
			o = outcomeFailed
		}
	}
	w.sh.recordOp(i, end.Sub(due), delay, o, !w.noLatency, class)
}
