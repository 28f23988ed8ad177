package main

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestRegressUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.json")
	tests := map[string]struct {
		args []string
		msg  string
	}{
		"no baseline":            {[]string{"--baseline", missing}, missing + " does not exist"},
		"slowdown of 100%":       {[]string{"--plant-slowdown", "1"}, "--plant-slowdown 1: want a fraction in [0, 1)"},
		"planting into baseline": {[]string{"--update-baseline", "--plant-slowdown", "0.2"}, "would commit a slowed-down baseline"},
		"no rounds":              {[]string{"--rounds", "0"}, "--rounds 0"},
		"tolerance as percent":   {[]string{"--tolerance", "10"}, "--tolerance 10"},
		"a round too short":      {[]string{"--round", "1ms"}, "--round 1ms"},
		"no virtual users":       {[]string{"--vus", "0"}, "--vus 0"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"regress"}, tt.args...), func(string) string { return "" }, &out, &errOut)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, tt.msg) {
				t.Errorf("regress %q = %v, want exit status 2 with %q", tt.args, err, tt.msg)
			}
		})
	}
	t.Run("from the environment", func(t *testing.T) {
		env := map[string]string{"SCALELAB_PLANT_SLOWDOWN": "2"}
		err := run(context.Background(), []string{"regress"}, func(k string) string { return env[k] }, &bytes.Buffer{}, &bytes.Buffer{})
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, "--plant-slowdown 2") {
			t.Errorf("regress with SCALELAB_PLANT_SLOWDOWN=2 = %v, want exit status 2 naming --plant-slowdown", err)
		}
	})
}
