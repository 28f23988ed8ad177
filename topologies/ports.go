package topologies

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"
)

// Ports are picked at random below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range starts at 32768 by default), so that
// outgoing client connections never hold a port a component is about to
// bind, and two test packages picking at the same time rarely collide.
const (
	portLow  = 15000
	portHigh = 32000
)

// portPicker hands out free loopback ports, never the same one twice in
// one run.
type portPicker struct {
	mu   sync.Mutex
	used map[int]bool
}

func newPortPicker() *portPicker { return &portPicker{used: map[int]bool{}} }

// pick returns a port on 127.0.0.1 that nothing listens on right now.
func (pp *portPicker) pick() (int, error) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for range 200 {
		port := portLow + rand.IntN(portHigh-portLow)
		if pp.used[port] || !portFree(port) {
			continue
		}
		pp.used[port] = true
		return port, nil
	}
	return 0, errors.New("no free port found on 127.0.0.1 after 200 tries")
}

// portFree reports whether port can be bound on 127.0.0.1.
func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// listening reports whether something accepts connections on addr.
func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
