//go:build containers

package topologies_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"scalelab/internal/dockerd"
)

// TestSwarmPhase3 makes the project's Docker daemon a one-node swarm
// (advertised on 127.0.0.1), deploys the checked-in
// docker/phase-3.stack.yaml with `docker stack deploy`, signs up, gets a
// token and reads the user through the stack's published entry port on
// 127.0.0.1, then removes the stack, leaves the swarm and checks that
// nothing of either is left. Every service is reached by its task's own
// address (endpoint_mode dnsrr), so it needs no IPVS in the kernel.
func TestSwarmPhase3(t *testing.T) {
	d := dockerd.ForTest(t)
	bin, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("docker: %v (run `make deps`)", err)
	}
	stack := fmt.Sprintf("scalelab-swarm-%d", os.Getpid())
	port, promPort, mgmtPort := freePort(t), freePort(t), freePort(t)
	docker := func(ctx context.Context, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host(), "SCALELAB_TOKEN_SECRET=hex:"+strings.Repeat("cd", 32),
			fmt.Sprintf("SCALELAB_PORT=%d", port), fmt.Sprintf("SCALELAB_PROMETHEUS_PORT=%d", promPort))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return string(out), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	// Never take over (or leave) a swarm this test did not make.
	state, err := docker(ctx, "info", "--format", "{{.Swarm.LocalNodeState}}")
	if err != nil {
		t.Fatal(err)
	}
	if state != "inactive" {
		t.Fatalf("the Docker daemon at %s is already in a swarm (%s); this test makes its own and leaves it", d.Host(), state)
	}
	gwBefore, err := docker(ctx, "network", "ls", "-q", "--filter", "name=^docker_gwbridge$")
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", mgmtPort)
	if _, err := docker(ctx, "swarm", "init", "--advertise-addr", addr, "--listen-addr", addr); err != nil {
		t.Fatal(err)
	}
	deployed := false
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer ccancel()
		if deployed {
			if _, err := docker(cctx, "stack", "rm", stack); err != nil {
				t.Error(err)
			}
			// stack rm returns at once; its containers and network go
			// a little later.
			if err := waitGone(cctx, docker, stack); err != nil {
				t.Error(err)
			}
		}
		if _, err := docker(cctx, "swarm", "leave", "--force"); err != nil {
			t.Error(err)
		}
		if gwBefore == "" {
			// Joining a swarm made docker_gwbridge; leaving keeps it.
			if _, err := docker(cctx, "network", "rm", "docker_gwbridge"); err != nil && !strings.Contains(err.Error(), "No such network") {
				t.Error(err)
			}
		}
		left, err := docker(cctx, "network", "ls", "-q", "--filter", "name=^(ingress|docker_gwbridge)$")
		if err != nil || (left != "" && gwBefore == "") {
			t.Errorf("after leaving the swarm: networks %q (%v), want no ingress or docker_gwbridge", left, err)
		}
		if st, err := docker(cctx, "info", "--format", "{{.Swarm.LocalNodeState}}"); err != nil || st != "inactive" {
			t.Errorf("swarm state after leave = %q (%v), want inactive", st, err)
		}
	})

	start := time.Now()
	// --resolve-image never: the images are local; there is no registry
	// to ask for their digests.
	if _, err := docker(ctx, "stack", "deploy", "--resolve-image", "never", "-c", filepath.Join("..", "docker", "phase-3.stack.yaml"), stack); err != nil {
		t.Fatal(err)
	}
	deployed = true
	// The apps restart until Postgres accepts them; the entry port serves
	// once HAProxy sees an instance ready.
	entry := fmt.Sprintf("http://127.0.0.1:%d", port)
	var last error
	for ctx.Err() == nil {
		var resp *http.Response
		if resp, last = http.Get(entry + "/readyz"); last == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			last = fmt.Errorf("readyz: %s", resp.Status)
		}
		time.Sleep(time.Second)
	}
	if ctx.Err() != nil {
		ps, _ := docker(context.Background(), "stack", "ps", "--no-trunc", stack)
		t.Fatalf("phase 3 stack not serving after %v: %v\n%s", time.Since(start).Round(time.Second), last, ps)
	}
	t.Logf("phase 3 stack serving after %v", time.Since(start).Round(time.Millisecond))
	api := entry + "/api/v1"
	var user struct {
		ID string `json:"id"`
	}
	if status := call(t, http.MethodPost, api+"/users", "", map[string]any{
		"email": "swarm@example.com", "username": "swarm_user", "password": "correct horse battery",
	}, &user); status != http.StatusCreated {
		t.Fatalf("POST /users = %d, want 201", status)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status := call(t, http.MethodPost, api+"/auth/token", "", map[string]any{"login": "swarm_user", "password": "correct horse battery"}, &tok); status != http.StatusOK {
		t.Fatalf("POST /auth/token = %d, want 200", status)
	}
	for range 6 { // round robin over the three instances
		if status := call(t, http.MethodGet, api+"/users/"+user.ID, tok.AccessToken, nil, nil); status != http.StatusOK {
			t.Fatalf("GET /users/%s = %d, want 200", user.ID, status)
		}
	}
}

// waitGone polls until no container or network of the stack is left.
func waitGone(ctx context.Context, docker func(context.Context, ...string) (string, error), stack string) error {
	label := "label=com.docker.stack.namespace=" + stack
	for {
		cs, err1 := docker(ctx, "ps", "-aq", "--filter", label)
		ns, err2 := docker(ctx, "network", "ls", "-q", "--filter", label)
		if err1 == nil && err2 == nil && cs == "" && ns == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stack %s: containers %q and networks %q still there (%v, %v): %w", stack, cs, ns, err1, err2, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
