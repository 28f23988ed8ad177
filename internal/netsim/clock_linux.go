package netsim

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// A clock waits for a chunk's due time with the kernel's high-resolution
// timers. Go's own timers cannot add a quarter of a millisecond: while
// every thread of a process is idle, the runtime sleeps in epoll_wait,
// whose timeout counts whole milliseconds (runtime/netpoll_epoll.go rounds
// any shorter wait up to 1 ms), so a 250 µs timer fires after about a
// millisecond and an in-DC hop would cost four times what the profile
// says. A timerfd is a file descriptor that becomes readable at its
// expiry, to within tens of microseconds; registered with the runtime's
// poller, it wakes that epoll_wait on time.
//
// One clock serves one direction of one connection (one Pipe) and is not
// safe for concurrent use.
type clock struct {
	fd  int      // the timerfd, armed directly (os.File.Fd would make it blocking)
	f   *os.File // the same descriptor, read through the runtime's poller; nil without a timerfd
	buf [8]byte
}

// newClock returns a clock on a timerfd, or, with the reason, one on Go's
// timers when the kernel refuses a timerfd (out of descriptors).
func newClock() (*clock, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return &clock{fd: -1}, fmt.Errorf("timerfd: %w", err)
	}
	return &clock{fd: fd, f: os.NewFile(uintptr(fd), "timerfd")}, nil
}

// sleepUntil waits until due. The wait cannot be interrupted, so callers
// keep it short (LatencyToxic.Pipe waits on a Go timer, which it can
// interrupt, until shortly before due).
func (c *clock) sleepUntil(due time.Time) {
	d := time.Until(due)
	if d <= 0 {
		return
	}
	if c.f != nil {
		spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
		if err := unix.TimerfdSettime(c.fd, 0, &spec, nil); err == nil {
			// The file is non-blocking and in the runtime's poller: Read
			// parks this goroutine, not a thread, until the expiry.
			if _, err := c.f.Read(c.buf[:]); err == nil {
				return
			}
		}
	}
	time.Sleep(time.Until(due))
}

// close releases the timerfd.
func (c *clock) close() {
	if c.f != nil {
		c.f.Close()
	}
}

// SetNice gives every thread of this process the nice value n (-20 to
// 19; lower is more CPU). Linux keeps a nice value per thread, and a new
// thread inherits its creator's, so once every existing thread has it the
// whole process keeps it. The proxies stand for a network, which does not
// queue behind the servers for CPU: on a saturated machine, each chunk
// waiting for the proxy process to be scheduled would add a scheduling
// delay per link crossed that no real network has.
func SetNice(n int) error {
	// A thread may be created while the others are set, by one not yet
	// set: go over them again until a pass finds no thread it had not set.
	done := map[int]bool{}
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("nice %d: %w", n, err)
		}
		fresh := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || done[tid] {
				continue
			}
			if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("nice %d: thread %d: %w", n, tid, err)
			}
			done[tid], fresh = true, true
		}
		if !fresh {
			return nil
		}
	}
}
