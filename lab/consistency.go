package lab

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"scalelab/loadgen"
	"scalelab/reports"
	"scalelab/scenarios"
)

// The consistency check: after a run whose scenario has faults (or asks
// for it), the history of every client (history.go) is checked for what
// the server promises (docs/consistency.md):
//
//   - read-your-writes: a user's own read never shows a version older than
//     a write of theirs acknowledged before the read began (to the same
//     client, when the clients send write hints: the server then promises
//     it per session);
//   - monotonic reads: a client's own reads of a user never go back to an
//     older version than one it already saw;
//   - no lost writes: the final read of every user written (after the run,
//     with the owner's token) shows the last acknowledged write's version
//     or a newer one; and no late overwrite: the final value is not one of
//     a write that never got an answer and was sent before the last
//     acknowledged write was acknowledged;
//   - anonymous staleness: how long after a write's acknowledgement an
//     anonymous read through the entry point could still show an older
//     value, per write, as p50/p99/max.

// finalRead is what the final read of a user saw.
type finalRead struct {
	ok      bool
	value   string
	version time.Time
}

// finalReadTimeout bounds the final read of one user: long enough for the
// topology to recover from a fault that ended just before the run did.
const finalReadTimeout = 20 * time.Second

// readFinal reads every user h saw written, with its owner's token, through
// target, retrying each until it answers 200 or finalReadTimeout passes.
func (d *driver) readFinal(ctx context.Context, target string, h *history) (map[string]finalRead, error) {
	h.mu.Lock()
	users := make([]string, 0, len(h.users))
	for u := range h.users {
		users = append(users, u)
	}
	idx := maps.Clone(h.users)
	h.mu.Unlock()
	sort.Strings(users)

	out := make(map[string]finalRead, len(users))
	var mu sync.Mutex
	next := make(chan string)
	var wg sync.WaitGroup
	var firstErr error
	for range min(4, max(1, len(users))) {
		wg.Go(func() {
			c, err := loadgen.NewClient(target, 10*time.Second)
			if err != nil {
				mu.Lock()
				firstErr = err
				mu.Unlock()
				for range next {
				}
				return
			}
			defer c.Close()
			for u := range next {
				hdr := []loadgen.Header(nil)
				if i, ok := idx[u]; ok {
					if tok, ok := d.tokenOf(i); ok {
						hdr = []loadgen.Header{{Key: "Authorization", Value: "Bearer " + tok}}
					}
				}
				f := d.readOneFinal(ctx, c, u, hdr)
				mu.Lock()
				out[u] = f
				mu.Unlock()
			}
		})
	}
	for _, u := range users {
		select {
		case next <- u:
		case <-ctx.Done():
		}
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("final reads: %w", firstErr)
	}
	return out, ctx.Err()
}

