//go:build linux

package loadgen

import (
	"syscall"
	"time"
)

// fineSleep sleeps for d, which is short (under a few milliseconds), with
// the kernel's timer precision: about 60µs late, where Go's timers wake up
// to a millisecond late when the process is otherwise idle (the runtime
// waits for them in epoll_pwait, whose timeout is in milliseconds), and that
// lateness would be charged to every request's latency.
//
// The sleep is an ordinary system call, which tells the scheduler that the
// thread blocks, so the P goes to other goroutines meanwhile. It was once
// made raw, keeping the P, to save sysmon's handing the P over; that
// stalled the whole process for up to 15 s at a time (a goroutine beside
// a 200/s run could not run for seconds, and one 500/s run dropped 1,996
// of its 2,000 arrivals) while saving no CPU measurably: at 500, 2,000
// and 10,000 arrivals a second against a bare server, both cost the same
// 140-190, 70-90 and 50 µs of CPU per request, with the same p50.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
