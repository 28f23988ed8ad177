package topologies

import (
	"cmp"
	"context"
	"maps"
	"math"
	"slices"
	"strings"
)

// BreakerTransitions counts one kind of change of state of one kind of
// circuit breaker over a run, summed over the app instances: the L2
// cache's breaker ("l2", which also guards the read-your-writes markers)
// and the rate limiter's ("ratelimit"), each in front of Redis. A breaker
// that flaps shows as many closed→open changes where one fault should
// make one per instance.
type BreakerTransitions struct {
	Breaker  string
	From, To string
	Count    uint64
	// Instances is how many app instances made this change at least once.
	Instances int
}

// breakerQueries read the breakers' cumulative transition counters, per
// instance, through Prometheus.
var breakerQueries = []struct{ breaker, query string }{
	{"", `sum by (component, tier, from, to) (scalelab_cache_breaker_transitions_total)`},
	{"ratelimit", `sum by (component, from, to) (scalelab_ratelimit_breaker_transitions_total)`},
}

// breakerKey names one instance's counter of one change of one breaker.
type breakerKey struct {
	breaker, from, to, component string
}

// readBreakers reads the breakers' transition counters, per instance; nil
// when the topology has no Redis (no breakers) or no Prometheus, or
// Prometheus could not be asked (told to problem).
func (s *Sampler) readBreakers(ctx context.Context) map[breakerKey]float64 {
	if s.top.Prometheus() == nil && s.top.PrometheusURL == "" {
		return nil
	}
	if !slices.ContainsFunc(s.top.Components(), func(c ComponentInfo) bool { return c.Kind == "redis" }) {
		return nil
	}
	out := map[breakerKey]float64{}
	for _, q := range breakerQueries {
		vec, err := promQuery(ctx, s.top.PrometheusURL, q.query)
		if err != nil {
			s.problem("circuit breakers from prometheus: %v", err)
			return nil
		}
		for _, v := range vec {
			breaker := q.breaker
			if breaker == "" {
				breaker = v.labels["tier"]
			}
			out[breakerKey{breaker, v.labels["from"], v.labels["to"], v.labels["component"]}] += v.value
		}
	}
	return out
}

// breakerTransitions turns the readings at the start and the end of a
// run into the changes made in between, by breaker and change, in a
// stable order; nil when either reading is missing, empty when no
// breaker changed state.
func breakerTransitions(base, final map[breakerKey]float64) []BreakerTransitions {
	if base == nil || final == nil {
		return nil
	}
	byChange := map[breakerKey]*BreakerTransitions{} // component left empty
	for key, v := range final {
		n := uint64(math.Round(counterDelta(base[key], v)))
		if n == 0 {
			continue
		}
		k := breakerKey{breaker: key.breaker, from: key.from, to: key.to}
		t := byChange[k]
		if t == nil {
			t = &BreakerTransitions{Breaker: k.breaker, From: k.from, To: k.to}
			byChange[k] = t
		}
		t.Count += n
		t.Instances++
	}
	out := []BreakerTransitions{}
	for _, k := range slices.SortedFunc(maps.Keys(byChange), func(a, b breakerKey) int {
		return cmp.Or(strings.Compare(a.breaker, b.breaker), strings.Compare(a.from, b.from), strings.Compare(a.to, b.to))
	}) {
		out = append(out, *byChange[k])
	}
	return out
}
