package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

// The load generator against wrk: what each costs in CPU per request when
// it drives the same bare handler (the bytes of a cached GET) on 127.0.0.1.
//
//	make loadgen-vs-wrk         # 5 rounds of 5 s, the table in docs/loadgen.md
//	go test ./loadgen -run '^TestVsWrk$' -count=1 -v -vs-wrk-rounds 5 -vs-wrk-duration 5s
//
// Each round runs, one after the other on an idle machine, against one bare
// server process:
//
//   - wrk -t2 -cN (closed loop: N connections, each sends its next request
//     when the previous answer arrived);
//   - our closed model with N virtual users (ConstantVUs), the same
//     connections doing the same thing;
//   - our open model (ConstantArrivalRate) at the rate wrk just achieved:
//     what a lab run pays to keep a schedule, per request.
//
// Every tool runs in a child process of its own, and its CPU time (user +
// system, all threads) comes from the kernel: wrk's from wait4's rusage,
// ours from getrusage in the child around Run (the test binary's start-up
// is not the load generator's). The bare server's CPU per request is read
// from /proc/PID/stat around each run, for scale. The table gives every
// round and the median of each column; machine-dependent numbers are never
// pass/fail.
var (
	vsWrkRounds  = flag.Int("vs-wrk-rounds", 1, "TestVsWrk: rounds (the median is reported)")
	vsWrkDur     = flag.Duration("vs-wrk-duration", time.Second, "TestVsWrk: how long each tool drives the server per round (whole seconds: wrk's unit)")
	vsWrkConns   = flag.Int("vs-wrk-conns", 32, "TestVsWrk: connections (wrk -c, our virtual users)")
	vsWrkThreads = flag.Int("vs-wrk-threads", 2, "TestVsWrk: wrk -t")
	vsWrkProfile = flag.String("vs-wrk-profile", "", "TestVsWrk: write CPU profiles of our load generator to PREFIX-closed.pprof and PREFIX-open.pprof (last round)")

	// For the child process that runs our load generator.
	lgChild    = flag.String("loadgen-child", "", "run the load generator as TestVsWrk's child: closed or open")
	lgTarget   = flag.String("loadgen-target", "", "the child's target URL")
	lgVUs      = flag.Int("loadgen-vus", 32, "the child's virtual users (closed)")
	lgRate     = flag.Float64("loadgen-rate", 0, "the child's arrival rate (open)")
	lgDuration = flag.Duration("loadgen-duration", time.Second, "the child's duration")
	lgProfile  = flag.String("loadgen-cpuprofile", "", "the child's CPU profile file")
)

// childReport is what the child prints on its last line.
type childReport struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Dropped  int64   `json:"dropped"`
	Seconds  float64 `json:"seconds"`     // the run's duration
	CPU      float64 `json:"cpu_seconds"` // user + system around Run
}

