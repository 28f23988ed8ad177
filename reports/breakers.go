package reports

import (
	"fmt"
	"strings"
)

// Breakers are the app instances' circuit breakers in front of Redis over
// the measured part of a run (phases with Prometheus): their changes of
// state, summed over the instances. Transitions is empty, not absent,
// when no breaker changed state.
type Breakers struct {
	Transitions []BreakerTransition `json:"transitions"`
}

// BreakerTransition is one kind of change of one breaker: "l2" (the L2
// cache and the read-your-writes markers) or "ratelimit" (the shared rate
// limits), from one state (closed, open, half-open) to another.
type BreakerTransition struct {
	Breaker string `json:"breaker"`
	From    string `json:"from"`
	To      string `json:"to"`
	Count   int64  `json:"count"`
	// Instances is how many app instances made this change at least once.
	Instances int `json:"instances"`
}

// Opened is how many times the breakers opened from closed, over every
// breaker and instance.
func (b *Breakers) Opened() int64 {
	var n int64
	for _, t := range b.Transitions {
		if t.From == "closed" && t.To == "open" {
			n += t.Count
		}
	}
	return n
}

func breakersSection(r *Result) section {
	b := r.Breakers
	tb := &table{
		head: []string{"breaker", "change", "times", "instances"},
		num:  []bool{false, false, true, true},
	}
	var breakers []string
	for _, t := range b.Transitions {
		tb.rows = append(tb.rows, []cell{{text: t.Breaker, code: true}, c(t.From + " → " + t.To), c(groupDigits(t.Count)), c(fmt.Sprint(t.Instances))})
		if len(breakers) == 0 || breakers[len(breakers)-1] != t.Breaker {
			breakers = append(breakers, t.Breaker)
		}
	}
	s := section{
		title: "Circuit breakers",
		text: "Each app instance guards its calls to Redis with circuit breakers: `l2` for the L2 cache and the read-your-writes markers, " +
			"`ratelimit` for the shared rate limits. An open breaker skips Redis at once instead of waiting for it; after a minimum open time it lets a few probes through " +
			"(half-open) and closes only after enough of them succeed. The counts are summed over the instances; a breaker that flaps shows many changes " +
			"where one outage should make one closed → open and one half-open → closed per instance.",
		empty: "No breaker changed state during the measured part.",
	}
	if len(b.Transitions) > 0 {
		s.table = tb
		s.text += fmt.Sprintf(" Breakers that changed state: %s; opened %s times in all.", strings.Join(breakers, ", "), groupDigits(b.Opened()))
	}
	return s
}
