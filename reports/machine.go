package reports

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// DetectMachine describes the machine the process runs on: CPU model (from
// /proc/cpuinfo), cores, memory (from /proc/meminfo), Go version, the git
// commit of the working directory's checkout ("-dirty" when it has
// uncommitted changes, empty outside a checkout), OS (/etc/os-release),
// kernel release and hostname. What cannot be found stays empty: a report
// from a machine without /proc is still a report.
func DetectMachine(ctx context.Context) Machine {
	m := Machine{
		Cores:     runtime.NumCPU(),
		GoVersion: runtime.Version(),
		Arch:      runtime.GOARCH,
		OS:        runtime.GOOS,
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		m.CPU = cpuModel(f)
		f.Close()
	}
	if m.CPU == "" {
		m.CPU = runtime.GOARCH
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		m.MemoryBytes = memTotal(f)
		f.Close()
	}
	if f, err := os.Open("/etc/os-release"); err == nil {
		if name := osRelease(f); name != "" {
			m.OS = name
		}
		f.Close()
	}
	m.Kernel = kernelRelease(ctx)
	m.Hostname, _ = os.Hostname()
	m.GitCommit = gitCommit(ctx)
	return m
}

// cpuModel finds the CPU model in /proc/cpuinfo ("model name" on x86,
// "Model" or "Hardware" on some ARM kernels).
func cpuModel(r io.Reader) string {
	var fallback string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch key {
		case "model name":
			return value
		case "Model", "Hardware", "cpu model":
			if fallback == "" {
				fallback = value
			}
		}
	}
	return fallback
}

// memTotal reads MemTotal (in kB) from /proc/meminfo, in bytes.
func memTotal(r io.Reader) int64 {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return 0
		}
		return kb * 1024
	}
	return 0
}

// osRelease reads PRETTY_NAME from /etc/os-release.
func osRelease(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			if u, err := strconv.Unquote(v); err == nil {
				return u
			}
			return strings.Trim(v, `"'`)
		}
	}
	return ""
}

// kernelRelease is what `uname -r` prints.
func kernelRelease(ctx context.Context) string {
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return output(ctx, "uname", "-r")
}

// gitCommit is the short HEAD commit, with "-dirty" when the work tree has
// changes; empty when git or the checkout is missing.
func gitCommit(ctx context.Context) string {
	commit := output(ctx, "git", "rev-parse", "--short", "HEAD")
	if commit == "" {
		return ""
	}
	if output(ctx, "git", "status", "--porcelain", "--untracked-files=no") != "" {
		commit += "-dirty"
	}
	return commit
}

// output returns a command's trimmed output, or "" if it fails or takes more
// than a few seconds.
func output(ctx context.Context, name string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// CommandLine joins args into one line a shell would split back into the
// same args, quoting those that need it.
func CommandLine(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.ContainsRune("-_./:=,+@%", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
