package reports

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustRead(t *testing.T, path string) *Result {
	t.Helper()
	r, err := Read(path)
	if err != nil {
		t.Fatalf("Read(%q): %v", path, err)
	}
	return r
}

func TestWriteRead(t *testing.T) {
	for _, name := range []string{"phase1-read-heavy", "phase3-hot-key", "empty"} {
		t.Run(name, func(t *testing.T) {
			want := mustRead(t, "testdata/"+name+".json")
			dir := t.TempDir()
			if err := want.Write(dir); err != nil {
				t.Fatalf("Write: %v", err)
			}
			// Read takes the directory or the file.
			for _, path := range []string{dir, filepath.Join(dir, ResultFile)} {
				got := mustRead(t, path)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("Read(%q) after Write mismatch (-want +got):\n%s", path, diff)
				}
			}
			// What Write writes is byte for byte what was checked in.
			written, _ := os.ReadFile(filepath.Join(dir, ResultFile))
			fixture, _ := os.ReadFile("testdata/" + name + ".json")
			if diff := cmp.Diff(string(fixture), string(written)); diff != "" {
				t.Errorf("Write output differs from the fixture (-fixture +written):\n%s", diff)
			}
		})
	}
}

// TestSchema pins the field names docs/result-schema.md makes binding: renaming any of
// them breaks every reader of result.json.
func TestSchema(t *testing.T) {
	dir := t.TempDir()
	r := mustRead(t, "testdata/phase3-hot-key.json")
	r.SchemaVersion = 0 // Write sets it
	if err := r.Write(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	has := func(t *testing.T, obj map[string]any, where string, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s has no %q", where, k)
			}
		}
	}
	has(t, doc, "result", "schema_version", "phase", "scenario", "started_at", "duration_s", "machine",
		"command", "totals", "operations", "cache", "replicas")
	if v := doc["schema_version"]; v != float64(SchemaVersion) {
		t.Errorf("schema_version = %v, want %d", v, SchemaVersion)
	}
	has(t, doc["machine"].(map[string]any), "machine", "cpu", "cores", "memory_bytes", "go_version", "git_commit", "os", "kernel", "hostname")
	has(t, doc["totals"].(map[string]any), "totals", "requests", "errors", "rate")
	op := doc["operations"].([]any)[0].(map[string]any)
	has(t, op, "operations[0]", "name", "count", "errors", "rate", "latency_ms")
	has(t, op["latency_ms"].(map[string]any), "latency_ms", "p50", "p90", "p99", "p999", "max")
	cache := doc["cache"].(map[string]any)
	has(t, cache, "cache", "l1_hit_rate", "l2_hit_rate", "l3_hit_rate")
	if cache["l3_hit_rate"] != nil {
		t.Errorf("cache.l3_hit_rate = %v, want null for a phase without that tier", cache["l3_hit_rate"])
	}
	has(t, doc["replicas"].([]any)[0].(map[string]any), "replicas[0]", "name", "lag_s_p50", "lag_s_max", "visible_ms_p99")

	t.Run("empty lists are lists", func(t *testing.T) {
		dir := t.TempDir()
		if err := (&Result{Phase: 1}).Write(dir); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, ResultFile))
		for _, want := range []string{`"operations": []`, `"replicas": []`, `"l1_hit_rate": null`, `"schema_version": 1`} {
			if !strings.Contains(string(data), want) {
				t.Errorf("result.json of an empty result lacks %s:\n%s", want, data)
			}
		}
	})
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, want string
		version          bool // a *SchemaVersionError
	}{
		{"newer major version", write("v2.json", `{"schema_version": 2, "phase": 1}`),
			"schema version 2 is newer than this scalelab reads (1): use a newer scalelab", true},
		{"zero version", write("v0.json", `{"schema_version": 0}`), "invalid schema version 0", true},
		{"no version", write("none.json", `{"phase": 1}`), "no schema_version: not a scalelab result", false},
		{"not json", write("bad.json", `phase: 1`), "invalid character", false},
		{"missing", filepath.Join(dir, "nope.json"), "no such file", false},
		{"directory without result.json", t.TempDir(), "result.json: no such file", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Read(%q) error = %v, want one containing %q", tt.path, err, tt.want)
			}
			var sv *SchemaVersionError
			if errors.As(err, &sv) != tt.version {
				t.Errorf("Read(%q) error %v: *SchemaVersionError = %v, want %v", tt.path, err, !tt.version, tt.version)
			}
		})
	}

	t.Run("unknown fields of the same version are ignored", func(t *testing.T) {
		p := write("extra.json", `{"schema_version": 1, "phase": 2, "added_later": {"x": 1}}`)
		if r := mustRead(t, p); r.Phase != 2 {
			t.Errorf("Read(%q).Phase = %d, want 2", p, r.Phase)
		}
	})
}

func TestWriteAll(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs", "x")
	r := mustRead(t, "testdata/phase1-read-heavy.json")
	if err := r.WriteAll(dir); err != nil {
		t.Fatalf("WriteAll: %v", err)
	}
	for _, name := range []string{ResultFile, MarkdownFile, HTMLFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.Size() == 0 {
			t.Errorf("WriteAll did not write %s: %v", name, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("WriteAll left %d files, want 3 (no temporary files)", len(entries))
	}
}

func TestPassed(t *testing.T) {
	if r := mustRead(t, "testdata/phase1-read-heavy.json"); !r.Passed() {
		t.Error("phase1-read-heavy: Passed() = false, want true")
	}
	if r := mustRead(t, "testdata/phase3-hot-key.json"); r.Passed() {
		t.Error("phase3-hot-key: Passed() = true, want false")
	}
}
