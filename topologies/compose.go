package topologies

import (
	"bytes"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"
)

// ComposeFile is one file the Compose generator writes, relative to the
// folder of the Compose file (docker/).
type ComposeFile struct {
	Path string
	Data []byte
}

// Compose writes a phase's topology as a Compose file (version 3.8, which
// Debian's docker-compose 1.29 runs and `docker stack deploy` deploys)
// plus the configuration files it names, from the same definition the
// runners use: the same components, settings, app flags and limits, on
// the images `make images` builds. Services are named like the
// components (primary, replica-1, redis, app-1, haproxy, prometheus), so
// the app flags' ${…} variables become service addresses. The entry
// point is published on 127.0.0.1:${SCALELAB_PORT:-8080}, Prometheus on
// 127.0.0.1:${SCALELAB_PROMETHEUS_PORT:-9090}; the token secret comes from
// SCALELAB_TOKEN_SECRET, which must be set.
//
// Phase 4's pgbouncer, Redis Cluster, Varnish and workers are not
// generated yet: such a definition is an error.
func Compose(def *Definition) ([]ComposeFile, error) {
	if err := dockerSupported(def); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("phase-%d", def.Phase)
	cfgDir := base // docker/phase-N/ holds the config files
	doc := composeDoc{Version: "3.8", Services: map[string]*composeService{}}
	var files []ComposeFile
	// Config files are bind-mounted: docker-compose 1.29 ignores
	// `configs:` outside Swarm. On a Swarm of several machines the files
	// must therefore exist at the same path on every node (docs/containers.md).
	addConfig := func(file string, data []byte) string {
		files = append(files, ComposeFile{Path: path.Join(cfgDir, file), Data: data})
		return "./" + path.Join(cfgDir, file) + ":/etc/scalelab/" + file + ":ro"
	}
	svc := func(name, kind, image string, cmd []string) *composeService {
		s := &composeService{Image: image, Command: cmd, Hostname: name}
		l := def.limitFor(name, kind)
		mem, _ := parseMemory(l.Memory)
		if l.CPUs > 0 || mem > 0 {
			s.Deploy.Resources = &composeResources{Limits: composeLimit{Memory: strings.ToUpper(strings.TrimSuffix(strings.ToLower(l.Memory), "b"))}}
			if l.CPUs > 0 {
				s.Deploy.Resources.Limits.CPUs = fmt.Sprintf("%g", l.CPUs)
			}
		}
		s.Deploy.Placement = &composePlacement{Constraints: []string{"node.labels.scalelab.tier." + tierOf(kind) + " != false"}}
		s.Deploy.RestartPolicy = &composeRestart{Condition: "on-failure"}
		s.Restart = "on-failure"
		s.Labels = map[string]string{"scalelab.phase": fmt.Sprint(def.Phase), "scalelab.component": name}
		doc.Services[name] = s
		return s
	}
	host := func(name string) string { return name }
	if p := def.Postgres; p != nil {
		s := svc("primary", "postgres", DefaultInfraImage, postgresCmd(def, "primary", "primary", def.Postgres.Database, false))
		s.Healthcheck = &composeHealth{Test: []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres"}, Interval: "2s", Timeout: "3s", Retries: 30}
		for i := range p.Replicas {
			name := fmt.Sprintf("replica-%d", i+1)
			r := svc(name, "postgres", DefaultInfraImage, postgresCmd(def, "replica", name, host("primary"), false))
			r.DependsOn = []string{"primary"}
			r.Healthcheck = s.Healthcheck
		}
	}
	if def.Redis != nil {
		s := svc("redis", "redis", DefaultInfraImage, redisCmd(def))
		s.Healthcheck = &composeHealth{Test: []string{"CMD", "redis-cli", "ping"}, Interval: "2s", Timeout: "3s", Retries: 30}
	}
	vars := containerVars(def, host, "${SCALELAB_TOKEN_SECRET:?set SCALELAB_TOKEN_SECRET to 32 or more random bytes, e.g. hex:...}")
	deps := slices.Sorted(maps.Keys(doc.Services))
	var servers []haproxyServer
	for i := range def.Apps.Count {
		name := fmt.Sprintf("app-%d", i+1)
		args, err := appCmd(def, name, vars, "172.16.0.0/12")
		if err != nil {
			return nil, err
		}
		s := svc(name, "app", DefaultAppImage, args)
		s.DependsOn = deps
		if def.Entry == "app" && i == 0 {
			s.Ports = []string{fmt.Sprintf("127.0.0.1:${SCALELAB_PORT:-8080}:%d", appPort)}
		}
		servers = append(servers, haproxyServer{Name: name, Addr: fmt.Sprintf("%s:%d", host(name), appPort)})
	}
	if def.HAProxy != nil {
		cfg, err := renderTemplate("haproxy.cfg", haproxyData(def.HAProxy, servers))
		if err != nil {
			return nil, err
		}
		s := svc("haproxy", "haproxy", DefaultInfraImage, []string{"haproxy", "-db", "-f", "/etc/scalelab/haproxy.cfg"})
		s.Volumes = []string{addConfig("haproxy.cfg", cfg)}
		s.Ports = []string{fmt.Sprintf("127.0.0.1:${SCALELAB_PORT:-8080}:%d", haproxyPort)}
		for _, sv := range servers {
			s.DependsOn = append(s.DependsOn, sv.Name)
		}
	}
	if def.Prometheus != nil {
		jobs := promJobs(def, host)
		cfg, err := renderTemplate("prometheus.yml", map[string]any{"Interval": fmt.Sprintf("%dms", def.Prometheus.ScrapeInterval.Milliseconds()), "Jobs": jobs})
		if err != nil {
			return nil, err
		}
		s := svc("prometheus", "prometheus", DefaultInfraImage, promCmd())
		s.Volumes = []string{addConfig("prometheus.yml", cfg)}
		s.Ports = []string{fmt.Sprintf("127.0.0.1:${SCALELAB_PROMETHEUS_PORT:-9090}:%d", promPort)}
	}
	if def.Prometheus != nil {
		// Grafana with the lab's dashboard, for users who can pull its
		// image (the lab's own images need no registry; this one does, so
		// it starts only with --profile grafana).
		s := svc("grafana", "grafana", "grafana/grafana-oss:11.3.0", nil)
		s.Profiles = []string{"grafana"}
		s.DependsOn = []string{"prometheus"}
		s.Volumes = []string{
			addConfig("grafana-datasource.yml", []byte(grafanaDatasource)),
			addConfig("grafana-dashboards.yml", []byte(grafanaDashboards)),
			"../dashboards/scalelab.json:/var/lib/grafana/dashboards/scalelab.json:ro",
		}
		for i, v := range s.Volumes[:2] {
			// Grafana reads provisioning from its own folders.
			s.Volumes[i] = strings.Replace(v, ":/etc/scalelab/grafana-datasource.yml", ":/etc/grafana/provisioning/datasources/scalelab.yml", 1)
			s.Volumes[i] = strings.Replace(s.Volumes[i], ":/etc/scalelab/grafana-dashboards.yml", ":/etc/grafana/provisioning/dashboards/scalelab.yml", 1)
		}
		s.Ports = []string{"127.0.0.1:${SCALELAB_GRAFANA_PORT:-3000}:3000"}
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "# Generated by `scalelab compose --phase %d` from topologies/phase-%d.yaml; do not edit.\n", def.Phase, def.Phase)
	fmt.Fprintf(&out, "# %s\n#\n", def.Description)
	out.WriteString("# Images: `make images` (no registry needed). Run it from docker/:\n")
	out.WriteString("#   SCALELAB_TOKEN_SECRET=hex:$(openssl rand -hex 32) docker-compose --compatibility -f " + base + ".compose.yaml -p " + base + " up -d\n")
	if def.Prometheus != nil {
		out.WriteString("# Grafana with the lab's dashboard (needs its image from a registry): add --profile grafana to up.\n")
	}
	out.WriteString("#   docker stack deploy -c " + base + ".compose.yaml " + base + "   (Swarm; see docs/containers.md)\n")
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("compose phase %d: %w", def.Phase, err)
	}
	files = append([]ComposeFile{{Path: base + ".compose.yaml", Data: out.Bytes()}}, files...)
	return files, nil
}

