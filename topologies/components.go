package topologies

import (
	"bytes"
	"context"
	"embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/jackc/pgx/v5"
)

//go:embed templates/*.tmpl
var templateFiles embed.FS

// writeTemplate renders templates/<name>.tmpl with data into path.
func writeTemplate(name, path string, data any) error {
	tmpl, err := template.ParseFS(templateFiles, "templates/"+name+".tmpl")
	if err != nil {
		return fmt.Errorf("parse %s template: %w", name, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// httpGet fetches url and fails unless the status is 200.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// ---------------------------------------------------------------- app

// App is one scalelab server instance.
type App struct {
	daemon
	port        int
	metricsPort int // 0 when the runner gave it none
}

// MetricsURL is the base URL of the instance's metrics listener (its
// /metrics), or "" when it has none.
func (a *App) MetricsURL() string {
	if a.metricsPort == 0 {
		return ""
	}
	return "http://" + loopback(a.metricsPort)
}

// Addr is the instance's host:port.
func (a *App) Addr() string { return loopback(a.port) }

// URL is the instance's base URL, e.g. http://127.0.0.1:20001.
func (a *App) URL() string { return "http://" + a.Addr() }

func newApp(name, kind, dir, bin string, args []string, port int, log *slog.Logger) *App {
	a := &App{port: port}
	a.daemon = daemon{
		name: name, kind: kind, dir: dir, log: log,
		spec: procSpec{path: bin, args: args, dir: dir, logPath: filepath.Join(dir, kind+".log")},
		// The server drains on SIGTERM: /readyz fails, in-flight requests end.
		stopSignal: syscall.SIGTERM,
		stopGrace:  20 * time.Second,
	}
	a.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, a.URL()+"/readyz")
		return err
	}
	return a
}

// ---------------------------------------------------------------- haproxy

// HAProxy is the load balancer in front of the app instances. Its stats
// page and Prometheus exporter listen on StatsAddr.
type HAProxy struct {
	daemon
	port, statsPort int
	servers         []string
}

// Addr is the frontend's host:port.
func (h *HAProxy) Addr() string { return loopback(h.port) }

// URL is the frontend's base URL.
func (h *HAProxy) URL() string { return "http://" + h.Addr() }

// StatsAddr serves /stats (HTML, ";csv" for CSV) and /metrics.
func (h *HAProxy) StatsAddr() string { return loopback(h.statsPort) }

type haproxyServer struct{ Name, Addr string }

func newHAProxy(dir string, def *HAProxyDef, port, statsPort int, servers []haproxyServer, log *slog.Logger) (*HAProxy, error) {
	bin, err := lookBinary("haproxy")
	if err != nil {
		return nil, err
	}
	h := &HAProxy{port: port, statsPort: statsPort}
	for _, s := range servers {
		h.servers = append(h.servers, s.Name)
	}
	cfg := filepath.Join(dir, "haproxy.cfg")
	err = writeTemplate("haproxy.cfg", cfg, map[string]any{
		"MaxConn": def.MaxConn, "Dir": dir, "Addr": h.Addr(), "StatsAddr": h.StatsAddr(),
		"Balance": def.Balance, "CheckInterval": fmt.Sprintf("%dms", def.CheckInterval.Milliseconds()),
		"FastInterval": fmt.Sprintf("%dms", min(def.CheckInterval, 200*time.Millisecond).Milliseconds()),
		"Servers":      servers,
	})
	if err != nil {
		return nil, err
	}
	h.daemon = daemon{
		name: "haproxy", kind: "haproxy", dir: dir, log: log,
		// -db: stay in the foreground, one process (no master-worker).
		spec:       procSpec{path: bin, args: []string{"-db", "-f", cfg}, dir: dir, logPath: filepath.Join(dir, "haproxy.log")},
		stopSignal: syscall.SIGTERM,
		stopGrace:  5 * time.Second,
	}
	h.ready = func(ctx context.Context) error {
		states, err := h.ServerStates(ctx)
		if err != nil {
			return err
		}
		for _, s := range h.servers {
			if st := states[s]; st.Status != "UP" || !strings.HasPrefix(st.Check, "L7OK") {
				return fmt.Errorf("backend server %s: status %q, check %q", s, st.Status, st.Check)
			}
		}
		return nil
	}
	return h, nil
}

// ServerState is one backend server as HAProxy's stats see it.
type ServerState struct {
	Status   string // UP, DOWN, MAINT, "UP 1/2", …
	Check    string // last health check result, e.g. L7OK, L4CON
	Sessions int64  // total sessions (requests, for HTTP/1 without keep-alive reuse) sent to it
}

// ServerStates returns the state of every server of the "app" backend by
// name (app-1, app-2, …), from the stats CSV.
func (h *HAProxy) ServerStates(ctx context.Context) (map[string]ServerState, error) {
	body, err := httpGet(ctx, "http://"+h.StatsAddr()+"/stats;csv")
	if err != nil {
		return nil, err
	}
	return parseHAProxyCSV(body)
}

func parseHAProxyCSV(body []byte) (map[string]ServerState, error) {
	r := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("# "))))
	r.FieldsPerRecord = -1
	rows, err := r.ReadAll()
	if err != nil {
		return nil, fmt.Errorf("parse haproxy stats: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("parse haproxy stats: empty")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	get := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return row[i]
		}
		return ""
	}
	out := map[string]ServerState{}
	for _, row := range rows[1:] {
		if get(row, "pxname") != "app" || get(row, "svname") == "BACKEND" || get(row, "svname") == "FRONTEND" {
			continue
		}
		var st ServerState
		st.Status = get(row, "status")
		st.Check = get(row, "check_status")
		fmt.Sscan(get(row, "stot"), &st.Sessions)
		out[get(row, "svname")] = st
	}
	return out, nil
}

