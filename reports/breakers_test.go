package reports

import (
	"bytes"
	"strings"
	"testing"
)

// The breakers section lists each change with its count and instances,
// and says so when no breaker changed state.
func TestRenderBreakers(t *testing.T) {
	r := &Result{Phase: 3, Scenario: "redis-kill", Breakers: &Breakers{Transitions: []BreakerTransition{
		{Breaker: "l2", From: "closed", To: "open", Count: 3, Instances: 3},
		{Breaker: "l2", From: "half-open", To: "closed", Count: 3, Instances: 3},
		{Breaker: "ratelimit", From: "closed", To: "open", Count: 1200, Instances: 3},
	}}}
	var b bytes.Buffer
	if err := RenderMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Circuit breakers",
		"| `l2` | closed → open | 3 | 3 |",
		"| `ratelimit` | closed → open | 1,200 | 3 |",
		"Breakers that changed state: l2, ratelimit; opened 1,203 times in all.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown report lacks %q:\n%s", want, md)
		}
	}
	r.Breakers = &Breakers{Transitions: []BreakerTransition{}}
	b.Reset()
	if err := RenderMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "No breaker changed state during the measured part.") {
		t.Errorf("no change: the report does not say so:\n%s", b.String())
	}
}
