package reports

import (
	"context"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestParseProc(t *testing.T) {
	cpuinfo := `processor	: 0
vendor_id	: GenuineIntel
model name	: Intel(R) Xeon(R) Processor @ 2.10GHz
flags		: fpu vme

processor	: 1
model name	: Intel(R) Xeon(R) Processor @ 2.10GHz
`
	arm := "processor\t: 0\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\nModel\t: Raspberry Pi 4 Model B Rev 1.4\n"
	tests := []struct{ name, got, want string }{
		{"x86 model name", cpuModel(strings.NewReader(cpuinfo)), "Intel(R) Xeon(R) Processor @ 2.10GHz"},
		{"arm hardware", cpuModel(strings.NewReader(arm)), "BCM2835"},
		{"nothing", cpuModel(strings.NewReader("")), ""},
		{"os-release quoted", osRelease(strings.NewReader("NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n")), "Debian GNU/Linux 12 (bookworm)"},
		{"os-release bare", osRelease(strings.NewReader("PRETTY_NAME=Alpine\n")), "Alpine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
	meminfo := "MemTotal:        8136264 kB\nMemFree:          123 kB\n"
	if got, want := memTotal(strings.NewReader(meminfo)), int64(8136264*1024); got != want {
		t.Errorf("memTotal = %d, want %d", got, want)
	}
	if got := memTotal(strings.NewReader("MemTotal: lots\n")); got != 0 {
		t.Errorf("memTotal of garbage = %d, want 0", got)
	}
}

func TestDetectMachine(t *testing.T) {
	m := DetectMachine(context.Background())
	if m.Cores != runtime.NumCPU() || m.GoVersion != runtime.Version() || m.CPU == "" || m.OS == "" {
		t.Errorf("DetectMachine() = %+v: want cores, Go version, CPU and OS filled in", m)
	}
	if runtime.GOOS == "linux" && (m.MemoryBytes <= 0 || m.Kernel == "") {
		t.Errorf("DetectMachine() = %+v: want memory and kernel on Linux", m)
	}
	if _, err := exec.LookPath("git"); err == nil {
		if err := exec.Command("git", "rev-parse", "HEAD").Run(); err == nil {
			if !regexp.MustCompile(`^[0-9a-f]{4,}(-dirty)?$`).MatchString(m.GitCommit) {
				t.Errorf("DetectMachine().GitCommit = %q, want a short commit", m.GitCommit)
			}
		}
	}

	t.Run("outside a git checkout", func(t *testing.T) {
		t.Chdir(t.TempDir())
		if got := gitCommit(context.Background()); got != "" {
			t.Errorf("gitCommit() outside a checkout = %q, want \"\"", got)
		}
	})
}
