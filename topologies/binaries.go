package topologies

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// pgBinDir is where Debian's postgresql-15 package puts initdb, pg_ctl and
// friends; they are not on PATH.
const pgBinDir = "/usr/lib/postgresql/15/bin"

// debianPackage names the package that provides each program the runner
// starts, for the "missing binaries" message.
func debianPackage(prog string) string {
	switch prog {
	case "initdb", "pg_ctl", "postgres", "pg_basebackup", "psql":
		return "postgresql-15"
	case "redis-server":
		return "redis-server"
	case "redis-cli":
		return "redis-tools"
	case "varnishd", "varnishstat", "varnishadm":
		return "varnish"
	default: // haproxy, pgbouncer, prometheus
		return prog
	}
}

// lookBinary finds prog on PATH, in the sbin directories (not on an
// ordinary user's PATH) or in Postgres' bin directory.
func lookBinary(prog string) (string, error) {
	if p, err := exec.LookPath(prog); err == nil {
		return p, nil
	}
	for _, dir := range []string{pgBinDir, "/usr/sbin", "/usr/local/sbin", "/sbin"} {
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &MissingBinariesError{Programs: []string{prog}}
}

// MissingBinariesError names the programs a topology needs that are not
// installed, and the Debian packages that provide them.
type MissingBinariesError struct {
	Programs []string
}

func (e *MissingBinariesError) Error() string {
	var pkgs []string
	for _, p := range e.Programs {
		if pkg := debianPackage(p); !slices.Contains(pkgs, pkg) {
			pkgs = append(pkgs, pkg)
		}
	}
	return fmt.Sprintf("missing programs: %s; install them with `make deps` (apt-get install %s)",
		strings.Join(e.Programs, ", "), strings.Join(pkgs, " "))
}

// CheckBinaries reports, in one error, every program the definition needs
// that is not installed.
func CheckBinaries(def *Definition) error {
	return checkPrograms(def.programs())
}

func checkPrograms(progs []string) error {
	var missing []string
	for _, p := range progs {
		if _, err := lookBinary(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return &MissingBinariesError{Programs: missing}
	}
	return nil
}
