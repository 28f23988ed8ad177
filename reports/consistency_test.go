package reports

import (
	"bytes"
	"strings"
	"testing"
)

// The consistency section says what was checked, each guarantee's
// violations and verdict, the staleness, and the examples.
func TestRenderConsistency(t *testing.T) {
	r := &Result{Phase: 3, Scenario: "primary-pause", Consistency: &Consistency{
		Writes: 1200, Indeterminate: 14, OwnReads: 600, AnonymousReads: 2400, FailedReads: 3,
		LostWrites: 1, FinalReads: 64, Examples: []string{"lost write: user u's write acknowledged at 6.100s is not in the final state"},
		Staleness: Staleness{Samples: 900, P50: 0, P99: 412.5, Max: 5003},
	}}
	var b bytes.Buffer
	if err := RenderMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	for _, want := range []string{
		"## Consistency",
		"1,200 acknowledged writes",
		"| lost acknowledged writes | 1 | VIOLATED |",
		"| read-your-writes (own reads) | 0 | held |",
		"p99 412.5 ms, max 5003 ms",
		"- lost write: user u's write",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the Markdown report lacks %q:\n%s", want, md)
		}
	}
	b.Reset()
	if err := RenderHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Consistency") {
		t.Errorf("the HTML report has no consistency section")
	}
}
