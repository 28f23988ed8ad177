//go:build linux

package loadgen

import (
	"syscall"
	"time"
)

// fineSleep sleeps for d with the kernel's timer precision (tens of
// microseconds). Go's own timers wake up to a millisecond late when the
// process is otherwise idle, because the runtime waits for them in
// epoll_pwait, whose timeout is in milliseconds; at a few thousand arrivals
// a second that lateness would be charged to every request's latency. The
// sleeping thread is in a system call, so the runtime hands its P to other
// goroutines meanwhile.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
