//go:build linux

package loadgen

import (
	"syscall"
	"time"
	"unsafe"
)

// fineSleep sleeps for d, which is short (under a few milliseconds), with
// the kernel's timer precision: about 60µs late, where Go's timers wake up
// to a millisecond late when the process is otherwise idle (the runtime
// waits for them in epoll_pwait, whose timeout is in milliseconds), and that
// lateness would be charged to every request's latency.
//
// The system call is made raw, without telling the scheduler: the P stays
// with the sleeping goroutine, so sysmon sees no blocking system call to
// retake it from. With an ordinary syscall.Nanosleep it retook the P on
// nearly every sleep and then polled every 20µs, which cost about 15% more
// of a core at 10k arrivals a second (measured on the 2-core test box). The
// pacer yields (runtime.Gosched) before it sleeps, so the worker it just
// woke is not left waiting behind it on the same P.
func fineSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		_, _, e := syscall.RawSyscall(syscall.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&ts)), 0)
		if e != syscall.EINTR {
			return
		}
	}
}
