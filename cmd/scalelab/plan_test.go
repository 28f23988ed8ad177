package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlanCommand(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	runs := filepath.Join("..", "..", "plan", "testdata", "runs")
	args := []string{"plan", "--users", "1000000",
		"--from", filepath.Join(runs, "phase-1"), "--from", filepath.Join(runs, "phase-3"), "--out", out}
	getenv := func(string) string { return "" }
	if err := run(context.Background(), args, getenv, &stdout, &stderr); err != nil {
		t.Fatalf("run(%q) = %v; stderr: %s", args, err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "smallest phase that meets it: 3") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	data, err := os.ReadFile(filepath.Join(out, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		MinPhase int `json:"min_phase"`
		Phases   []struct {
			Phase int `json:"phase"`
		} `json:"phases"`
	}
	if err := json.Unmarshal(data, &p); err != nil {
		t.Fatal(err)
	}
	if p.MinPhase != 3 || len(p.Phases) != 2 {
		t.Errorf("plan.json: min phase %d over %d phases, want 3 over 2 (the two --from)", p.MinPhase, len(p.Phases))
	}
}

func TestPlanCommandRejectsBadWorkload(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"plan", "--users", "0", "--out", t.TempDir()}, func(string) string { return "" }, &stdout, &stderr)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(ee.msg, "users 0") {
		t.Errorf("plan --users 0 = %v, want a usage error about users", err)
	}
}
