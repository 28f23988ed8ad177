package topologies

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Runtime says where a topology's components run.
type Runtime string

const (
	// RuntimeProcess runs every component as a local process from the
	// distribution's packages (the default; no Docker needed).
	RuntimeProcess Runtime = "process"
	// RuntimeDocker runs every component as a container of the locally
	// built images (make images) on a bridge network of its own, through
	// ory/dockertest. Only the entry point and the ports the runner probes
	// are published, on 127.0.0.1.
	RuntimeDocker Runtime = "docker"
)

// ParseRuntime reads a --runtime value; "" is the process runtime.
func ParseRuntime(s string) (Runtime, error) {
	switch Runtime(s) {
	case "", RuntimeProcess:
		return RuntimeProcess, nil
	case RuntimeDocker:
		return RuntimeDocker, nil
	}
	return "", fmt.Errorf("runtime %q: want process or docker", s)
}

// Images the docker runtime starts; docker/images/build.sh (make images)
// builds them without a registry.
const (
	DefaultInfraImage = "scalelab-infra:local"
	DefaultAppImage   = "scalelab-app:local"
)

// Limit is one component's resource budget under the docker runtime
// (`limits:` in a phase file, by component kind or name). The process
// runtime does not enforce it.
type Limit struct {
	// CPUs is a CPU quota in cores (0.5 is half a core); 0 means none.
	CPUs float64 `yaml:"cpus"`
	// Memory is a memory limit such as 256m or 1g; "" means none.
	Memory string `yaml:"memory"`
}

// limitKeys are the names a `limits:` entry may use: a kind (every
// component of that kind) or one component's name.
var limitKinds = []string{"app", "worker", "postgres", "primary", "replica", "pgbouncer", "redis", "haproxy", "varnish", "prometheus"}

// validateLimits checks the `limits:` section.
func validateLimits(limits map[string]Limit) error {
	for _, k := range slices.Sorted(maps.Keys(limits)) {
		l := limits[k]
		base := k
		if i := strings.LastIndexByte(k, '-'); i > 0 {
			if _, err := strconv.Atoi(k[i+1:]); err == nil {
				base = k[:i] // app-2, replica-1
			}
		}
		if !slices.Contains(limitKinds, base) {
			return fmt.Errorf("limits.%s: want one of %s, or a component name such as app-2", k, strings.Join(limitKinds, ", "))
		}
		if l.CPUs < 0 || l.CPUs > 64 {
			return fmt.Errorf("limits.%s.cpus: %v, want 0 to 64", k, l.CPUs)
		}
		if _, err := parseMemory(l.Memory); err != nil {
			return fmt.Errorf("limits.%s.memory: %w", k, err)
		}
	}
	return nil
}

// limitFor returns the budget of component name (kind given): its own
// entry, else its kind's, else "replica"/"primary" for Postgres servers.
func (d *Definition) limitFor(name, kind string) Limit {
	if l, ok := d.Limits[name]; ok {
		return l
	}
	if kind == "postgres" {
		role := "primary"
		if strings.HasPrefix(name, "replica-") {
			role = "replica"
		}
		if l, ok := d.Limits[role]; ok {
			return l
		}
	}
	return d.Limits[kind]
}

// parseMemory reads 512m, 1g, 64k or a byte count; "" is 0 (no limit).
func parseMemory(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	mult := int64(1)
	num := strings.ToLower(strings.TrimSpace(s))
	num = strings.TrimSuffix(num, "b")
	switch {
	case strings.HasSuffix(num, "k"):
		mult, num = 1<<10, strings.TrimSuffix(num, "k")
	case strings.HasSuffix(num, "m"):
		mult, num = 1<<20, strings.TrimSuffix(num, "m")
	case strings.HasSuffix(num, "g"):
		mult, num = 1<<30, strings.TrimSuffix(num, "g")
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q, want a size such as 256m or 1g", s)
	}
	if n*mult < 6<<20 {
		return 0, errors.New("at least 6m: Docker refuses less")
	}
	return n * mult, nil
}
