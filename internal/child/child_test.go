package child

import (
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestStartReadsTheFirstLineThenTheRest(t *testing.T) {
	var mu sync.Mutex
	var first string
	var rest []string
	p, err := Start(t.Context(), Config{
		// One write: every line is in the pipe by the time the first is
		// read, so none is lost to Stop's signal.
		Name: "printf", Command: []string{"/bin/sh", "-c", `printf 'hello\none\ntwo\n'; exec sleep 60`},
		First: func(line []byte) error { first = string(line); return nil },
		Next: func(line []byte) {
			mu.Lock()
			rest = append(rest, string(line))
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := p.Pid()
	p.Stop()
	if !p.Exited() {
		t.Fatal("after Stop the program has not exited")
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("program %d still runs after Stop", pid)
	}
	mu.Lock()
	defer mu.Unlock()
	if first != "hello" || strings.Join(rest, ",") != "one,two" {
		t.Errorf("first %q, rest %q; want hello, then one and two", first, rest)
	}
}

func TestStartSaysWhyItDidNotStart(t *testing.T) {
	accept := func([]byte) error { return nil }
	for _, tc := range []struct {
		name    string
		command []string
		first   func([]byte) error
		want    string
	}{
		{"no command", nil, accept, "probe: no command"},
		{"no such program", []string{"/nonexistent/program"}, accept, "probe: start /nonexistent/program"},
		{"exits without a line", []string{"/bin/sh", "-c", "exit 0"}, accept, "probe: no first line"},
		{"a first line refused", []string{"/bin/sh", "-c", "echo nonsense; exec sleep 60"},
			func([]byte) error { return errors.New("not a header") }, `probe: first line "nonsense": not a header`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Start(t.Context(), Config{Name: "probe", Command: tc.command, First: tc.first})
			if err == nil {
				p.Stop()
				t.Fatalf("Start = nil error, want one saying %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Start: %v, want %q", err, tc.want)
			}
		})
	}
}
