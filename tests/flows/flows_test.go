package flows

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"scalelab/topologies"
	"scalelab/topologies/topotest"

	"scalelab/server/app"
	"scalelab/server/jobs"
)

// phase3 is the one phase-3 topology (HAProxy, three apps, a primary with
// two replicas, Redis) that the phase-3 tests share. They run one after
// another, never in parallel: several pause replicas or kill Redis, and
// each leaves the topology as it found it. The CDN test brings up its own
// phase 4.
var phase3 = topotest.Shared{Phase: 3, Flags: commandFlags()}

func TestMain(m *testing.M) { os.Exit(phase3.Main(m)) }

// commandFlags are the flag sets the phase files are checked against.
func commandFlags() topologies.Flags {
	server, _ := app.FlagSet("server")
	worker, _ := jobs.WorkerFlagSet("worker")
	return topologies.Flags{Server: server, Worker: worker}
}

// client talks to the topologies. It keeps enough idle connections for the
// concurrent tests not to open a connection per request.
var client = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     30 * time.Second,
	},
}

// clientAddr returns a fresh client address from 198.18.0.0/15 (RFC 2544's
// benchmarking range) to send as X-Forwarded-For: the topology's apps
// trust loopback proxies, so each address is a distinct client with its
// own anonymous and per-address budgets.
func clientAddr() string {
	n := addrSeq.Add(1)
	return fmt.Sprintf("198.%d.%d.%d", 18+(n>>16)&1, (n>>8)&0xff, n&0xff)
}

var addrSeq atomic.Uint32

// request is one API call. Token, XFF and Host are optional; Host
// replaces the URL's host in the Host header.
type request struct {
	Method, URL string
	Token       string
	XFF         string
	Host        string
	Body        any
	// Wrote is sent as X-Scalelab-Wrote: the write hint a client that
	// keeps them sends back ("none" before its first write).
	Wrote string
}

