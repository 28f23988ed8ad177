package topologies_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"scalelab/topologies"
)

// Phase 4 runs a queue worker: it is a component of its own (worker-1,
// kind worker, stopped with the rest), serves /readyz and /metrics,
// Prometheus scrapes it, and it works the jobs the apps insert: an export
// asked for through the entry point is done. The sampler counts the job in
// its queue figures and the worker's CPU apart from the apps'.
func TestPhase4Worker(t *testing.T) {
	top := phase4.Topology(t)
	ctx := context.Background()
	workers := top.Workers()
	if len(workers) != 1 || workers[0].Name() != "worker-1" || workers[0].PID() == 0 {
		t.Fatalf("Workers() = %v, want worker-1 running", workers)
	}
	mustGet(t, workers[0].MetricsURL()+"/readyz")
	kind := ""
	for _, c := range top.Components() {
		if c.Name == "worker-1" {
			kind = c.Kind
		}
	}
	if kind != "worker" {
		t.Errorf("component worker-1 has kind %q, want worker", kind)
	}

	s, err := topologies.StartSampler(ctx, top, topologies.SamplerOptions{Interval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	call := func(method, path, token string, body any, want int) []byte {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, top.EntryURL+path, rd)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s = %d %s, want %d", method, path, resp.StatusCode, out, want)
		}
		return out
	}
	name := fmt.Sprintf("worker_%d", time.Now().UnixNano())
	var u struct{ ID string }
	json.Unmarshal(call("POST", "/api/v1/users", "", map[string]string{"email": name + "@example.com", "username": name, "password": "correct horse battery"}, http.StatusCreated), &u)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.Unmarshal(call("POST", "/api/v1/auth/token", "", map[string]string{"login": name, "password": "correct horse battery"}, http.StatusOK), &tok)
	call("POST", "/api/v1/users/"+u.ID+"/data", tok.AccessToken, map[string]any{"data": map[string]int{"n": 1}}, http.StatusCreated)
	var job struct{ ID string }
	json.Unmarshal(call("POST", "/api/v1/users/"+u.ID+"/exports", tok.AccessToken, nil, http.StatusAccepted), &job)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st struct{ Status string }
		json.Unmarshal(call("GET", "/api/v1/users/"+u.ID+"/exports/"+job.ID, tok.AccessToken, nil, http.StatusOK), &st)
		if st.Status == "done" {
			break
		}
		if st.Status == "failed" || time.Now().After(deadline) {
			t.Fatalf("export status %q, want done within 30s", st.Status)
		}
		time.Sleep(50 * time.Millisecond)
	}

	m, err := s.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Queue == nil {
		t.Fatalf("Measurements.Queue = nil, want the queue's figures (problems: %q)", m.Problems)
	}
	var export *topologies.JobKindStats
	for i := range m.Queue.Jobs {
		if m.Queue.Jobs[i].Kind == "export" {
			export = &m.Queue.Jobs[i]
		}
	}
	if export == nil || export.Completed != 1 || export.Started != 1 {
		t.Errorf("Queue.Jobs = %+v, want one export completed", m.Queue.Jobs)
	}
	sawCPU := false
	for _, c := range m.CPU {
		sawCPU = sawCPU || (c.Name == "worker-1" && c.Kind == "worker")
	}
	if !sawCPU {
		t.Errorf("CPU = %+v, want worker-1 sampled apart", m.CPU)
	}
	t.Logf("queue: %+v", *m.Queue)
}
