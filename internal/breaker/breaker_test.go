package breaker

import (
	"strings"
	"testing"
	"time"
)

func TestBreaker(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var changes []string
	b := New(3, time.Second, func(from, to State) { changes = append(changes, to.String()) })
	b.SetClock(func() time.Time { return now })

	b.Failure()
	b.Failure()
	b.Success() // resets the count
	b.Failure()
	b.Failure()
	if !b.Allow() {
		t.Fatal("breaker open after 2 consecutive failures")
	}
	b.Failure()
	if b.Allow() {
		t.Fatal("breaker closed after 3 consecutive failures")
	}
	now = now.Add(time.Second)
	if !b.Allow() {
		t.Fatal("no probe after the cooldown")
	}
	if b.Allow() {
		t.Fatal("a second caller got through while the probe runs")
	}
	b.Failure()
	if b.Allow() {
		t.Fatal("a failed probe did not reopen the breaker")
	}
	now = now.Add(time.Second)
	if !b.Allow() {
		t.Fatal("no second probe")
	}
	b.Success()
	if !b.Allow() || b.State() != Closed {
		t.Fatal("a good probe did not close the breaker")
	}
	want := "open half-open open half-open closed"
	if got := strings.Join(changes, " "); got != want {
		t.Errorf("transitions = %q, want %q", got, want)
	}
}