// TestLoadgenChild is the child process of TestVsWrk: it runs the load
// generator against -loadgen-target and prints a childReport.
func TestLoadgenChild(t *testing.T) {
	if *lgChild == "" {
		t.Skip("not a child of TestVsWrk")
	}
	get := []Op{{Name: "get", Weight: 1, Do: func(ctx context.Context, c *Client, s *Session) error {
		_, err := c.Do(&Request{Path: "/"})
		return err
	}}}
	var ex Executor
	switch *lgChild {
	case "closed":
		ex = ConstantVUs{VUs: *lgVUs, Duration: *lgDuration}
	case "open":
		ex = ConstantArrivalRate{Rate: *lgRate, Duration: *lgDuration, Pool: Pool{PreAllocated: *lgVUs}}
	default:
		t.Fatalf("-loadgen-child %q: want closed or open", *lgChild)
	}
	if *lgProfile != "" {
		f, err := os.Create(*lgProfile)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	before := selfCPU(t)
	res, err := Run(context.Background(), Config{Target: *lgTarget, Ops: get, Executor: ex})
	if err != nil {
		t.Fatal(err)
	}
	rep := childReport{Requests: res.Total.Count, Errors: res.Total.Errors, Dropped: res.Dropped,
		Seconds: res.Duration.Seconds(), CPU: selfCPU(t) - before}
	b, _ := json.Marshal(rep)
	fmt.Printf("\n%s\n", b)
}

func selfCPU(t *testing.T) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// measurement is one tool's run in one round.
type measurement struct {
	tool      string
	requests  int64
	errors    int64
	dropped   int64
	seconds   float64
	cpu       float64 // the tool's CPU seconds
	serverCPU float64 // the bare server's CPU seconds meanwhile
}

func (m measurement) rate() float64 { return float64(m.requests) / m.seconds }

// usPerReq is the tool's CPU per request in microseconds.
func (m measurement) usPerReq() float64 { return m.cpu / float64(m.requests) * 1e6 }

func (m measurement) serverUsPerReq() float64 { return m.serverCPU / float64(m.requests) * 1e6 }

// TestVsWrk compares the load generator's CPU per request with wrk's (see
// the comment on the flags above). Run alone it is a smoke test: one short
// round, which checks that every tool ran and measured something.
func TestVsWrk(t *testing.T) {
	if *lgChild != "" || *bareServer != "" {
		t.Skip("a child process")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		t.Fatal("wrk is not installed: make deps (Debian package wrk)")
	}
	target, serverPID := startBare(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	rounds := make(map[string][]measurement)
	tools := []string{"wrk", "loadgen closed", "loadgen open"}
	for round := range *vsWrkRounds {
		profile := func(mode string) string {
			if *vsWrkProfile == "" || round != *vsWrkRounds-1 {
				return ""
			}
			return *vsWrkProfile + "-" + mode + ".pprof"
		}
		w := measure(t, serverPID, "wrk", func() (measurement, error) { return runWrk(target) })
		rounds["wrk"] = append(rounds["wrk"], w)
		c := measure(t, serverPID, "loadgen closed", func() (measurement, error) {
			return runChild(exe, target, "closed", 0, profile("closed"))
		})
		rounds["loadgen closed"] = append(rounds["loadgen closed"], c)
		o := measure(t, serverPID, "loadgen open", func() (measurement, error) {
			return runChild(exe, target, "open", w.rate(), profile("open"))
		})
		rounds["loadgen open"] = append(rounds["loadgen open"], o)
	}

	var out bytes.Buffer
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "tool\tround\trequests\treq/s\terrors\tdropped\tCPU s\tCPU µs/req\tvs wrk\tserver µs/req\t\n")
	med := map[string]float64{}
	for _, tool := range tools {
		for i, m := range rounds[tool] {
			ratio := m.usPerReq() / rounds["wrk"][i].usPerReq()
			fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%d\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n", tool, i+1, m.requests, m.rate(),
				m.errors, m.dropped, m.cpu, m.usPerReq(), ratio, m.serverUsPerReq())
		}
		ms := rounds[tool]
		med[tool] = median(ms, measurement.usPerReq)
		fmt.Fprintf(tw, "%s\tmedian\t\t%.0f\t\t\t\t%.2f\t\t%.2f\t\n", tool, median(ms, measurement.rate), med[tool], median(ms, measurement.serverUsPerReq))
	}
	tw.Flush()
	t.Logf("%d round(s) of %v, %d connections, wrk -t%d:\n%s", *vsWrkRounds, vsWrkRound(), *vsWrkConns, *vsWrkThreads, out.String())
	t.Logf("median CPU per request: loadgen closed %.2f× wrk's, loadgen open %.2f× wrk's",
		med["loadgen closed"]/med["wrk"], med["loadgen open"]/med["wrk"])
}

// measure runs one tool and reads the bare server's CPU around it. A tool
// that did not run, measured no request, or met errors fails the test.
func measure(t *testing.T, serverPID int, tool string, run func() (measurement, error)) measurement {
	t.Helper()
	before := procCPU(t, serverPID)
	m, err := run()
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	m.tool = tool
	m.serverCPU = procCPU(t, serverPID) - before
	if m.requests == 0 || m.cpu <= 0 || m.seconds <= 0 {
		t.Fatalf("%s measured nothing: %+v", tool, m)
	}
	if m.errors > 0 {
		t.Errorf("%s: %d errors", tool, m.errors)
	}
	return m
}

