package topologies_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"scalelab/topologies"
)

// TestComposeFilesMatch checks that docker/phase-N.compose.yaml and its
// config files are what `scalelab compose --phase N` writes today.
func TestComposeFilesMatch(t *testing.T) {
	for _, phase := range []int{1, 2, 3} {
		def, err := topologies.Phase(phase, commandFlags())
		if err != nil {
			t.Fatal(err)
		}
		files, err := topologies.Compose(def)
		if err != nil {
			t.Fatalf("Compose(phase %d) = %v", phase, err)
		}
		for _, f := range files {
			path := filepath.Join("..", "docker", f.Path)
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("phase %d: %v (write it with `scalelab compose --phase %d`)", phase, err, phase)
				continue
			}
			if !bytes.Equal(got, f.Data) {
				t.Errorf("%s differs from what the generator writes; run `scalelab compose --phase %d`", path, phase)
			}
		}
	}
}

// TestComposePhase4Unsupported pins the message until phase 4's components
// run in containers.
func TestComposePhase4Unsupported(t *testing.T) {
	def, err := topologies.Phase(4, commandFlags())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topologies.Compose(def); err == nil {
		t.Error("Compose(phase 4) = nil error, want one naming the components containers do not run yet")
	}
}
