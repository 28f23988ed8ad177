package scenarios

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: the scenario loader never panics, and whatever it accepts is
// a valid scenario: parsing it again from the same text gives no error.
// Seeds: every scenario and every testdata file, good and bad.
func FuzzParse(f *testing.F) {
	for _, glob := range []string{"*.yaml", "testdata/*.yaml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			if b, err := os.ReadFile(file); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("name: x\nexecutor: {type: constant-arrival-rate, rate: 1e308}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if s == nil {
			t.Fatal("Parse = nil, nil")
		}
		if _, err := Parse("fuzz.yaml", data); err != nil {
			t.Fatalf("second Parse of accepted text = %v", err)
		}
	})
}
