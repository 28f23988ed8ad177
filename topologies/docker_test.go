//go:build containers

package topologies_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/ory/dockertest/v3"
	dc "github.com/ory/dockertest/v3/docker"

	"scalelab/internal/dockerd"
	"scalelab/topologies"
	"scalelab/topologies/topotest"
)

// TestDockerPhase3 brings phase 3 up as containers, signs a user up, gets
// a token and reads the user back through HAProxy's published port, and
// checks that Down leaves no container or network of the run.
func TestDockerPhase3(t *testing.T) {
	d := dockerd.ForTest(t)
	pool, err := dockertest.NewPool(d.Host())
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{topologies.DefaultInfraImage, topologies.DefaultAppImage} {
		if _, err := pool.Client.InspectImage(img); err != nil {
			t.Fatalf("image %s: %v (build it with `make images`)", img, err)
		}
	}
	bin, err := topotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	def, err := topologies.Phase(3, commandFlags())
	if err != nil {
		t.Fatal(err)
	}
	def.Limits = map[string]topologies.Limit{"app": {CPUs: 1, Memory: "256m"}, "replica-2": {Memory: "512m"}}
	dir, err := os.MkdirTemp("", "scalelab-docker-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	top, err := topologies.Up(ctx, def, topologies.Options{
		Binary: bin, Dir: dir, Runtime: topologies.RuntimeDocker, DockerHost: d.Host(),
		FastPostgres: true, Logger: topotest.Logger(),
	})
	if err != nil {
		t.Fatalf("Up(phase 3, docker) = %v", err)
	}
	up := time.Since(start)
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			_ = top.Down(context.Background())
		}
	})
	t.Logf("phase 3 up in containers in %v; entry %s", up.Round(time.Millisecond), top.EntryURL)

	// The limits reached the containers.
	app1 := containerOf(t, pool, top, "app-1")
	if got, want := app1.HostConfig.Memory, int64(256<<20); got != want {
		t.Errorf("app-1 memory limit = %d, want %d", got, want)
	}
	if got, want := app1.HostConfig.CPUQuota, int64(100000); got != want {
		t.Errorf("app-1 CPU quota = %d, want %d", got, want)
	}
	if got, want := containerOf(t, pool, top, "replica-2").HostConfig.Memory, int64(512<<20); got != want {
		t.Errorf("replica-2 memory limit = %d, want %d", got, want)
	}

	// Sign up, token, GET through the entry point.
	api := top.EntryURL + top.API
	var user struct {
		ID string `json:"id"`
	}
	status := call(t, http.MethodPost, api+"/users", "", map[string]any{
		"email": "docker@example.com", "username": "docker_user", "password": "correct horse battery",
		"profile": map[string]any{"name": "Docker"},
	}, &user)
	if status != http.StatusCreated || user.ID == "" {
		t.Fatalf("POST /users = %d (id %q), want 201 with an id", status, user.ID)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status := call(t, http.MethodPost, api+"/auth/token", "", map[string]any{"login": "docker_user", "password": "correct horse battery"}, &tok); status != http.StatusOK || tok.AccessToken == "" {
		t.Fatalf("POST /auth/token = %d, want 200 with a token", status)
	}
	var got struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	}
	if status := call(t, http.MethodGet, api+"/users/"+user.ID, tok.AccessToken, nil, &got); status != http.StatusOK || got.Email != "docker@example.com" {
		t.Fatalf("GET /users/%s = %d %+v, want 200 with the email", user.ID, status, got)
	}

	cpu, err := top.ContainerCPU()
	if err != nil {
		t.Fatalf("ContainerCPU: %v", err)
	}
	if cpu["app-1"] <= 0 || cpu["primary"] <= 0 {
		t.Errorf("ContainerCPU = %v, want CPU time for app-1 and primary", cpu)
	}

	start = time.Now()
	if err := top.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	downDone = true
	t.Logf("phase 3 down in %v", time.Since(start).Round(time.Millisecond))
	filter := map[string][]string{"label": {"scalelab.run=" + top.RunID}}
	cs, err := pool.Client.ListContainers(dc.ListContainersOptions{All: true, Filters: filter})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := pool.Client.FilteredListNetworks(dc.NetworkFilterOpts{"label": {"scalelab.run=" + top.RunID: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 || len(nets) != 0 {
		t.Errorf("after Down: %d containers and %d networks of run %s left, want none", len(cs), len(nets), top.RunID)
	}
}

func containerOf(t *testing.T, pool *dockertest.Pool, top *topologies.Topology, name string) *dc.Container {
	t.Helper()
	for _, c := range top.Components() {
		if c.Name == name {
			ct, err := pool.Client.InspectContainer(c.Container)
			if err != nil {
				t.Fatalf("inspect %s: %v", name, err)
			}
			return ct
		}
	}
	t.Fatalf("no component %s", name)
	return nil
}

// call sends a JSON request and decodes a JSON answer into out.
func call(t *testing.T, method, url, token string, body, out any) int {
	t.Helper()
	var rd bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&rd).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(method, url, &rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode < 300 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

// TestDockerPhase4 brings phase 4 up as containers (pgbouncer, a Redis
// Cluster of 3+3 nodes, Varnish in front of HAProxy), sends traffic
// through Varnish's published port, checks that the CDN tier caches the
// public view and that a write purges it, that a Sampler reads all three
// cache tiers, the replicas' lag and every container's CPU, and that Down
// leaves nothing of the run.
func TestDockerPhase4(t *testing.T) {
	d := dockerd.ForTest(t)
	pool, err := dockertest.NewPool(d.Host())
	if err != nil {
		t.Fatal(err)
	}
	bin, err := topotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	def, err := topologies.Phase(4, commandFlags())
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "scalelab-docker-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })

	// Generous: on a loaded machine container starts take long; Up
	// removes everything it started if it fails.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	top, err := topologies.Up(ctx, def, topologies.Options{
		Binary: bin, Dir: dir, Runtime: topologies.RuntimeDocker, DockerHost: d.Host(),
		FastPostgres: true, Logger: topotest.Logger(), Timeout: 6 * time.Minute,
	})
	if err != nil {
		t.Fatalf("Up(phase 4, docker) = %v", err)
	}
	downDone := false
	t.Cleanup(func() {
		if !downDone {
			_ = top.Down(context.Background())
		}
	})
	t.Logf("phase 4 up in containers in %v; entry %s", time.Since(start).Round(time.Millisecond), top.EntryURL)
	if top.EntryURL != top.VarnishURL || top.PgBouncerURL == "" || len(top.RedisClusterAddrs) != 6 {
		t.Errorf("entry %s, varnish %s, pgbouncer %q, cluster %v; want the entry at Varnish, pgbouncer and 6 cluster nodes",
			top.EntryURL, top.VarnishURL, top.PgBouncerURL, top.RedisClusterAddrs)
	}
	sampler, err := topologies.StartSampler(ctx, top, topologies.SamplerOptions{})
	if err != nil {
		t.Fatal(err)
	}

	api := top.EntryURL + top.API
	var user struct {
		ID string `json:"id"`
	}
	if status := call(t, http.MethodPost, api+"/users", "", map[string]any{
		"email": "cdn@example.com", "username": "cdn_user", "password": "correct horse battery",
		"profile": map[string]any{"name": "Before"},
	}, &user); status != http.StatusCreated {
		t.Fatalf("POST /users = %d, want 201", status)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status := call(t, http.MethodPost, api+"/auth/token", "", map[string]any{"login": "cdn_user", "password": "correct horse battery"}, &tok); status != http.StatusOK {
		t.Fatalf("POST /auth/token = %d, want 200", status)
	}
	// The anonymous public view: a miss, then a hit from Varnish.
	if name, cache := publicName(t, api+"/users/"+user.ID); name != "Before" || cache != "MISS" {
		t.Errorf("first anonymous GET: name %q, X-Cache %q; want Before, MISS", name, cache)
	}
	if name, cache := publicName(t, api+"/users/"+user.ID); name != "Before" || cache != "HIT" {
		t.Errorf("second anonymous GET: name %q, X-Cache %q; want Before, HIT", name, cache)
	}
	// A write purges it: the app PURGEs Varnish from the run's network.
	if status := call(t, http.MethodPut, api+"/users/"+user.ID, tok.AccessToken, map[string]any{"profile": map[string]any{"name": "After"}}, nil); status != http.StatusOK {
		t.Fatalf("PUT /users/%s = %d, want 200", user.ID, status)
	}
	// The purge is sent after the write is answered: poll for it.
	deadline := time.Now().Add(30 * time.Second)
	for name, _ := publicName(t, api+"/users/"+user.ID); name != "After"; name, _ = publicName(t, api+"/users/"+user.ID) {
		if time.Now().After(deadline) {
			t.Fatalf("anonymous GET 30s after the write: name %q, want After (the write must purge the CDN tier)", name)
		}
		time.Sleep(200 * time.Millisecond)
	}

	m, err := sampler.Stop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Cache.L3 == nil || m.Cache.L3.Hits == 0 {
		t.Errorf("L3 = %+v, want Varnish's hits (varnishstat in its container)", m.Cache.L3)
	}
	if m.Cache.L1 == nil || m.Cache.L2 == nil {
		t.Errorf("L1 %+v, L2 %+v; want both tiers counted", m.Cache.L1, m.Cache.L2)
	}
	if len(m.Replicas) != 2 || m.Replicas[0].Samples == 0 {
		t.Errorf("replicas = %+v, want 2 sampled", m.Replicas)
	}
	cpu := map[string]float64{}
	for _, c := range m.CPU {
		cpu[c.Name] = c.Seconds
	}
	for _, name := range []string{"varnish", "haproxy", "pgbouncer", "primary", "redis-master-0", "app-1"} {
		if cpu[name] <= 0 {
			t.Errorf("%s used %v s of CPU, want some (all: %v)", name, cpu[name], cpu)
		}
	}
	if len(m.Problems) > 0 {
		t.Errorf("measurement problems: %v", m.Problems)
	}

	start = time.Now()
	if err := top.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	downDone = true
	t.Logf("phase 4 down in %v", time.Since(start).Round(time.Millisecond))
	assertRunGone(t, pool, top.RunID)
}

// publicName GETs an anonymous public view and returns its profile name
// and Varnish's X-Cache header.
func publicName(t *testing.T, url string) (name, cache string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var u struct {
		Profile struct {
			Name string `json:"name"`
		} `json:"profile"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %s, want 200", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&u); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return u.Profile.Name, resp.Header.Get("X-Cache")
}

// assertRunGone fails when a container or network of run runID exists.
func assertRunGone(t *testing.T, pool *dockertest.Pool, runID string) {
	t.Helper()
	filter := map[string][]string{"label": {"scalelab.run=" + runID}}
	cs, err := pool.Client.ListContainers(dc.ListContainersOptions{All: true, Filters: filter})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := pool.Client.FilteredListNetworks(dc.NetworkFilterOpts{"label": {"scalelab.run=" + runID: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 0 || len(nets) != 0 {
		t.Errorf("after Down: %d containers and %d networks of run %s left, want none", len(cs), len(nets), runID)
	}
}
