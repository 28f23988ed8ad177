package server_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// forbidden are the packages (and everything under them) that no package
// under scalelab/server may import, its tests included: the server knows
// nothing of the lab that drives and measures it (docs/architecture.md).
var forbidden = []string{
	"scalelab/topologies",
	"scalelab/loadgen",
	"scalelab/reports",
	"scalelab/lab",
	"scalelab/scenarios",
	"scalelab/regress",
	"scalelab/cmd",
}

// TestImportRule lists every package under scalelab/server with its
// dependencies, test variants included (a server test that starts a Redis
// through the topology runner breaks the rule as much as server code does).
func TestImportRule(t *testing.T) {
	out, err := exec.Command("go", "list", "-test", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "scalelab/server/...").Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, msg)
	}
	violations := importViolations(string(out))
	for _, v := range violations {
		t.Error(v)
	}
	if len(violations) > 0 {
		t.Logf("move what a server test needs beside the server (internal/redisserver/redistest, internal/pgserver/pgtest), not into it from the lab")
	}
}

// importViolations reads `go list -test -f '{{.ImportPath}}{{range .Deps}} {{.}}{{end}}'`
// output and names every package that depends on a forbidden one. Test
// variants ("p [p.test]") are reported as p's tests.
func importViolations(list string) []string {
	var out []string
	for line := range strings.Lines(list) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		// "scalelab/server/cache [scalelab/server/cache.test] dep dep…": the
		// import path may carry a bracketed suffix, and so may deps.
		pkg, deps := f[0], f[1:]
		if len(deps) > 0 && strings.HasPrefix(deps[0], "[") {
			pkg += " (tests)"
			deps = deps[1:]
		}
		if strings.HasSuffix(pkg, ".test") {
			continue // the generated test main; its variants are listed too
		}
		var bad []string
		for _, d := range deps {
			if strings.HasPrefix(d, "[") {
				continue
			}
			if isForbidden(d) && !slices.Contains(bad, d) {
				bad = append(bad, d)
			}
		}
		if len(bad) > 0 {
			out = append(out, pkg+" imports "+strings.Join(bad, ", "))
		}
	}
	return out
}

func isForbidden(pkg string) bool {
	for _, f := range forbidden {
		if pkg == f || strings.HasPrefix(pkg, f+"/") {
			return true
		}
	}
	return false
}

func TestImportViolations(t *testing.T) {
	list := "scalelab/server/cache scalelab/server scalelab/internal/breaker\n" +
		"scalelab/server/cache [scalelab/server/cache.test] scalelab/server scalelab/topologies/topotest scalelab/topologies\n" +
		"scalelab/server/cache.test scalelab/server/cache [scalelab/server/cache.test] scalelab/topologies\n" +
		"scalelab/server/app scalelab/loadgenerator scalelab/labs scalelab/lab/run\n"
	got := importViolations(list)
	want := []string{
		"scalelab/server/cache (tests) imports scalelab/topologies/topotest, scalelab/topologies",
		"scalelab/server/app imports scalelab/lab/run",
	}
	if !slices.Equal(got, want) {
		t.Errorf("importViolations =\n%q\nwant\n%q", got, want)
	}
}
