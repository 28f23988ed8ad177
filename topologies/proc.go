package topologies

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procSpec says how to start one program. It is kept so that a component
// can be restarted with exactly the same command line.
type procSpec struct {
	path    string
	args    []string
	dir     string   // working directory; "" means the component's directory
	env     []string // added to a scrubbed copy of the runner's environment
	logPath string   // stdout and stderr are appended here
	// asPostgres runs the program as the postgres system user when the
	// runner is root: initdb, postgres and pgbouncer refuse to run as root.
	asPostgres bool
	// dieWithParent has the kernel kill the program when the runner's
	// process dies (tests killed by go test -timeout); never for `scalelab
	// up`, whose components outlive it.
	dieWithParent bool
}

// process is one OS process the runner started, or one it adopted from a
// topology.json written by another scalelab process.
type process struct {
	pid int
	// startTicks is field 22 of /proc/<pid>/stat. Together with the PID it
	// names the process: a PID reused by an unrelated program after ours
	// exited has a different start time, so we never signal a stranger.
	startTicks uint64
	// group is true when the process leads its own process group, so that
	// signals go to the whole group (varnishd's worker, postgres backends).
	group bool
	// done is closed once Wait has reaped our child; nil for adopted
	// processes, which are not our children.
	done chan struct{}
}

// startProcess starts spec in its own process group and returns once the
// kernel has created it; it does not wait for readiness. The goroutine that
// reaps the child ends when the child exits, which every stop path ensures.
func startProcess(spec procSpec) (*process, error) {
	logf, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	defer logf.Close() // the child holds its own copy of the descriptor

	cmd := exec.Command(spec.path, spec.args...)
	cmd.Dir = spec.dir
	cmd.Env = append(childEnv(), spec.env...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Its own process group: a Ctrl-C in the terminal reaches the runner
	// only, and the runner stops the children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if spec.dieWithParent {
		// Go keeps the starting thread alive as long as the process runs
		// (no goroutine here locks it), so this fires on process exit.
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if spec.asPostgres {
		cred, err := postgresCredential()
		if err != nil {
			return nil, err
		}
		cmd.SysProcAttr.Credential = cred
		if cred != nil {
			cmd.Env = append(cmd.Env, "HOME="+spec.dir, "USER=postgres", "LOGNAME=postgres")
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(spec.path), err)
	}
	p := &process{pid: cmd.Process.Pid, group: true, done: make(chan struct{})}
	if st, err := readProcStat(p.pid); err == nil {
		p.startTicks = st.startTicks
	}
	go func() {
		_ = cmd.Wait() // the exit status is in the log; readiness reports it
		close(p.done)
	}()
	return p, nil
}

// childEnv is the runner's environment without SCALELAB_* variables: the
// server reads its flags from those too, and a stray SCALELAB_DB in the
// user's shell must not redirect an app instance.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SCALELAB_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// postgresCredential returns the postgres user's credential when running as
// root, nil otherwise (an ordinary user runs Postgres as itself).
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	uid, gid, err := postgresIDs()
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func postgresIDs() (uid, gid int, err error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return 0, 0, fmt.Errorf("look up the postgres user (created by the postgresql-15 package; run `make deps`): %w", err)
	}
	uid, err = strconv.Atoi(u.Uid)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres uid %q: %w", u.Uid, err)
	}
	gid, err = strconv.Atoi(u.Gid)
	if err != nil {
		return 0, 0, fmt.Errorf("postgres gid %q: %w", u.Gid, err)
	}
	return uid, gid, nil
}

// chownPostgres hands dir (recursively) to the postgres user when root.
func chownPostgres(dir string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	uid, gid, err := postgresIDs()
	if err != nil {
		return err
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, gid)
	})
}

// adoptProcess returns a handle on a process started elsewhere (another
// scalelab process, or a daemon that forked itself). startTicks 0 means
// "whatever runs under pid now".
func adoptProcess(pid int, startTicks uint64, group bool) *process {
	return &process{pid: pid, startTicks: startTicks, group: group}
}

// alive reports whether the process still runs. A zombie counts as gone:
// daemons reparented to PID 1 may wait there a moment before being reaped.
func (p *process) alive() bool {
	if p == nil || p.pid <= 0 {
		return false
	}
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
		}
	}
	st, err := readProcStat(p.pid)
	if err != nil {
		return false
	}
	if st.state == 'Z' || st.state == 'X' {
		return false
	}
	return p.startTicks == 0 || st.startTicks == p.startTicks
}

