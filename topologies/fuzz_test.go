package topologies

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: the phase-file loader never panics on any text. Seeds: the
// four phase files and every testdata file.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"phase-*.yaml", "testdata/*.yaml", "testdata/*.yml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("phase: 3\napps:\n  count: -1\n"))
	flags := commandFlags()
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse(data, "fuzz.yaml", flags)
		if err == nil && d == nil {
			t.Fatal("Parse = nil, nil")
		}
	})
}
