//go:build linux

package loadgen

import (
	"net"
	"syscall"
)

// peerClosed reports whether the server has closed conn's other end: a
// peek that does not wait finds the end of the stream. A connection with
// nothing to read, or one that cannot be asked, counts as open.
func peerClosed(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	_ = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil
		return true // never wait for readability
	})
	return closed
}
