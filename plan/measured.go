package plan

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"scalelab/reports"
)

// Measured is what the plan takes from one run's result.json.
type Measured struct {
	Phase    int    `json:"phase"`
	Scenario string `json:"scenario"`
	// Source is the result.json it came from.
	Source string `json:"source"`
	// Requests is totals.requests; Writes the HTTP writes (POST, PUT,
	// PATCH, DELETE) among them, from requests[] (-1 when the result does
	// not break requests down).
	Requests int64 `json:"requests"`
	Writes   int64 `json:"writes"`
	// Demands are CPU seconds per request by component.
	Demands map[string]float64 `json:"demands"`
	// DemandsFrom says where Demands came from: the capacity section, or
	// the run's components divided by its requests.
	DemandsFrom string        `json:"demands_from"`
	Cache       reports.Cache `json:"cache"`
	// DataBytesPerUser is capacity.data_bytes_per_user (0: not measured).
	DataBytesPerUser float64 `json:"data_bytes_per_user,omitempty"`
	// MemoryBytes and Cores are the measured machine's.
	MemoryBytes int64 `json:"memory_bytes"`
	Cores       int   `json:"cores"`
	hasCapacity bool
}

// Where Measured.Demands came from.
const (
	FromCapacity   = "capacity.demands"
	FromComponents = "components[].cpu_s / totals.requests"
)

// FromResult takes the plan's inputs from one result: the capacity
// section's demands when it has them, else each component's CPU seconds
// divided by the run's requests.
func FromResult(source string, r *reports.Result) (Measured, error) {
	m := Measured{
		Phase:       r.Phase,
		Scenario:    r.Scenario,
		Source:      source,
		Requests:    r.Totals.Requests,
		Writes:      -1,
		Demands:     map[string]float64{},
		Cache:       r.Cache,
		MemoryBytes: r.Machine.MemoryBytes,
		Cores:       r.Machine.Cores,
	}
	if len(r.Requests) > 0 {
		m.Writes = 0
		for _, q := range r.Requests {
			if isWrite(q.Name) {
				m.Writes += q.Count
			}
		}
	}
	if c := r.Capacity; c != nil {
		m.DataBytesPerUser = c.DataBytesPerUser
		if len(c.Demands) > 0 {
			maps.Copy(m.Demands, c.Demands)
			m.DemandsFrom = FromCapacity
			m.hasCapacity = true
			return m, nil
		}
	}
	if len(r.Components) == 0 {
		return Measured{}, fmt.Errorf("%s: no capacity demands and no components: nothing to plan with", source)
	}
	if r.Totals.Requests <= 0 {
		return Measured{}, fmt.Errorf("%s: no requests completed", source)
	}
	for _, c := range r.Components {
		m.Demands[c.Name] += c.CPUS / float64(r.Totals.Requests)
	}
	m.DemandsFrom = FromComponents
	return m, nil
}

func isWrite(request string) bool {
	method, _, _ := strings.Cut(request, " ")
	switch method {
	case "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// Load reads every result.json under the given paths (a result.json, a run
// folder, or a folder of run folders, searched recursively) and keeps one
// run per phase: a run with a capacity section first, then the run with the
// most requests (the steadiest figures), then the first by path. The
// others are returned as skipped, with the run that was preferred.
func Load(paths []string) (kept []Measured, skipped []string, err error) {
	var files []string
	named := map[string]bool{} // given as a file, not found in a folder
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, fmt.Errorf("load results: %w", err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			named[p] = true
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && d.Name() == reports.ResultFile {
				files = append(files, path)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("load results under %s: %w", p, err)
		}
	}
	slices.Sort(files)
	files = slices.Compact(files)
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("load results: no %s under %s", reports.ResultFile, strings.Join(paths, ", "))
	}
	byPhase := map[int][]Measured{}
	for _, f := range files {
		r, err := reports.Read(f)
		if err != nil {
			return nil, nil, err
		}
		if r.Target != "" && !named[f] {
			// A run against a deployment the lab did not start sampled no
			// component: there is nothing in it to plan with, and a folder
			// of runs may hold some.
			skipped = append(skipped, fmt.Sprintf("%s: a run against %s (--target) measured no component", f, r.Target))
			continue
		}
		m, err := FromResult(f, r)
		if err != nil {
			return nil, nil, fmt.Errorf("load results: %w", err)
		}
		byPhase[m.Phase] = append(byPhase[m.Phase], m)
	}
	for _, phase := range slices.Sorted(maps.Keys(byPhase)) {
		runs := byPhase[phase]
		slices.SortStableFunc(runs, func(a, b Measured) int {
			if a.hasCapacity != b.hasCapacity {
				if a.hasCapacity {
					return -1
				}
				return 1
			}
			return cmp.Compare(b.Requests, a.Requests)
		})
		kept = append(kept, runs[0])
		for _, r := range runs[1:] {
			skipped = append(skipped, fmt.Sprintf("%s (phase %d %s): %s (%s) preferred", r.Source, r.Phase, r.Scenario, runs[0].Source, runs[0].Scenario))
		}
	}
	return kept, skipped, nil
}

var instanceSuffix = regexp.MustCompile(`-[0-9]+$`)

// tierOf maps a component of a run to the tier it belongs to, or "" for a
// component that is not part of serving requests (Prometheus and the
// exporters, which monitor; the load generator, which stands in for the
// clients).
func tierOf(component string) string {
	base := instanceSuffix.ReplaceAllString(component, "")
	switch {
	case base == "prometheus" || base == "loadgen" || strings.HasSuffix(base, "-exporter"):
		return ""
	case base == "app":
		return TierApp
	case base == "haproxy":
		return TierLB
	case base == "primary" || base == "pgbouncer":
		// The pooler runs beside the database it pools.
		return TierPrimary
	case base == "replica":
		return TierReplicas
	case base == "redis" || strings.HasPrefix(base, "redis-"):
		return TierRedis
	case base == "varnish":
		return TierCDN
	}
	return base
}

var errNoResults = errors.New("no measured runs")
