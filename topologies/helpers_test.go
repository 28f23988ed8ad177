package topologies_test

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"scalelab/server/app"
	"scalelab/server/jobs"
	"scalelab/topologies"
)

// commandFlags are the flag sets phase files are checked against.
func commandFlags() topologies.Flags {
	server, _ := app.FlagSet("server")
	worker, _ := jobs.WorkerFlagSet("worker")
	return topologies.Flags{Server: server, Worker: worker}
}

// processExists reports whether pid names a live, non-zombie process.
func processExists(pid int) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func listeningOn(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
