package topologies

import (
	"reflect"
	"testing"
)

func TestBreakerTransitions(t *testing.T) {
	base := map[breakerKey]float64{
		{"l2", "closed", "open", "app-1"}:        2,
		{"l2", "open", "half-open", "app-1"}:     2,
		{"ratelimit", "closed", "open", "app-1"}: 1,
	}
	final := map[breakerKey]float64{
		{"l2", "closed", "open", "app-1"}:             3, // one more
		{"l2", "closed", "open", "app-2"}:             1, // new series
		{"l2", "open", "half-open", "app-1"}:          2, // unchanged: left out
		{"ratelimit", "closed", "open", "app-1"}:      1,
		{"ratelimit", "half-open", "closed", "app-3"}: 0, // restarted instance, nothing since
		{"l2", "half-open", "closed", "app-3"}:        1, // restarted: 1 since its reset
	}
	base[breakerKey{"l2", "half-open", "closed", "app-3"}] = 4
	got := breakerTransitions(base, final)
	want := []BreakerTransitions{
		{Breaker: "l2", From: "closed", To: "open", Count: 2, Instances: 2},
		{Breaker: "l2", From: "half-open", To: "closed", Count: 1, Instances: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("breakerTransitions = %+v, want %+v", got, want)
	}
	if got := breakerTransitions(base, base); got == nil || len(got) != 0 {
		t.Errorf("no change: got %#v, want an empty, non-nil slice", got)
	}
	if got := breakerTransitions(nil, final); got != nil {
		t.Errorf("no baseline: got %+v, want nil", got)
	}
}