// tierOf is the placement tier of a component kind: Swarm nodes labelled
// scalelab.tier.<tier>=false take none of that tier's tasks.
func tierOf(kind string) string {
	switch kind {
	case "postgres", "pgbouncer":
		return "db"
	case "redis":
		return "cache"
	case "haproxy", "varnish":
		return "edge"
	case "prometheus":
		return "monitor"
	}
	return "app"
}

type composeDoc struct {
	Version  string                     `yaml:"version"`
	Services map[string]*composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Hostname    string            `yaml:"hostname"`
	Command     []string          `yaml:"command,omitempty"`
	Volumes     []string          `yaml:"volumes,omitempty"`
	Ports       []string          `yaml:"ports,omitempty"`
	DependsOn   []string          `yaml:"depends_on,omitempty"`
	Healthcheck *composeHealth    `yaml:"healthcheck,omitempty"`
	Restart     string            `yaml:"restart,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Deploy      composeDeploy     `yaml:"deploy"`
	// Profiles keep a service out of a plain `up`: it starts only when
	// one of them is asked for (--profile NAME).
	Profiles []string `yaml:"profiles,omitempty"`
}

type composeDeploy struct {
	Resources     *composeResources `yaml:"resources,omitempty"`
	Placement     *composePlacement `yaml:"placement,omitempty"`
	RestartPolicy *composeRestart   `yaml:"restart_policy,omitempty"`
}

type composeResources struct {
	Limits composeLimit `yaml:"limits"`
}

type composeLimit struct {
	CPUs   string `yaml:"cpus,omitempty"`
	Memory string `yaml:"memory,omitempty"`
}

type composePlacement struct {
	Constraints []string `yaml:"constraints,omitempty"`
}

type composeRestart struct {
	Condition string `yaml:"condition"`
}

type composeHealth struct {
	Test     []string `yaml:"test,flow"`
	Interval string   `yaml:"interval"`
	Timeout  string   `yaml:"timeout"`
	Retries  int      `yaml:"retries"`
}

// ---------------------------------------------------------------- shared with the docker runtime

// dockerSupported fails for the sections the container runtime and the
// Compose generator do not run yet.
func dockerSupported(def *Definition) error {
	var missing []string
	for _, s := range []struct {
		name string
		on   bool
	}{{"pgbouncer", def.PgBouncer != nil}, {"redis_cluster", def.RedisCluster != nil}, {"varnish", def.Varnish != nil}} {
		if s.on {
			missing = append(missing, s.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("topology: containers do not run %s yet (phase %d); use the process runtime", strings.Join(missing, ", "), def.Phase)
	}
	return nil
}

// postgresCmd is a Postgres container's command (the infra image's
// scalelab-postgres entry script): role primary or replica, name its slot
// and application_name; arg is the database a primary creates, or the host
// a replica copies from.
func postgresCmd(def *Definition, role, name, arg string, fast bool) []string {
	conf := map[string]string{"hot_standby_feedback": "on", "wal_keep_size": "256MB", "max_wal_senders": "10", "max_replication_slots": "10"}
	if fast {
		maps.Copy(conf, map[string]string{"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
	}
	maps.Copy(conf, def.Postgres.Settings)
	cmd := []string{"scalelab-postgres", role, slotName(name), arg}
	for _, k := range slices.Sorted(maps.Keys(conf)) {
		cmd = append(cmd, "-c", k+"="+conf[k])
	}
	return cmd
}

// redisCmd is the standalone Redis container's command: no persistence,
// replicas sync at once, the definition's settings.
func redisCmd(def *Definition) []string {
	cmd := []string{"redis-server", "--port", fmt.Sprint(redisPort), "--bind", "0.0.0.0", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"}
	for _, k := range slices.Sorted(maps.Keys(def.Redis.Settings)) {
		cmd = append(cmd, "--"+k, def.Redis.Settings[k])
	}
	return cmd
}

func promCmd() []string {
	return []string{"prometheus", "--config.file=/etc/scalelab/prometheus.yml", "--storage.tsdb.path=/var/tmp/prometheus",
		fmt.Sprintf("--web.listen-address=0.0.0.0:%d", promPort)}
}

// containerVars are the values app flags expand to when every component
// is reachable by host(name) on a container network.
func containerVars(def *Definition, host func(string) string, secret string) func(app string) flagVars {
	return func(app string) flagVars {
		v := flagVars{"app.name": {app}, "app.dir": {"/data"}, "app.addr": {fmt.Sprintf("%s:%d", host(app), appPort)},
			"app.url": {fmt.Sprintf("http://%s:%d", host(app), appPort)}, "run.secret": {secret},
			// Prometheus scrapes from another container.
			"app.metrics_addr": {fmt.Sprintf("0.0.0.0:%d", appMetricsPort)}}
		pg := func(c string) string {
			return fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable", host(c), pgPort, def.Postgres.Database)
		}
		if def.Postgres != nil {
			v["postgres.url"] = []string{pg("primary")}
			var urls []string
			for i := range def.Postgres.Replicas {
				urls = append(urls, pg(fmt.Sprintf("replica-%d", i+1)))
			}
			if len(urls) > 0 {
				v["replicas.url"] = urls
				v["replicas.urls"] = []string{strings.Join(urls, ",")}
			}
		}
		if def.Redis != nil {
			v["redis.addr"] = []string{fmt.Sprintf("%s:%d", host("redis"), redisPort)}
		}
		if def.HAProxy != nil {
			v["haproxy.url"] = []string{fmt.Sprintf("http://%s:%d", host("haproxy"), haproxyPort)}
		}
		if def.Prometheus != nil {
			v["prometheus.url"] = []string{fmt.Sprintf("http://%s:%d", host("prometheus"), promPort)}
		}
		return v
	}
}

// appCmd is an app container's command. A loopback --trusted-proxy ("the
// proxies in front of me" on one machine) becomes trusted, the container
// network's range.
func appCmd(def *Definition, name string, vars func(string) flagVars, trusted string) ([]string, error) {
	args := []string{"server", fmt.Sprintf("--addr=0.0.0.0:%d", appPort)}
	var flags []string
	for _, f := range def.Apps.Flags {
		exp, err := expandFlag(f, vars(name))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, e := range exp {
			if strings.HasPrefix(e, "--trusted-proxy=") && trusted != "" {
				e = strings.ReplaceAll(e, "127.0.0.1/32", trusted)
			}
			flags = append(flags, e)
		}
	}
	hasFlag := func(prefix string) bool {
		return slices.ContainsFunc(flags, func(f string) bool { return strings.HasPrefix(f, prefix) })
	}
	if !hasFlag("--metrics-addr") {
		// Prometheus scrapes from another container.
		args = append(args, fmt.Sprintf("--metrics-addr=0.0.0.0:%d", appMetricsPort))
	}
	if def.API == "/api/users" && !hasFlag("--insecure-listen") {
		// The unversioned API refuses a non-loopback address; the
		// container's port is published on 127.0.0.1 only.
		args = append(args, "--insecure-listen")
	}
	return append(args, flags...), nil
}

// promJobs are Prometheus' scrape jobs on a container network.
func promJobs(def *Definition, host func(string) string) []promJob {
	app := promJob{Name: "app"}
	for i := range def.Apps.Count {
		name := fmt.Sprintf("app-%d", i+1)
		app.Targets = append(app.Targets, promTarget{Addr: fmt.Sprintf("%s:%d", host(name), appMetricsPort), Component: name})
	}
	jobs := []promJob{app}
	if def.HAProxy != nil {
		jobs = append(jobs, promJob{Name: "haproxy", Targets: []promTarget{{Addr: fmt.Sprintf("%s:%d", host("haproxy"), statsPort), Component: "haproxy"}}})
	}
	return append(jobs, promJob{Name: "prometheus", Targets: []promTarget{{Addr: fmt.Sprintf("localhost:%d", promPort), Component: "prometheus"}}})
}

func haproxyData(def *HAProxyDef, servers []haproxyServer) map[string]any {
	return map[string]any{
		"MaxConn": def.MaxConn, "Dir": "/tmp", "Addr": fmt.Sprintf("0.0.0.0:%d", haproxyPort), "StatsAddr": fmt.Sprintf("0.0.0.0:%d", statsPort),
		"Balance": def.Balance, "CheckInterval": fmt.Sprintf("%dms", def.CheckInterval.Milliseconds()),
		"FastInterval": fmt.Sprintf("%dms", min(def.CheckInterval, 200*time.Millisecond).Milliseconds()),
		"Servers":      servers,
	}
}

// renderTemplate renders templates/<name>.tmpl.
func renderTemplate(name string, data any) ([]byte, error) {
	tmpl, err := template.ParseFS(templateFiles, "templates/"+name+".tmpl")
	if err != nil {
		return nil, fmt.Errorf("parse %s template: %w", name, err)
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return b.Bytes(), nil
}

// grafanaDatasource points Grafana at the topology's Prometheus.
const grafanaDatasource = `apiVersion: 1
datasources:
  - name: Prometheus
    type: prometheus
    access: proxy
    url: http://prometheus:9090
    isDefault: true
`

// grafanaDashboards loads the dashboards mounted under
// /var/lib/grafana/dashboards (dashboards/scalelab.json).
const grafanaDashboards = `apiVersion: 1
providers:
  - name: scalelab
    type: file
    options:
      path: /var/lib/grafana/dashboards
`
