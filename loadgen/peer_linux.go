//go:build linux

package loadgen

import (
	"net"
	"syscall"
)

// peerClosed reports whether conn can carry no next request: a peek that
// does not wait finds the server's end of the stream, a reset, or bytes
// that no request asked for. A connection with nothing to read, or one
// that cannot be asked, counts as open.
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
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Open only with nothing to read (EAGAIN is EWOULDBLOCK on
		// Linux). Otherwise: 0 bytes are the server's FIN, an error a
		// reset, and bytes no request asked for (a 408, say, before
		// closing) leave no next response to read either.
		closed = err != syscall.EAGAIN && err != syscall.EINTR
		return true // never wait for readability
	})
	return closed
}
