//go:build containers

package topologies_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"scalelab/internal/dockerd"
)

// TestComposePhase3 brings the checked-in docker/phase-3.compose.yaml up
// with Debian's docker-compose on the locally built images, signs up, gets
// a token and reads the user through HAProxy's published port, and takes
// it down leaving no container or network of the project.
func TestComposePhase3(t *testing.T) {
	d := dockerd.ForTest(t)
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		t.Fatalf("docker-compose: %v (run `make deps`)", err)
	}
	pool, err := dockertest.NewPool(d.Host())
	if err != nil {
		t.Fatal(err)
	}
	project := fmt.Sprintf("scalelab-test-%d", os.Getpid())
	port := freePort(t)
	compose := func(ctx context.Context, args ...string) error {
		cmd := exec.CommandContext(ctx, bin, append([]string{"--compatibility", "-f", filepath.Join("..", "docker", "phase-3.compose.yaml"), "-p", project}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.Host(), "SCALELAB_TOKEN_SECRET=hex:"+strings.Repeat("ab", 32),
			fmt.Sprintf("SCALELAB_PORT=%d", port), fmt.Sprintf("SCALELAB_PROMETHEUS_PORT=%d", freePort(t)))
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker-compose %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	down := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		return compose(ctx, "down", "-v", "--remove-orphans", "-t", "5")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			if err := down(); err != nil {
				t.Error(err)
			}
		}
	})
	if err := compose(ctx, "up", "-d"); err != nil {
		t.Fatal(err)
	}
	// The apps restart until Postgres and its replicas accept them; the
	// entry point serves once HAProxy sees an instance ready.
	api := fmt.Sprintf("http://127.0.0.1:%d/api/v1", port)
	var last error
	for ctx.Err() == nil {
		var resp *http.Response
		resp, last = http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if last == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
			last = fmt.Errorf("readyz: %s", resp.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatalf("phase 3 (compose) not serving after %v: %v", time.Since(start).Round(time.Second), last)
	}
	t.Logf("phase 3 (compose) serving after %v", time.Since(start).Round(time.Millisecond))
	var user struct {
		ID string `json:"id"`
	}
	if status := call(t, http.MethodPost, api+"/users", "", map[string]any{
		"email": "compose@example.com", "username": "compose_user", "password": "correct horse battery",
	}, &user); status != http.StatusCreated {
		t.Fatalf("POST /users = %d, want 201", status)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status := call(t, http.MethodPost, api+"/auth/token", "", map[string]any{"login": "compose_user", "password": "correct horse battery"}, &tok); status != http.StatusOK {
		t.Fatalf("POST /auth/token = %d, want 200", status)
	}
	// Round robin: every instance accepts the token another one issued.
	for range 6 {
		if status := call(t, http.MethodGet, api+"/users/"+user.ID, tok.AccessToken, nil, nil); status != http.StatusOK {
			t.Fatalf("GET /users/%s = %d, want 200", user.ID, status)
		}
	}
	start = time.Now()
	downDone = true
	if err := down(); err != nil {
		t.Fatal(err)
	}
	t.Logf("phase 3 (compose) down in %v", time.Since(start).Round(time.Millisecond))
	cs, err := pool.Client.ListContainers(dc.ListContainersOptions{All: true, Filters: map[string][]string{"label": {"com.docker.compose.project=" + project}}})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := pool.Client.FilteredListNetworks(dc.NetworkFilterOpts{"label": {"com.docker.compose.project=" + project: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 || len(nets) != 0 {
		t.Errorf("after down: %d containers and %d networks of project %s left, want none", len(cs), len(nets), project)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
