//go:build containers

package lab_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"scalelab/internal/dockerd"
	"scalelab/lab"
	"scalelab/scenarios"
	"scalelab/topologies"
	"scalelab/topologies/topotest"
)

// TestDockerRunPhase3 is `scalelab run --runtime docker --phase 3
// --scenario read-heavy`, shortened: the result has the runtime, cache hit
// rates of both tiers, each replica's lag and write-to-visible probes and
// every container's CPU per request, like the process runtime's, and no
// container or network of the run is left.
func TestDockerRunPhase3(t *testing.T) {
	d := dockerd.ForTest(t)
	pool, err := dockertest.NewPool(d.Host())
	if err != nil {
		t.Fatal(err)
	}
	bin, err := topotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	def, err := lab.Phase(3)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenarios.LoadNamed("read-heavy")
	if err != nil {
		t.Fatal(err)
	}
	// Short and light: the machine is shared; nothing here is a figure.
	if err := sc.Apply(scenarios.Overrides{Duration: 15 * time.Second, Rate: 300, Users: 5000}); err != nil {
		t.Fatal(err)
	}
	dir := searchableTempDir(t)
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := lab.Run(ctx, lab.Config{
		Definition: def, Scenario: sc, Binary: bin, TopologyDir: dir, Seed: 3,
		Argv: []string{"scalelab", "run", "--runtime", "docker", "--phase", "3"}, Stdout: &out, Logger: topotest.Logger(),
		FastPostgres: true, Runtime: topologies.RuntimeDocker, DockerHost: d.Host(),
	})
	runID := runOf(t, dir)
	// Whatever happened, nothing of the run may be left.
	t.Cleanup(func() { checkNothingLeft(t, pool, runID) })
	if err != nil {
		t.Fatalf("Run(phase 3, docker) = %v\n%s", err, out.String())
	}

	if res.Runtime != "docker" {
		t.Errorf("runtime = %q, want docker", res.Runtime)
	}
	if res.UpS <= 0 || res.DownS <= 0 {
		t.Errorf("topology_up_s = %v, topology_down_s = %v; want both measured", res.UpS, res.DownS)
	}
	if res.Totals.Requests == 0 || res.Totals.Errors > res.Totals.Requests/100 {
		t.Errorf("totals = %+v, want requests with at most 1%% errors", res.Totals)
	}
	if res.Cache.L1HitRate == nil || res.Cache.L2HitRate == nil {
		t.Errorf("cache = L1 %v, L2 %v; want both tiers' hit rates (from the apps' metrics through Prometheus)", res.Cache.L1HitRate, res.Cache.L2HitRate)
	}
	if res.Cache.L3HitRate != nil {
		t.Errorf("cache L3 = %v, want none: phase 3 has no CDN tier", *res.Cache.L3HitRate)
	}
	if len(res.Replicas) != 2 {
		t.Fatalf("replicas = %+v, want replica-1 and replica-2", res.Replicas)
	}
	for _, r := range res.Replicas {
		if r.VisibleProbes == 0 || len(r.Series) == 0 {
			t.Errorf("%s: %d write-to-visible probes, %d lag points; want both sampled", r.Name, r.VisibleProbes, len(r.Series))
		}
	}
	cpu := map[string]float64{}
	for _, c := range res.Components {
		cpu[c.Name] = c.CPUUSPerRequest
	}
	for _, name := range []string{"app-1", "app-2", "app-3", "haproxy", "primary", "replica-1", "redis", "docker-proxy"} {
		if cpu[name] <= 0 {
			t.Errorf("%s: %v µs of CPU per request, want some (components %v)", name, cpu[name], cpu)
		}
	}
	rdir := t.TempDir()
	if err := res.WriteAll(rdir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(rdir, "result.json"))
	if err != nil || !bytes.Contains(b, []byte(`"runtime": "docker"`)) {
		t.Errorf("result.json lacks the runtime (%v)", err)
	}
	if md, err := os.ReadFile(filepath.Join(rdir, "report.md")); err != nil || !bytes.Contains(md, []byte("**Runtime:** docker")) {
		t.Errorf("report.md does not say the runtime in its header (%v)", err)
	}
}

// runOf is the run ID of the one topology run folder under dir.
func runOf(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 {
		t.Fatalf("run folders under %s: %v, %v; want one", dir, ents, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, ents[0].Name(), "topology.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top struct {
		RunID   string `json:"run_id"`
		Runtime string `json:"runtime"`
	}
	if err := json.Unmarshal(b, &top); err != nil || top.RunID == "" || top.Runtime != "docker" {
		t.Fatalf("topology.json = %s (%v), want a docker run", b, err)
	}
	return top.RunID
}

// checkNothingLeft fails when a container or network of run runID exists.
func checkNothingLeft(t *testing.T, pool *dockertest.Pool, runID string) {
	t.Helper()
	label := "scalelab.run=" + runID
	cs, err := pool.Client.ListContainers(dc.ListContainersOptions{All: true, Filters: map[string][]string{"label": {label}}})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := pool.Client.FilteredListNetworks(dc.NetworkFilterOpts{"label": {label: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 || len(nets) != 0 {
		t.Errorf("after the run: %d containers and %d networks of run %s left, want none", len(cs), len(nets), runID)
	}
}
