package reports

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPublished re-renders every published run from its result.json: the
// checked-in report.md and report.html must be what this renderer writes,
// byte for byte (go test ./reports -update rewrites them).
func TestPublished(t *testing.T) {
	dirs, err := filepath.Glob("published/phase-*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no published runs (%v)", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			md, page, err := RenderPublished(dir)
			if err != nil {
				t.Fatal(err)
			}
			for name, got := range map[string][]byte{MarkdownFile: md, HTMLFile: page} {
				path := filepath.Join(dir, name)
				if *update {
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(string(want), string(got)); diff != "" {
					t.Errorf("%s differs from a re-render (go test ./reports -update rewrites it):\n%s", path, diff)
				}
			}
		})
	}
}

// TestPublishedComparison: published/compare.html is scalelab compare
// --html over the four read-heavy runs, phase 1 to 4.
func TestPublishedComparison(t *testing.T) {
	var results []*Result
	for _, p := range []string{"phase-1-read-heavy", "phase-2-read-heavy", "phase-3-read-heavy", "phase-4-read-heavy"} {
		results = append(results, mustRead(t, filepath.Join("published", p)))
	}
	var b bytes.Buffer
	if err := RenderComparisonHTML(&b, Compare(results)); err != nil {
		t.Fatal(err)
	}
	const path = "published/compare.html"
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), b.String()); diff != "" {
		t.Errorf("%s differs from a re-render (go test ./reports -update rewrites it):\n%s", path, diff)
	}
}

func TestPublishedOptions(t *testing.T) {
	opts, err := PublishedOptions("published/phase-2-read-heavy")
	if err != nil {
		t.Fatal(err)
	}
	o := newOptions(opts)
	if o.baseline == nil || o.baseline.Phase != 1 || o.baselineHref != "../phase-1-read-heavy/report.html" {
		t.Errorf("phase 2's baseline = %v at %q, want phase 1's read-heavy run", o.baseline != nil, o.baselineHref)
	}
	want := []Link{{"next phase: read-heavy on phase 3", "../phase-3-read-heavy/report.html"}, {"all published runs", "../README.md"}}
	if diff := cmp.Diff(want, o.pages); diff != "" {
		t.Errorf("links mismatch (-want +got):\n%s", diff)
	}
	if o.readme != "../../../README.md" {
		t.Errorf("readme = %q", o.readme)
	}
	// read-after-write has no phase 2 run: no baseline, a link to phase 2's read-heavy.
	o = newOptions(must(PublishedOptions("published/phase-3-read-after-write")))
	if o.baseline != nil {
		t.Errorf("phase 3 read-after-write has a baseline from phase %d, want none", o.baseline.Phase)
	}
	if len(o.pages) == 0 || o.pages[0].Href != "../phase-2-read-heavy/report.html" {
		t.Errorf("phase 3 read-after-write links %v, want phase 2's read-heavy first", o.pages)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
