//go:build !linux

package loadgen

import "time"

// fineSleep sleeps for d; see the Linux version for why it exists.
func fineSleep(d time.Duration) { time.Sleep(d) }
