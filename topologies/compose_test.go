package topologies_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"scalelab/topologies"
)

// TestComposeFilesMatch checks that docker/phase-N.compose.yaml, the
// phase-3 and phase-4 stack files and their config files are what
// `scalelab compose [--swarm] --phase N` writes today.
func TestComposeFilesMatch(t *testing.T) {
	type gen struct {
		phase int
		swarm bool
	}
	for _, g := range []gen{{1, false}, {2, false}, {3, false}, {4, false}, {3, true}, {4, true}} {
		def, err := topologies.Phase(g.phase, commandFlags())
		if err != nil {
			t.Fatal(err)
		}
		write, flag := topologies.Compose, ""
		if g.swarm {
			write, flag = topologies.Stack, "--swarm "
		}
		files, err := write(def)
		if err != nil {
			t.Fatalf("phase %d (%s): %v", g.phase, strings.TrimSpace(flag), err)
		}
		for _, f := range files {
			path := filepath.Join("..", "docker", f.Path)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("phase %d: %v (write it with `scalelab compose %s--phase %d`)", g.phase, err, flag, g.phase)
				continue
			}
			if !bytes.Equal(got, f.Data) {
				t.Errorf("%s differs from what the generator writes; run `scalelab compose %s--phase %d`", path, flag, g.phase)
			}
		}
	}
}

// A stack file has what Swarm needs and none of what it refuses: an
// overlay network, Swarm configs instead of bind mounts, one replica and
// a placement constraint per service, no Compose-only keys.
func TestStackFile(t *testing.T) {
	def, err := topologies.Phase(4, commandFlags())
	if err != nil {
		t.Fatal(err)
	}
	files, err := topologies.Stack(def)
	if err != nil {
		t.Fatal(err)
	}
	stack := string(files[0].Data)
	for _, want := range []string{"driver: overlay", "configs:", "replicas: 1", "node.labels.scalelab.tier.db != false",
		"endpoint_mode: dnsrr", "--trusted-proxy=10.213.0.0/16", "target: 6081", "published: ${SCALELAB_PORT:-8080}", "mode: host"} {
		if !strings.Contains(stack, want) {
			t.Errorf("stack file lacks %q", want)
		}
	}
	for _, refused := range []string{"profiles:", "depends_on:", "restart: on-failure", "127.0.0.1:${", ":ro\n"} {
		if strings.Contains(stack, refused) {
			t.Errorf("stack file has %q, which Swarm ignores or refuses", refused)
		}
	}
}
