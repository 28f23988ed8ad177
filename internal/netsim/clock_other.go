//go:build !linux

package netsim

import (
	"errors"
	"time"
)

// clock waits on Go's timers where there is no timerfd: waits shorter
// than a millisecond then take about a millisecond while the process is
// idle (see clock_linux.go).
type clock struct{}

func newClock() (*clock, error) { return &clock{}, nil }

func (*clock) sleepUntil(due time.Time) { time.Sleep(time.Until(due)) }

func (*clock) close() {}

// SetNice is not implemented here: the proxies run at the default priority.
func SetNice(n int) error { return errors.New("nice: per-thread priorities need Linux") }