// ---------------------------------------------------------------- varnish

// Varnish is the CDN tier. WorkDir is its -n directory (varnishstat -n).
type Varnish struct {
	daemon
	port, adminPort int
	workDir         string
}

// Addr is the HTTP listener's host:port.
func (v *Varnish) Addr() string { return loopback(v.port) }

// URL is the base URL; PURGE requests from 127.0.0.1 evict an object.
func (v *Varnish) URL() string { return "http://" + v.Addr() }

// WorkDir is varnishd's -n directory.
func (v *Varnish) WorkDir() string { return v.workDir }

func newVarnish(dir string, def *VarnishDef, port, adminPort, backendPort int, log *slog.Logger) (*Varnish, error) {
	bin, err := lookBinary("varnishd")
	if err != nil {
		return nil, err
	}
	v := &Varnish{port: port, adminPort: adminPort, workDir: filepath.Join(dir, "work")}
	vcl := filepath.Join(dir, "default.vcl")
	err = writeTemplate("default.vcl", vcl, map[string]any{"BackendHost": "127.0.0.1", "BackendPort": backendPort,
		"Purgers": []string{`"127.0.0.1"`, `"localhost"`}})
	if err != nil {
		return nil, err
	}
	args := []string{"-F", "-a", v.Addr(), "-T", loopback(adminPort), "-n", v.workDir, "-f", vcl, "-s", def.Storage}
	if os.Geteuid() != 0 {
		args = append(args, "-j", "none") // the unix jail needs root
	}
	for _, k := range slices.Sorted(maps.Keys(def.Params)) {
		args = append(args, "-p", k+"="+def.Params[k])
	}
	v.daemon = daemon{
		name: "varnish", kind: "varnish", dir: dir, log: log,
		spec:       procSpec{path: bin, args: args, dir: dir, logPath: filepath.Join(dir, "varnish.log")},
		stopSignal: syscall.SIGTERM,
		stopGrace:  5 * time.Second,
	}
	// Ready when a request goes all the way through to an app instance.
	v.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, v.URL()+"/healthz")
		return err
	}
	return v, nil
}

// Stats returns varnishstat's MAIN counters (cache_hit, cache_miss, …).
func (v *Varnish) Stats(ctx context.Context) (map[string]uint64, error) {
	return varnishStats(ctx, v.workDir)
}

func varnishStats(ctx context.Context, workDir string) (map[string]uint64, error) {
	bin, err := lookBinary("varnishstat")
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, bin, "-1", "-j", "-n", workDir, "-f", "MAIN.*").Output()
	if err != nil {
		return nil, fmt.Errorf("varnishstat -n %s: %w", workDir, err)
	}
	return parseVarnishStats(out)
}

