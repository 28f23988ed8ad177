//go:build !linux

package netsim

import "time"

// clock waits on Go's timers where there is no timerfd: waits shorter
// than a millisecond then take about a millisecond while the process is
// idle (see clock_linux.go).
type clock struct{}

func newClock() (*clock, error) { return &clock{}, nil }

func (*clock) sleepUntil(due time.Time) { time.Sleep(time.Until(due)) }

func (*clock) close() {}
