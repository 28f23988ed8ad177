package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync/atomic"
)

// Op is one kind of operation in a load mix, such as "read user" or
// "update then read". Each time the executor starts an operation it picks one
// Op at random by weight and calls its Do on a worker.
//
// Do issues one or more requests through c in sequence; each c.Do is timed
// and recorded under its request's name, and the operation as a whole is
// timed and recorded under the Op's Name. Do checks what it needs to and
// returns an error when the operation failed: errors from c.Do are counted
// where they happened; any other error counts under ClassCheck. Do must
// return promptly once ctx is done.
//
// A read-after-write operation, counting stale reads:
//
//	loadgen.Op{Name: "update-then-read", Weight: 5, Do: func(ctx context.Context, c *loadgen.Client, s *loadgen.Session) error {
//		id, name := pickUser(s.Rand), randomName(s.Rand)
//		if _, err := c.Do(&loadgen.Request{Name: "PUT /users/{id}", Method: "PUT", Path: "/api/users/" + id,
//			Body: []byte(`{"profile":{"name":"` + name + `"}}`)}); err != nil {
//			return err
//		}
//		resp, err := c.Do(&loadgen.Request{Name: "GET /users/{id}", Path: "/api/users/" + id})
//		if err != nil {
//			return err
//		}
//		if !bytes.Contains(resp.Body, []byte(name)) {
//			s.Counter("stale_reads").Add(1)
//		}
//		return nil
//	}}
type Op struct {
	// Name identifies the operation in the result.
	Name string
	// Weight is the operation's share of the mix, relative to the other
	// operations' weights; it must be positive.
	Weight int
	// Do performs one operation.
	Do func(ctx context.Context, c *Client, s *Session) error
}

// Session is the state of one worker (one virtual user): its identity, its
// random numbers and its custom counters. A worker runs one operation at a
// time, so a Session needs no locking.
type Session struct {
	// ID numbers the workers of a run from 0; in a run split between
	// generators, across all of them (see Shard.Worker).
	ID int
	// Rand is the worker's own random source (PCG), seeded from the run's
	// seed and ID, for choosing keys and payloads.
	Rand *rand.Rand
	// Value holds whatever the driver keeps per virtual user, such as a
	// user id and token set by Config.Setup.
	Value any

	counters map[string]*Counter
}

// Counter is a named custom count, such as stale reads, summed over all
// workers into Result.Counters.
type Counter struct {
	n atomic.Int64
}

// Add adds delta to the counter.
func (c *Counter) Add(delta int64) { c.n.Add(delta) }

// Load returns the count of this worker's counter.
func (c *Counter) Load() int64 { return c.n.Load() }

// Counter returns the session's counter named name, creating it at zero.
// Every name used in a run appears in Result.Counters.
func (s *Session) Counter(name string) *Counter {
	c := s.counters[name]
	if c == nil {
		if s.counters == nil {
			s.counters = make(map[string]*Counter)
		}
		c = new(Counter)
		s.counters[name] = c
	}
	return c
}

// mix picks operations by weight.
type mix struct {
	ops []Op
	cum []int // cumulative weights
}

func newMix(ops []Op) (*mix, error) {
	if len(ops) == 0 {
		return nil, errors.New("no operations")
	}
	m := &mix{ops: ops}
	seen := make(map[string]bool)
	total := 0
	for i, op := range ops {
		switch {
		case op.Name == "":
			return nil, fmt.Errorf("operation %d: no name", i)
		case seen[op.Name]:
			return nil, fmt.Errorf("operation %q: duplicate name", op.Name)
		case op.Weight <= 0:
			return nil, fmt.Errorf("operation %q: weight %d, want > 0", op.Name, op.Weight)
		case op.Do == nil:
			return nil, fmt.Errorf("operation %q: no Do", op.Name)
		}
		seen[op.Name] = true
		total += op.Weight
		m.cum = append(m.cum, total)
	}
	return m, nil
}

// pick returns the index of an operation chosen by weight.
func (m *mix) pick(r *rand.Rand) int {
	if len(m.cum) == 1 {
		return 0
	}
	x := r.IntN(m.cum[len(m.cum)-1])
	if len(m.cum) <= 8 {
		for i, c := range m.cum {
			if x < c {
				return i
			}
		}
	}
	return sort.SearchInts(m.cum, x+1)
}

// newRand returns the PCG source for stream (0 is the scheduler, worker i
// uses i+1) of a run with the given seed.
func newRand(seed uint64, stream int) *rand.Rand {
	return rand.New(rand.NewPCG(seed, uint64(stream)*0x9E3779B97F4A7C15+1))
}