// parseVarnishStats reads `varnishstat -1 -j -f MAIN.*` into counters by
// name without the MAIN. prefix.
func parseVarnishStats(out []byte) (map[string]uint64, error) {
	var doc struct {
		Counters map[string]struct {
			Value uint64 `json:"value"`
		} `json:"counters"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("parse varnishstat: %w", err)
	}
	stats := map[string]uint64{}
	for k, c := range doc.Counters {
		stats[strings.TrimPrefix(k, "MAIN.")] = c.Value
	}
	return stats, nil
}

// ---------------------------------------------------------------- pgbouncer

// PgBouncer pools connections to the primary.
type PgBouncer struct {
	daemon
	port int
	db   string
}

// Addr is pgbouncer's host:port.
func (b *PgBouncer) Addr() string { return loopback(b.port) }

// URL is a pgx connection URL for the topology's database through
// pgbouncer. It asks pgx for default_query_exec_mode=cache_describe: with
// transaction pooling, pgx's default named prepared statements fail
// ("prepared statement already exists").
func (b *PgBouncer) URL() string {
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&default_query_exec_mode=cache_describe", b.Addr(), b.db)
}

func newPgBouncer(dir string, def *PgBouncerDef, port, primaryPort int, db string, log *slog.Logger) (*PgBouncer, error) {
	bin, err := lookBinary("pgbouncer")
	if err != nil {
		return nil, err
	}
	b := &PgBouncer{port: port, db: db}
	ini := filepath.Join(dir, "pgbouncer.ini")
	err = writeTemplate("pgbouncer.ini", ini, map[string]any{
		"PrimaryHost": "127.0.0.1", "PrimaryPort": primaryPort, "ListenAddr": "127.0.0.1", "Port": port, "Dir": dir, "PoolMode": def.PoolMode,
		"MaxClientConn": def.MaxClientConn, "DefaultPoolSize": def.DefaultPoolSize,
	})
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "userlist.txt"), []byte(pgbouncerUsers), 0o644); err != nil {
		return nil, fmt.Errorf("write pgbouncer userlist: %w", err)
	}
	if err := chownPostgres(dir); err != nil {
		return nil, err
	}
	b.daemon = daemon{
		name: "pgbouncer", kind: "pgbouncer", dir: dir, log: log,
		// pgbouncer refuses to run as root; in the foreground it logs to stderr.
		spec:       procSpec{path: bin, args: []string{ini}, dir: dir, logPath: filepath.Join(dir, "pgbouncer.log"), asPostgres: true},
		stopSignal: syscall.SIGTERM, // immediate; the apps are stopped before it
		stopGrace:  5 * time.Second,
	}
	b.ready = func(ctx context.Context) error { return pgbouncerReady(ctx, b.Addr(), db) }
	return b, nil
}

// pgbouncerUsers is pgbouncer's auth_file: the postgres user, trusted as
// Postgres trusts it.
const pgbouncerUsers = "\"postgres\" \"\"\n"

// pgbouncerReady checks once that pgbouncer at addr answers a query
// through to the primary.
func pgbouncerReady(ctx context.Context, addr, db string) error {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", addr, db))
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var one int
	return conn.QueryRow(ctx, "SELECT 1").Scan(&one)
}

// ---------------------------------------------------------------- prometheus

// Prometheus scrapes the app instances and HAProxy's exporter.
type Prometheus struct {
	daemon
	port    int
	targets int
}

// Addr is Prometheus' host:port.
func (p *Prometheus) Addr() string { return loopback(p.port) }

// URL is Prometheus' base URL (the UI, and /api/v1/query).
func (p *Prometheus) URL() string { return "http://" + p.Addr() }

type promJob struct {
	Name    string
	Path    string
	Targets []promTarget
	// Interval, when set, is the job's scrape interval (and timeout) in
	// Prometheus' notation, instead of the global one.
	Interval string
}

type promTarget struct{ Addr, Component string }

// promDuration writes d in Prometheus' notation.
func promDuration(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }

// promConfig is the prometheus.yml template's data.
type promConfig struct {
	Interval string // the global scrape interval
	Jobs     []promJob
}

// prometheusConfig is the process runtime's prometheus.yml: jobs, and
// Prometheus' own at self, scraped at the exporters' interval.
func prometheusConfig(def *PrometheusDef, self string, jobs []promJob) promConfig {
	jobs = append(slices.Clip(jobs), promJob{Name: "prometheus", Interval: promDuration(def.ExporterInterval),
		Targets: []promTarget{{Addr: self, Component: "prometheus"}}})
	return promConfig{Interval: promDuration(def.ScrapeInterval), Jobs: jobs}
}

func newPrometheus(dir string, def *PrometheusDef, port int, jobs []promJob, log *slog.Logger) (*Prometheus, error) {
	bin, err := lookBinary("prometheus")
	if err != nil {
		return nil, err
	}
	p := &Prometheus{port: port}
	data := prometheusConfig(def, p.Addr(), jobs)
	for _, j := range data.Jobs {
		p.targets += len(j.Targets)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := writeTemplate("prometheus.yml", cfg, data); err != nil {
		return nil, err
	}
	p.daemon = daemon{
		name: "prometheus", kind: "prometheus", dir: dir, log: log,
		spec: procSpec{path: bin, dir: dir, logPath: filepath.Join(dir, "prometheus.log"), args: []string{
			"--config.file=" + cfg,
			"--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--storage.tsdb.retention.time=7d",
			"--web.listen-address=" + p.Addr(),
		}},
		stopSignal: syscall.SIGTERM,
		stopGrace:  10 * time.Second,
	}
	p.ready = func(ctx context.Context) error {
		_, err := httpGet(ctx, p.URL()+"/-/ready")
		return err
	}
	return p, nil
}

// TargetsUp checks once that Prometheus has scraped every configured
// target successfully (up == 1 for all of them).
func (p *Prometheus) TargetsUp(ctx context.Context) error {
	body, err := httpGet(ctx, p.URL()+"/api/v1/targets?state=active")
	if err != nil {
		return err
	}
	var doc struct {
		Data struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return fmt.Errorf("parse prometheus targets: %w", err)
	}
	up := 0
	var down []string
	for _, t := range doc.Data.ActiveTargets {
		if t.Health == "up" {
			up++
			continue
		}
		down = append(down, fmt.Sprintf("%s %s %s", t.Labels["component"], t.Health, t.LastError))
	}
	if up < p.targets {
		return fmt.Errorf("prometheus: %d of %d targets up; not up: %s", up, p.targets, strings.Join(down, "; "))
	}
	return nil
}