func (d *driver) readOneFinal(ctx context.Context, c *loadgen.Client, user string, hdr []loadgen.Header) finalRead {
	deadline := time.Now().Add(finalReadTimeout)
	for {
		resp, _ := c.Do(&loadgen.Request{Method: "GET", Path: d.api + "/" + user, Header: hdr, Expect: []int{200}})
		if resp != nil && resp.Status == 200 {
			if v, name, ok := userVersion(resp.Body); ok {
				return finalRead{ok: true, value: name, version: v}
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return finalRead{}
		}
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

// maxExamples bounds the violations the result describes.
const maxExamples = 10

// checkConsistency checks h and the final reads (see the package's
// consistency check above).
func checkConsistency(h *history, finals map[string]finalRead, start time.Time) *reports.Consistency {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := &reports.Consistency{}
	example := func(format string, args ...any) {
		if len(c.Examples) < maxExamples {
			c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
		}
	}
	at := func(t time.Time) string { return fmt.Sprintf("%.3fs", t.Sub(start).Seconds()) }

	// Per user: acknowledged writes by acknowledgement time, and what each
	// value's version is.
	acked := map[string][]*writeEvent{}
	written := map[string]map[string]*writeEvent{} // user → value → write
	versionOf := map[string]map[string]time.Time{}
	known := func(u, value string, v time.Time) {
		if versionOf[u] == nil {
			versionOf[u] = map[string]time.Time{}
		}
		versionOf[u][value] = v
	}
	for i := range h.writes {
		w := &h.writes[i]
		if written[w.user] == nil {
			written[w.user] = map[string]*writeEvent{}
		}
		written[w.user][w.value] = w
		switch {
		case w.acked:
			c.Writes++
			acked[w.user] = append(acked[w.user], w)
			known(w.user, w.value, w.version)
		case !w.failed:
			c.Indeterminate++
		}
	}
	for i := range h.reads {
		r := &h.reads[i]
		if r.ok && r.own {
			known(r.user, r.value, r.version)
		}
	}
	for _, ws := range acked {
		slices.SortFunc(ws, func(a, b *writeEvent) int { return a.end.Compare(b.end) })
	}
	// version returns the version a read saw: its own for an own read;
	// for an anonymous one, that of the write of its value, the zero time
	// for a value no write of the run made (it predates the run), and
	// ok false for one of a write whose version nobody learned.
	version := func(r *readEvent) (time.Time, bool) {
		if r.own {
			return r.version, true
		}
		if v, ok := versionOf[r.user][r.value]; ok {
			return v, true
		}
		if _, ok := written[r.user][r.value]; ok {
			return time.Time{}, false
		}
		return time.Time{}, true
	}
	// lastAckedBefore is the newest version of user u acknowledged before t
	// (to client, when read-your-writes is promised per client).
	lastAckedBefore := func(u string, t time.Time, client int) (*writeEvent, bool) {
		var best *writeEvent
		for _, w := range acked[u] {
			if !w.end.Before(t) {
				break
			}
			if h.perClient && w.client != client {
				continue
			}
			if best == nil || w.version.After(best.version) {
				best = w
			}
		}
		return best, best != nil
	}

	type clientUser struct {
		client int
		user   string
		own    bool
	}
	seen := map[clientUser]*readEvent{}
	anon := map[string][]*readEvent{}
	reads := make([]*readEvent, len(h.reads))
	for i := range h.reads {
		reads[i] = &h.reads[i]
	}
	slices.SortFunc(reads, func(a, b *readEvent) int { return a.begin.Compare(b.begin) })
	for _, r := range reads {
		if r.own {
			c.OwnReads++
		} else {
			c.AnonymousReads++
		}
		if !r.ok {
			c.FailedReads++
			continue
		}
		v, ok := version(r)
		if !ok {
			continue
		}
		if !r.own {
			anon[r.user] = append(anon[r.user], r)
		}
		if r.own {
			if w, ok := lastAckedBefore(r.user, r.begin, r.client); ok && v.Before(w.version) {
				c.ReadYourWrites++
				example("read-your-writes: client %d read user %s at %s and saw %s, older than its write acknowledged at %s (%s)",
					r.client, r.user, at(r.begin), r.version.Format(time.RFC3339Nano), at(w.end), w.version.Format(time.RFC3339Nano))
			}
		}
		k := clientUser{r.client, r.user, r.own}
		if prev := seen[k]; prev != nil && prev.end.Before(r.begin) {
			pv, _ := version(prev)
			if v.Before(pv) {
				if r.own {
					c.Monotonic++
					example("monotonic reads: client %d read user %s at %s and saw version %s after seeing %s at %s",
						r.client, r.user, at(r.begin), v.Format(time.RFC3339Nano), pv.Format(time.RFC3339Nano), at(prev.begin))
				} else {
					c.AnonymousMonotonic++
				}
				continue // keep the newer one as the client's high mark
			}
		}
		seen[k] = r
	}

	// Anonymous staleness, per acknowledged write with anonymous reads of
	// its user after it.
	var samples []float64
	for u, ws := range acked {
		rs := anon[u]
		for _, w := range ws {
			i := sort.Search(len(rs), func(i int) bool { return rs[i].begin.After(w.end) })
			if i == len(rs) {
				continue
			}
			stale := time.Duration(0)
			for _, r := range rs[i:] {
				if v, _ := version(r); v.Before(w.version) {
					stale = r.begin.Sub(w.end)
				}
			}
			samples = append(samples, float64(stale)/float64(time.Millisecond))
		}
	}
	c.Staleness = staleness(samples)

	// The final state.
	users := make([]string, 0, len(finals))
	for u := range finals {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		f := finals[u]
		c.FinalReads++
		if !f.ok {
			c.FinalReadFailures++
			example("final read: user %s could not be read after the run", u)
			continue
		}
		var last *writeEvent
		for _, w := range acked[u] {
			if f.version.Before(w.version) {
				c.LostWrites++
				example("lost write: user %s's write acknowledged at %s (version %s) is not in the final state (version %s)",
					u, at(w.end), w.version.Format(time.RFC3339Nano), f.version.Format(time.RFC3339Nano))
			}
			if last == nil || w.version.After(last.version) {
				last = w
			}
		}
		if w := written[u][f.value]; w != nil && !w.acked && last != nil && w.begin.Before(last.end) && f.version.After(last.version) {
			c.LateOverwrites++
			example("late overwrite: user %s's final value is from a write sent at %s that never got an answer, over the write acknowledged at %s",
				u, at(w.begin), at(last.end))
		}
	}
	return c
}

// staleness summarises per-write staleness samples in milliseconds.
func staleness(ms []float64) reports.Staleness {
	s := reports.Staleness{Samples: int64(len(ms))}
	if len(ms) == 0 {
		return s
	}
	sort.Float64s(ms)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ms)))) - 1
		return math.Round(ms[max(i, 0)]*100) / 100
	}
	s.P50, s.P99, s.Max = q(0.50), q(0.99), math.Round(ms[len(ms)-1]*100)/100
	return s
}

// observedConsistency is the consistency check as thresholds judge it.
func observedConsistency(c *reports.Consistency) *scenarios.Consistency {
	if c == nil {
		return nil
	}
	ms := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	return &scenarios.Consistency{
		LostWrites: c.LostWrites, RYWViolations: c.ReadYourWrites, MonotonicViolations: c.Monotonic,
		LateOverwrites: c.LateOverwrites, FinalReadFailures: c.FinalReadFailures,
		StalenessP99: ms(c.Staleness.P99), StalenessMax: ms(c.Staleness.Max),
	}
}