func median(ms []measurement, f func(measurement) float64) float64 {
	v := make([]float64, len(ms))
	for i, m := range ms {
		v[i] = f(m)
	}
	slices.Sort(v)
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

var wrkTotal = regexp.MustCompile(`(\d+) requests in ([0-9.]+)(us|ms|s|m)`)

// vsWrkRound is how long each tool runs: -vs-wrk-duration in whole
// seconds, at least one, since wrk takes nothing finer.
func vsWrkRound() time.Duration { return max(time.Second, vsWrkDur.Round(time.Second)) }

// runWrk runs wrk against target and reads its requests from its summary
// and its CPU from the kernel.
func runWrk(target string) (measurement, error) {
	cmd := exec.Command("wrk", "-t"+strconv.Itoa(*vsWrkThreads), "-c"+strconv.Itoa(*vsWrkConns),
		"-d"+strconv.Itoa(int(vsWrkRound().Seconds()))+"s", target+"/")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return measurement{}, fmt.Errorf("%v: %w\n%s", cmd.Args, err, out.String())
	}
	m := wrkTotal.FindStringSubmatch(out.String())
	if m == nil {
		return measurement{}, fmt.Errorf("wrk printed no total:\n%s", out.String())
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	secs, _ := strconv.ParseFloat(m[2], 64)
	switch m[3] {
	case "us":
		secs /= 1e6
	case "ms":
		secs /= 1e3
	case "m":
		secs *= 60
	}
	var errs int64
	if i := strings.Index(out.String(), "Non-2xx or 3xx responses:"); i >= 0 {
		fmt.Sscanf(out.String()[i+len("Non-2xx or 3xx responses:"):], "%d", &errs)
	}
	if strings.Contains(out.String(), "Socket errors:") {
		errs++ // wrk counts connect/read/write/timeout errors apart; any is a failed comparison
	}
	ps := cmd.ProcessState
	return measurement{requests: n, errors: errs, seconds: secs,
		cpu: (ps.UserTime() + ps.SystemTime()).Seconds()}, nil
}

// runChild runs our load generator in a child process (this test binary,
// TestLoadgenChild) and reads its report.
func runChild(exe, target, mode string, rate float64, profile string) (measurement, error) {
	args := []string{"-test.run=^TestLoadgenChild$", "-test.count=1", "-loadgen-child=" + mode, "-loadgen-target=" + target,
		"-loadgen-vus=" + strconv.Itoa(*vsWrkConns), "-loadgen-duration=" + vsWrkRound().String(),
		"-loadgen-rate=" + strconv.FormatFloat(rate, 'f', 0, 64)}
	if profile != "" {
		args = append(args, "-loadgen-cpuprofile="+profile)
	}
	cmd := exec.Command(exe, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return measurement{}, fmt.Errorf("%v: %w\n%s", cmd.Args, err, out.String())
	}
	var rep childReport
	found := false
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &rep) == nil {
			found = true
		}
	}
	if !found {
		return measurement{}, fmt.Errorf("the child printed no report:\n%s", out.String())
	}
	return measurement{requests: rep.Requests, errors: rep.Errors, dropped: rep.Dropped, seconds: rep.Seconds, cpu: rep.CPU}, nil
}

// startBare starts the bare handler in a child process (TestBareServer),
// stopped when tb ends, and returns its base URL and PID.
func startBare(tb testing.TB) (string, int) {
	tb.Helper()
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestBareServer$", "-bare-server=127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if addr, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
			go io.Copy(io.Discard, out) // keep draining so the child never blocks; ends when it exits
			return "http://" + addr, cmd.Process.Pid
		}
	}
	tb.Fatalf("bare server did not start: %v", sc.Err())
	return "", 0
}

// procCPU returns process pid's user + system CPU seconds so far, from
// /proc/PID/stat (in clock ticks of 1/100 s on Linux).
func procCPU(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The command name may hold spaces; the fields after it are fixed.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return (ut + st) / 100
}
