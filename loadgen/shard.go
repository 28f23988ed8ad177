package loadgen

import (
	"fmt"
	"strconv"
	"strings"
)

// Shard makes a run one of Count load generators that split one run
// between them, on one machine or several, so that together they make
// exactly the run one generator would have made with the same Config:
//
//   - Open models: every generator walks the same schedule and draws every
//     arrival's operation from the same seed, and generator Index sends
//     arrival n when n mod Count == Index. Each so takes 1/Count of the rate,
//     and the union of the shards' arrivals, operation by operation, is the
//     single run's.
//   - The closed model: generator Index runs its share of the virtual users
//     (VUs/Count, the first VUs mod Count generators one more). How many
//     operations closed-model users complete depends on latency, so only
//     the open models' counts add up exactly.
//   - Workers are numbered across the generators: worker k of generator
//     Index is Session.ID k*Count+Index, with that ID's random source, so
//     drivers that derive users, addresses or names from Session.ID give
//     each generator a disjoint share.
//
// Results of the shards merge exactly with Result.Merge: counts add up and
// histograms merge, so percentiles are those of all recorded values.
//
// The zero Shard is the whole run.
type Shard struct {
	Index, Count int
}

// ParseShard parses "i/N" (0 <= i < N), as `scalelab run --shard` takes
// it; "" is the whole run.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	is, ns, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(is)
	n, err2 := strconv.Atoi(ns)
	if !ok || err1 != nil || err2 != nil {
		return Shard{}, fmt.Errorf("shard %q: want i/N, e.g. 0/2", s)
	}
	sh := Shard{Index: i, Count: n}
	return sh, sh.Validate()
}

// Validate reports a Shard whose Index is not in [0, Count).
func (s Shard) Validate() error {
	if s == (Shard{}) {
		return nil
	}
	if s.Count < 1 || s.Index < 0 || s.Index >= s.Count {
		return fmt.Errorf("shard %d/%d: want 0 <= i < N", s.Index, s.Count)
	}
	return nil
}

// String returns "i/N", or "" for the whole run.
func (s Shard) String() string {
	if s.Count <= 1 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// Split reports whether the run is shared with other generators.
func (s Shard) Split() bool { return s.Count > 1 }

// count is Count, 1 for the zero Shard.
func (s Shard) count() int { return max(s.Count, 1) }

// Owns reports whether arrival n of the schedule is this generator's.
func (s Shard) Owns(n int64) bool { return n%int64(s.count()) == int64(s.Index) }

// Worker returns the run-wide number of this generator's k-th worker.
func (s Shard) Worker(k int) int { return k*s.count() + s.Index }

// Share returns this generator's part of n things (virtual users, users to
// sign in): n/Count, plus one for the first n mod Count generators. Things
// 0..n-1 are dealt round-robin: thing j is generator j mod Count's.
func (s Shard) Share(n int) int {
	c := s.count()
	return n/c + btoi(s.Index < n%c)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