// signal sends sig to the process, to its process group when it leads one,
// and to every descendant that left the group: PostgreSQL's backends each
// call setsid(), so the postmaster's group holds only the postmaster.
// The process itself is signalled first, so that a stopped parent cannot
// fork or respawn children meanwhile. Signalling a process that is gone
// is not an error.
func (p *process) signal(sig syscall.Signal) error {
	if !p.alive() {
		return nil
	}
	target := p.pid
	if p.group {
		target = -p.pid
	}
	if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to pid %d: %w", sig, p.pid, err)
	}
	for _, st := range descendants(allProcStats(), p.pid) {
		if !p.group || st.pgrp != p.pid {
			_ = syscall.Kill(st.pid, sig)
		}
	}
	return nil
}

// wait blocks until the process is gone or ctx ends.
func (p *process) wait(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for p.alive() {
		var done <-chan struct{}
		if p.done != nil {
			done = p.done
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pid %d still running: %w", p.pid, ctx.Err())
		case <-done:
		case <-t.C:
		}
	}
	return nil
}

// terminate stops the process: sig (SIGCONT too, so a paused process can
// act on it), then SIGKILL for the group after grace. It returns once the
// process is gone.
func (p *process) terminate(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	if !p.alive() {
		p.killStragglers()
		return nil
	}
	if err := p.signal(sig); err != nil {
		return err
	}
	_ = p.signal(syscall.SIGCONT)
	wctx, cancel := context.WithTimeout(ctx, grace)
	err := p.wait(wctx)
	cancel()
	if err == nil {
		p.killStragglers()
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	wctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.wait(wctx); err != nil {
		return err
	}
	p.killStragglers()
	return nil
}

// killStragglers kills what is left of the process group once its leader
// is gone (a worker child that outlived its parent). It only acts on
// processes whose group id is this process's PID and that started after it.
func (p *process) killStragglers() {
	if !p.group || p.pid <= 0 {
		return
	}
	for _, st := range groupMembers(p.pid) {
		if st.startTicks >= p.startTicks {
			_ = syscall.Kill(st.pid, syscall.SIGKILL)
		}
	}
}

// procStat holds the fields of /proc/<pid>/stat the runner uses.
type procStat struct {
	pid        int
	state      byte
	ppid       int
	pgrp       int
	session    int
	utime      uint64 // clock ticks
	stime      uint64
	cutime     uint64 // reaped children
	cstime     uint64
	startTicks uint64
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(pid, b)
}

// parseProcStat parses a /proc/<pid>/stat line. The command name may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseProcStat(pid int, b []byte) (procStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+2:]))
	// f[0] is field 3 (state); field n is f[n-3].
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	num := func(n int) uint64 {
		v, _ := strconv.ParseUint(f[n-3], 10, 64)
		return v
	}
	return procStat{
		pid:        pid,
		state:      f[0][0],
		ppid:       int(num(4)),
		pgrp:       int(num(5)),
		session:    int(num(6)),
		utime:      num(14),
		stime:      num(15),
		cutime:     num(16),
		cstime:     num(17),
		startTicks: num(22),
	}, nil
}

// allProcStats reads the stat of every process on the machine.
func allProcStats() []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(pid); err == nil {
			out = append(out, st)
		}
	}
	return out
}

// descendants lists the live processes below pid in the process tree.
func descendants(stats []procStat, pid int) []procStat {
	children := map[int][]procStat{}
	for _, st := range stats {
		if st.state != 'Z' && st.state != 'X' {
			children[st.ppid] = append(children[st.ppid], st)
		}
	}
	var out []procStat
	queue := []int{pid}
	for len(queue) > 0 {
		next := queue[0]
		queue = queue[1:]
		for _, c := range children[next] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

// groupMembers lists the live (non-zombie) processes whose process group is pgid.
func groupMembers(pgid int) []procStat {
	var out []procStat
	for _, st := range allProcStats() {
		if st.pgrp == pgid && st.state != 'Z' && st.state != 'X' {
			out = append(out, st)
		}
	}
	return out
}

// clockTicks is USER_HZ, which Linux fixes at 100 for /proc on every
// architecture scalelab runs on.
const clockTicks = 100