// response is what came back.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// send makes the call; it fails only on a transport error.
func send(ctx context.Context, r request) (*response, error) {
	var body io.Reader
	if r.Body != nil {
		b, err := json.Marshal(r.Body)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, body)
	if err != nil {
		return nil, err
	}
	if r.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	if r.XFF != "" {
		req.Header.Set("X-Forwarded-For", r.XFF)
	}
	if r.Host != "" {
		req.Host = r.Host
	}
	if r.Wrote != "" {
		req.Header.Set("X-Scalelab-Wrote", r.Wrote)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// mustSend makes the call and fails the test on a transport error or a
// status other than want.
func mustSend(t testing.TB, r request, want int) *response {
	t.Helper()
	resp, err := send(context.Background(), r)
	if err != nil {
		t.Fatalf("%s %s: %v", r.Method, r.URL, err)
	}
	if resp.Status != want {
		t.Fatalf("%s %s = %d %s, want %d", r.Method, r.URL, resp.Status, resp.Body, want)
	}
	return resp
}

// user is a signed-up user with a token.
type user struct {
	ID, Login, Password, Token string
}

var userSeq atomic.Int64

// signUp creates a user through base (an app, HAProxy or Varnish URL) and
// gets a token for it there, each request from a fresh client address.
func signUp(t testing.TB, base string) *user {
	t.Helper()
	n := userSeq.Add(1)
	login := fmt.Sprintf("flows_%d_%d", time.Now().UnixNano()%1e9, n)
	u := &user{Login: login, Password: "correct horse battery " + login}
	resp := mustSend(t, request{Method: http.MethodPost, URL: base + "/api/v1/users", XFF: clientAddr(), Body: map[string]any{
		"email": login + "@example.com", "username": login, "password": u.Password,
		"profile": map[string]string{"name": "initial"},
	}}, http.StatusCreated)
	var created struct{ ID string }
	if err := json.Unmarshal(resp.Body, &created); err != nil || created.ID == "" {
		t.Fatalf("sign-up answered %s: %v", resp.Body, err)
	}
	u.ID = created.ID
	resp = mustSend(t, request{Method: http.MethodPost, URL: base + "/api/v1/auth/token", XFF: clientAddr(),
		Body: map[string]string{"login": login, "password": u.Password}}, http.StatusOK)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(resp.Body, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token request answered %s: %v", resp.Body, err)
	}
	u.Token = tok.AccessToken
	return u
}

// userURL is the user resource of id under base.
func userURL(base, id string) string { return base + "/api/v1/users/" + id }

// profileName reads profile.name from a user view.
func profileName(t testing.TB, body []byte) string {
	t.Helper()
	name, err := nameOf(body)
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// nameOf is profileName for goroutines other than the test's.
func nameOf(body []byte) (string, error) {
	var v struct {
		Profile struct{ Name string }
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", fmt.Errorf("decode user %s: %w", body, err)
	}
	return v.Profile.Name, nil
}

// setName changes u's profile name through base and fails unless it
// was acknowledged.
func setName(t testing.TB, base string, u *user, name string) {
	t.Helper()
	mustSend(t, request{Method: http.MethodPut, URL: userURL(base, u.ID), Token: u.Token,
		Body: map[string]any{"profile": map[string]string{"name": name}}}, http.StatusOK)
}

// appURLs are the instances' base URLs, app-1 first. It notes where
// each one serves its metrics, for scrape.
func appURLs(top *topologies.Topology) []string {
	var urls []string
	for _, a := range top.Apps() {
		urls = append(urls, a.URL())
		metricsURLs.Store(a.URL(), a.MetricsURL())
	}
	return urls
}

// metricsURLs maps an instance's base URL to its metrics listener's: the
// server serves /metrics apart from the API.
var metricsURLs sync.Map

// metrics is one scrape of an instance's /metrics.
type metrics string

// scrape reads the metrics of the instance whose API is at base.
func scrape(t testing.TB, base string) metrics {
	t.Helper()
	m, ok := metricsURLs.Load(base)
	if !ok || m.(string) == "" {
		t.Fatalf("no metrics listener known for %s", base)
	}
	resp := mustSend(t, request{Method: http.MethodGet, URL: m.(string) + "/metrics"}, http.StatusOK)
	return metrics(resp.Body)
}

// sum adds up the samples of the metric called name whose labels contain
// every one of labels (each written as in the exposition: key="value").
func (m metrics) sum(name string, labels ...string) float64 {
	var total float64
	for _, line := range strings.Split(string(m), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, labelSet, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(labelSet, l) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		if v, err := strconv.ParseFloat(strings.Fields(value)[0], 64); err == nil {
			total += v
		}
	}
	return total
}

// connect opens a connection to a Postgres URL for the test.
func connect(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// waitReplicated waits until every replica has the user row with id at
// version at least v, so that reads of it do not depend on replica lag.
func waitReplicated(t testing.TB, top *topologies.Topology, id string, v int64) {
	t.Helper()
	ctx := context.Background()
	for _, r := range top.Replicas() {
		conn := connect(t, r.URL())
		deadline := time.Now().Add(5 * time.Second)
		for {
			var got int64
			err := conn.QueryRow(ctx, `SELECT version FROM users WHERE id = $1`, id).Scan(&got)
			if err == nil && got >= v {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: user %s version = %d, %v; want >= %d within 5s", r.Name(), id, got, err, v)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// eventually polls cond every 50ms until it holds or d has passed, and
// reports whether it held.
func eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startServer runs `scalelab server` with flags on a free port until the
// test ends, and returns its base URL once /readyz answers.
func startServer(t *testing.T, name string, flags ...string) string {
	t.Helper()
	bin, err := topotest.Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"server", "--addr", "127.0.0.1:0", "--instance-name", name}, flags...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Its own process group, and killed if this test process dies
	// without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop within 20s of SIGTERM; killed", name)
		}
		stdout.Close()
		stderr.Close()
		if t.Failed() {
			if b, err := os.ReadFile(stderr.Name()); err == nil {
				t.Logf("%s log:\n%s", name, b)
			}
		}
	})
	listening := regexp.MustCompile(`listening on (http://\S+)`)
	metricsOn := regexp.MustCompile(`metrics on (http://\S+)/metrics`)
	var url string
	ready := false
	eventually(15*time.Second, func() bool {
		select {
		case err := <-exited:
			exited <- err
			return true
		default:
		}
		b, _ := os.ReadFile(stdout.Name())
		m := listening.FindSubmatch(b)
		if m == nil {
			return false
		}
		url = string(m[1])
		mm := metricsOn.FindSubmatch(b)
		if mm == nil {
			return false
		}
		metricsURLs.Store(url, string(mm[1]))
		resp, err := send(context.Background(), request{Method: http.MethodGet, URL: url + "/readyz"})
		ready = err == nil && resp.Status == http.StatusOK
		return ready
	})
	if !ready {
		b, _ := os.ReadFile(stderr.Name())
		t.Fatalf("%s did not become ready within 15s: %q\n%s", name, cmd.Args, b)
	}
	return url
}

// randomHex returns n random bytes in hex, e.g. for --token-secret hex:….
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
