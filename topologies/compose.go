package topologies

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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
// Debian's docker-compose 1.29 runs) plus the configuration files it
// names, from the same definition the runners use: the same components,
// settings, app flags and limits, on the images `make images` builds.
// Services are named like the components (primary, replica-1, pgbouncer,
// redis, redis-master-0, app-1, haproxy, varnish, prometheus), so the app
// flags' ${…} variables become service addresses. The entry point is
// published on 127.0.0.1:${SCALELAB_PORT:-8080}, Prometheus on
// 127.0.0.1:${SCALELAB_PROMETHEUS_PORT:-9090}; the token secret comes from
// SCALELAB_TOKEN_SECRET, which must be set.
func Compose(def *Definition) ([]ComposeFile, error) { return compose(def, false) }

// Stack writes the same topology as a Swarm stack file
// (docker/phase-N.stack.yaml, for `docker stack deploy`): one replica per
// component on an overlay network of the stack's own (stackSubnet), each
// tier placed by node labels (tierOf), configuration files as Swarm
// configs (the managers hand them to whichever node runs a task), every
// service's name resolved to its task's own address (dnsrr: no virtual IP,
// so no IPVS needed), the entry port published on the addresses of the
// node that runs the entry task (mode host: no routing mesh). The config
// files are the Compose file's.
func Stack(def *Definition) ([]ComposeFile, error) { return compose(def, true) }

// stackSubnet is the overlay network of a stack: fixed, so that the apps
// can trust the proxies on it (--trusted-proxy) and Varnish the apps'
// PURGE requests.
const stackSubnet = "10.213.0.0/16"

// dockerDNS is Docker's embedded DNS server, in every container on a
// user-defined network: it answers with the addresses of services' tasks.
const dockerDNS = "127.0.0.11:53"

// composeSubnet is where Docker puts a Compose project's bridge network
// (its default address pools).
const composeSubnet = "172.16.0.0/12"

func compose(def *Definition, swarm bool) ([]ComposeFile, error) {
	base := fmt.Sprintf("phase-%d", def.Phase)
	cfgDir := base // docker/phase-N/ holds the config files
	doc := composeDoc{Version: "3.8", Services: map[string]*composeService{}}
	trusted := composeSubnet
	if swarm {
		trusted = stackSubnet
		doc.Configs = map[string]composeConfigFile{}
		doc.Networks = map[string]composeNetwork{"default": {Driver: "overlay", Attachable: true,
			IPAM: &composeIPAM{Config: []composeSubnetConfig{{Subnet: stackSubnet}}}}}
	}
	var files []ComposeFile
	// Compose bind-mounts the config files (docker-compose 1.29 ignores
	// `configs:` outside Swarm); a stack gives them as Swarm configs,
	// named by their content (a config cannot change under a name).
	addConfig := func(s *composeService, file string, data []byte) {
		rel := path.Join(cfgDir, file)
		files = append(files, ComposeFile{Path: rel, Data: data})
		if !swarm {
			s.Volumes = append(s.Volumes, "./"+rel+":/etc/scalelab/"+file+":ro")
			return
		}
		sum := sha256.Sum256(data)
		name := strings.NewReplacer(".", "_", "-", "_").Replace(file) + "_" + hex.EncodeToString(sum[:4])
		doc.Configs[name] = composeConfigFile{File: "./" + rel}
		s.Configs = append(s.Configs, composeConfigRef{Source: name, Target: "/etc/scalelab/" + file, Mode: 0o444})
	}
	publish := func(s *composeService, env string, dflt, port int) {
		if swarm {
			// On the node that runs the task, on all its addresses (Swarm
			// cannot bind one): no routing-mesh hop in front of the entry.
			s.Ports = append(s.Ports, composePort{Target: port, Published: fmt.Sprintf("${%s:-%d}", env, dflt), Protocol: "tcp", Mode: "host"})
			return
		}
		s.Ports = append(s.Ports, fmt.Sprintf("127.0.0.1:${%s:-%d}:%d", env, dflt, port))
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
		s.Labels = map[string]string{"scalelab.phase": fmt.Sprint(def.Phase), "scalelab.component": name}
		if swarm {
			one := 1
			s.Deploy.Replicas = &one
			// Each service's name resolves to its task's own address, not
			// to a virtual IP: a virtual IP is an IPVS rule in the kernel,
			// which not every kernel has (without it the stack deploys,
			// every task runs, and nothing reaches a service by its name).
			// The Redis Cluster's nodes need it anyway: they MEET, and
			// announce, their own addresses. What follows a task that
			// moves: clients that resolve per connection (the apps, pgx,
			// Postgres replication, Prometheus), HAProxy through its
			// resolvers section; Varnish resolves its backend once.
			s.Deploy.EndpointMode = "dnsrr"
			// Swarm stops a task whose health check keeps failing, and
			// Postgres then exits 0: restart whatever the exit status.
			s.Deploy.RestartPolicy.Condition = "any"
		} else {
			s.Restart = "on-failure"
		}
		doc.Services[name] = s
		return s
	}
	dependsOn := func(s *composeService, deps ...string) {
		if !swarm { // a stack starts every service at once
			s.DependsOn = append(s.DependsOn, deps...)
		}
	}
	host := func(name string) string { return name }
	var dataDeps []string
	if p := def.Postgres; p != nil {
		s := svc("primary", "postgres", DefaultInfraImage, postgresCmd(def, "primary", "primary", def.Postgres.Database, false))
		s.Healthcheck = &composeHealth{Test: []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres"}, Interval: "5s", Timeout: "15s", Retries: 20, StartPeriod: "2m"}
		dataDeps = append(dataDeps, "primary")
		for i := range p.Replicas {
			name := fmt.Sprintf("replica-%d", i+1)
			r := svc(name, "postgres", DefaultInfraImage, postgresCmd(def, "replica", name, host("primary"), false))
			dependsOn(r, "primary")
			r.Healthcheck = s.Healthcheck
			dataDeps = append(dataDeps, name)
		}
	}
	if def.PgBouncer != nil {
		ini, err := pgbouncerConfig(def, host("primary"))
		if err != nil {
			return nil, err
		}
		s := svc("pgbouncer", "pgbouncer", DefaultInfraImage, pgbouncerCmd())
		s.User = "postgres" // pgbouncer refuses to run as root
		addConfig(s, "pgbouncer.ini", ini)
		addConfig(s, "userlist.txt", []byte(pgbouncerUsers))
		s.Healthcheck = &composeHealth{Test: []string{"CMD", "pg_isready", "-h", "127.0.0.1", "-p", fmt.Sprint(pgbouncerPort), "-U", "postgres"}, Interval: "5s", Timeout: "15s", Retries: 20, StartPeriod: "2m"}
		dependsOn(s, "primary")
		dataDeps = append(dataDeps, "pgbouncer")
	}
	if def.Redis != nil {
		s := svc("redis", "redis", DefaultInfraImage, redisCmd(def))
		s.Healthcheck = &composeHealth{Test: []string{"CMD", "redis-cli", "ping"}, Interval: "5s", Timeout: "15s", Retries: 20, StartPeriod: "2m"}
		dataDeps = append(dataDeps, "redis")
	}
	if c := def.RedisCluster; c != nil {
		nodes := clusterNodeNames(c)
		for _, n := range nodes {
			s := svc(n, "redis", DefaultInfraImage, redisClusterCmd(def))
			s.Healthcheck = &composeHealth{Test: []string{"CMD", "redis-cli", "ping"}, Interval: "5s", Timeout: "15s", Retries: 20, StartPeriod: "2m"}
		}
		// One-shot: joins the nodes once they answer (a no-op when the
		// cluster exists), then exits.
		s := svc("redis-cluster", "redis", DefaultInfraImage, []string{"bash", "-c", clusterCreateScript(c)})
		s.Deploy.RestartPolicy.Condition = "on-failure" // done once it exits 0
		dependsOn(s, nodes...)
		dataDeps = append(dataDeps, "redis-cluster")
	}
	vars := containerVars(def, host, "${SCALELAB_TOKEN_SECRET:?set SCALELAB_TOKEN_SECRET to 32 or more random bytes, e.g. hex:...}")
	var servers, apps []haproxyServer
	for i := range def.Apps.Count {
		name := fmt.Sprintf("app-%d", i+1)
		args, err := appCmd(def, name, vars, trusted)
		if err != nil {
			return nil, err
		}
		s := svc(name, "app", DefaultAppImage, args)
		dependsOn(s, dataDeps...)
		if def.Entry == "app" && i == 0 {
			publish(s, "SCALELAB_PORT", 8080, appPort)
		}
		servers = append(servers, haproxyServer{Name: name, Addr: fmt.Sprintf("%s:%d", host(name), appPort)})
		apps = append(apps, haproxyServer{Name: name})
	}
	if w := def.Workers; w != nil {
		for i := range w.Count {
			name := fmt.Sprintf("worker-%d", i+1)
			args, err := workerCmd(def, name, vars)
			if err != nil {
				return nil, err
			}
			s := svc(name, "worker", DefaultAppImage, args)
			// After the apps: an app creates the schema in the layout its
			// flags ask for (--partitions); a worker takes the one it finds.
			for _, a := range apps {
				dependsOn(s, a.Name)
			}
		}
	}
	front := "app-1"
	if def.HAProxy != nil {
		data := haproxyData(def.HAProxy, servers)
		data["Resolvers"] = dockerDNS // a restarted app may come back on another address
		cfg, err := renderTemplate("haproxy.cfg", data)
		if err != nil {
			return nil, err
		}
		s := svc("haproxy", "haproxy", DefaultInfraImage, []string{"haproxy", "-db", "-f", "/etc/scalelab/haproxy.cfg"})
		addConfig(s, "haproxy.cfg", cfg)
		if def.Entry == "haproxy" {
			publish(s, "SCALELAB_PORT", 8080, haproxyPort)
		}
		for _, a := range apps {
			dependsOn(s, a.Name)
		}
		front = "haproxy"
	}
	if def.Varnish != nil {
		vcl, err := varnishConfig(host(front), composeSubnet, stackSubnet)
		if err != nil {
			return nil, err
		}
		s := svc("varnish", "varnish", DefaultInfraImage, varnishCmd(def))
		addConfig(s, "default.vcl", vcl)
		if def.Entry == "varnish" {
			publish(s, "SCALELAB_PORT", 8080, varnishPort)
		}
		dependsOn(s, front)
	}
	if def.Prometheus != nil {
		jobs := promJobs(def, host)
		cfg, err := renderTemplate("prometheus.yml", promConfig{Interval: promDuration(def.Prometheus.ScrapeInterval), Jobs: jobs})
		if err != nil {
			return nil, err
		}
		s := svc("prometheus", "prometheus", DefaultInfraImage, promCmd())
		addConfig(s, "prometheus.yml", cfg)
		publish(s, "SCALELAB_PROMETHEUS_PORT", 9090, promPort)
	}
	if def.Prometheus != nil && !swarm {
		// Grafana with the lab's dashboard, for users who can pull its
		// image (the lab's own images need no registry; this one does, so
		// it starts only with --profile grafana). Not in a stack: Swarm
		// has no profiles.
		s := svc("grafana", "grafana", "grafana/grafana-oss:11.3.0", nil)
		s.Profiles = []string{"grafana"}
		s.DependsOn = []string{"prometheus"}
		addConfig(s, "grafana-datasource.yml", []byte(grafanaDatasource))
		addConfig(s, "grafana-dashboards.yml", []byte(grafanaDashboards))
		s.Volumes = append(s.Volumes, "../dashboards/scalelab.json:/var/lib/grafana/dashboards/scalelab.json:ro")
		for i, v := range s.Volumes[:2] {
			// Grafana reads provisioning from its own folders.
			s.Volumes[i] = strings.Replace(v, ":/etc/scalelab/grafana-datasource.yml", ":/etc/grafana/provisioning/datasources/scalelab.yml", 1)
			s.Volumes[i] = strings.Replace(s.Volumes[i], ":/etc/scalelab/grafana-dashboards.yml", ":/etc/grafana/provisioning/dashboards/scalelab.yml", 1)
		}
		s.Ports = []any{"127.0.0.1:${SCALELAB_GRAFANA_PORT:-3000}:3000"}
	}
	var out bytes.Buffer
	name := base + ".compose.yaml"
	if swarm {
		name = base + ".stack.yaml"
		fmt.Fprintf(&out, "# Generated by `scalelab compose --swarm --phase %d` from topologies/phase-%d.yaml; do not edit.\n", def.Phase, def.Phase)
	} else {
		fmt.Fprintf(&out, "# Generated by `scalelab compose --phase %d` from topologies/phase-%d.yaml; do not edit.\n", def.Phase, def.Phase)
	}
	fmt.Fprintf(&out, "# %s\n#\n", def.Description)
	if swarm {
		out.WriteString("# Images: `make images` on every node (or docker save | docker load). On a manager, from docker/:\n")
		out.WriteString("#   SCALELAB_TOKEN_SECRET=hex:$(openssl rand -hex 32) docker stack deploy --resolve-image never -c " + name + " " + base + "\n")
		out.WriteString("# The entry port (SCALELAB_PORT, default 8080) is published on the node that runs the entry task; see docs/containers.md.\n")
	} else {
		out.WriteString("# Images: `make images` (no registry needed). Run it from docker/:\n")
		out.WriteString("#   SCALELAB_TOKEN_SECRET=hex:$(openssl rand -hex 32) docker-compose --compatibility -f " + name + " -p " + base + " up -d\n")
		if def.Prometheus != nil {
			out.WriteString("# Grafana with the lab's dashboard (needs its image from a registry): add --profile grafana to up.\n")
		}
		out.WriteString("# For a Swarm: " + base + ".stack.yaml (`scalelab compose --swarm`; see docs/containers.md).\n")
	}
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("compose phase %d: %w", def.Phase, err)
	}
	files = append([]ComposeFile{{Path: name, Data: out.Bytes()}}, dedupe(files)...)
	return files, nil
}

// dedupe drops repeated config files (a stack names each once).
func dedupe(files []ComposeFile) []ComposeFile {
	var out []ComposeFile
	for _, f := range files {
		if !slices.ContainsFunc(out, func(g ComposeFile) bool { return g.Path == f.Path }) {
			out = append(out, f)
		}
	}
	return out
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
	Version  string                       `yaml:"version"`
	Services map[string]*composeService   `yaml:"services"`
	Networks map[string]composeNetwork    `yaml:"networks,omitempty"`
	Configs  map[string]composeConfigFile `yaml:"configs,omitempty"`
}

type composeNetwork struct {
	Driver     string       `yaml:"driver,omitempty"`
	Attachable bool         `yaml:"attachable,omitempty"`
	IPAM       *composeIPAM `yaml:"ipam,omitempty"`
}

type composeIPAM struct {
	Config []composeSubnetConfig `yaml:"config"`
}

type composeSubnetConfig struct {
	Subnet string `yaml:"subnet"`
}

// composePort is a published port in the long syntax (a stack's).
type composePort struct {
	Target    int    `yaml:"target"`
	Published string `yaml:"published"`
	Protocol  string `yaml:"protocol"`
	Mode      string `yaml:"mode"`
}

type composeConfigFile struct {
	File string `yaml:"file"`
}

type composeConfigRef struct {
	Source string `yaml:"source"`
	Target string `yaml:"target"`
	Mode   int    `yaml:"mode"`
}

type composeService struct {
	Image       string             `yaml:"image"`
	Hostname    string             `yaml:"hostname"`
	Command     []string           `yaml:"command,omitempty"`
	User        string             `yaml:"user,omitempty"`
	Volumes     []string           `yaml:"volumes,omitempty"`
	Configs     []composeConfigRef `yaml:"configs,omitempty"`
	Ports       []any              `yaml:"ports,omitempty"` // "host:port:port" or a composePort
	DependsOn   []string           `yaml:"depends_on,omitempty"`
	Healthcheck *composeHealth     `yaml:"healthcheck,omitempty"`
	Restart     string             `yaml:"restart,omitempty"`
	Labels      map[string]string  `yaml:"labels,omitempty"`
	Deploy      composeDeploy      `yaml:"deploy"`
	// Profiles keep a service out of a plain `up`: it starts only when
	// one of them is asked for (--profile NAME).
	Profiles []string `yaml:"profiles,omitempty"`
}

type composeDeploy struct {
	Replicas      *int              `yaml:"replicas,omitempty"`
	EndpointMode  string            `yaml:"endpoint_mode,omitempty"`
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

// composeHealth is a service's health check. Generous: a check is a
// docker exec, which takes seconds on a loaded machine, and Swarm kills a
// task that stays unhealthy.
type composeHealth struct {
	Test        []string `yaml:"test,flow"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

// ---------------------------------------------------------------- shared with the docker runtime

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

// redisClusterCmd is a Redis Cluster node's command: redisCmd's settings
// plus cluster mode (nodes.conf in the container, kept across restarts)
// and the definition's cluster settings.
func redisClusterCmd(def *Definition) []string {
	c := def.RedisCluster
	cmd := []string{"redis-server", "--port", fmt.Sprint(redisPort), "--bind", "0.0.0.0", "--protected-mode", "no",
		"--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0", "--dir", "/var/lib/redis",
		"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
		"--cluster-node-timeout", fmt.Sprint(c.NodeTimeout.Milliseconds())}
	for _, k := range slices.Sorted(maps.Keys(c.Settings)) {
		cmd = append(cmd, "--"+k, c.Settings[k])
	}
	return cmd
}

// clusterNodeNames are the Redis Cluster's nodes, masters first, named as
// the process runtime names them.
func clusterNodeNames(c *RedisClusterDef) []string {
	var names []string
	for i := range c.Masters {
		names = append(names, fmt.Sprintf("redis-master-%d", i))
	}
	for i := range c.Masters * c.ReplicasPerMaster {
		names = append(names, fmt.Sprintf("redis-replica-%d", i))
	}
	return names
}

// clusterCreateScript joins a Compose project's or a stack's cluster
// nodes with redis-cli --cluster create (which needs addresses, not
// names), unless they already form a cluster. $$ is a $ to Compose.
func clusterCreateScript(c *RedisClusterDef) string {
	return fmt.Sprintf(`set -e
nodes="%s"
addrs=""
for n in $$nodes; do
  until redis-cli -h $$n ping >/dev/null 2>&1; do sleep 0.5; done
  addrs="$$addrs $$(getent hosts $$n | awk '{print $$1; exit}'):%d"
done
if redis-cli -h %s cluster info | grep -q cluster_state:ok; then exit 0; fi
redis-cli --cluster create $$addrs --cluster-replicas %d --cluster-yes
until redis-cli -h %s cluster info | grep -q cluster_state:ok; do sleep 0.5; done
`, strings.Join(clusterNodeNames(c), " "), redisPort, clusterNodeNames(c)[0], c.ReplicasPerMaster, clusterNodeNames(c)[0])
}

// pgbouncerConfig is pgbouncer.ini for a container: it listens on every
// address and pools connections to primaryHost.
func pgbouncerConfig(def *Definition, primaryHost string) ([]byte, error) {
	p := def.PgBouncer
	return renderTemplate("pgbouncer.ini", map[string]any{
		"PrimaryHost": primaryHost, "PrimaryPort": pgPort, "ListenAddr": "0.0.0.0", "Port": pgbouncerPort, "Dir": "/etc/scalelab",
		"PoolMode": p.PoolMode, "MaxClientConn": p.MaxClientConn, "DefaultPoolSize": p.DefaultPoolSize,
	})
}

func pgbouncerCmd() []string { return []string{"pgbouncer", "/etc/scalelab/pgbouncer.ini"} }

// varnishConfig is the VCL for a container: backend at backendHost (which
// Varnish resolves once, when it loads the VCL), PURGE allowed from the
// given networks (the apps').
func varnishConfig(backendHost string, purgers ...string) ([]byte, error) {
	acl := []string{`"127.0.0.1"`}
	for _, p := range purgers {
		ip, bits, _ := strings.Cut(p, "/")
		acl = append(acl, fmt.Sprintf("%q/%s", ip, bits))
	}
	return renderTemplate("default.vcl", map[string]any{"BackendHost": backendHost, "BackendPort": haproxyPort, "Purgers": acl})
}

// varnishCmd is the Varnish container's command: in the foreground, its
// working directory in the container (varnishstat -n), the definition's
// storage and parameters.
func varnishCmd(def *Definition) []string {
	cmd := []string{"varnishd", "-F", "-a", fmt.Sprintf("0.0.0.0:%d", varnishPort), "-n", varnishWorkDir,
		"-f", "/etc/scalelab/default.vcl", "-s", def.Varnish.Storage}
	for _, k := range slices.Sorted(maps.Keys(def.Varnish.Params)) {
		cmd = append(cmd, "-p", k+"="+def.Varnish.Params[k])
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
		if def.PgBouncer != nil {
			v["pgbouncer.url"] = []string{fmt.Sprintf("postgres://postgres@%s:%d/%s?sslmode=disable&default_query_exec_mode=cache_describe",
				host("pgbouncer"), pgbouncerPort, def.Postgres.Database)}
		}
		if def.Redis != nil {
			v["redis.addr"] = []string{fmt.Sprintf("%s:%d", host("redis"), redisPort)}
		}
		if c := def.RedisCluster; c != nil {
			var addrs []string
			for _, n := range clusterNodeNames(c) {
				addrs = append(addrs, fmt.Sprintf("%s:%d", host(n), redisPort))
			}
			v["redis_cluster.addrs"] = []string{strings.Join(addrs, ",")}
		}
		if def.Varnish != nil {
			v["varnish.url"] = []string{fmt.Sprintf("http://%s:%d", host("varnish"), varnishPort)}
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

// workerCmd is a queue worker container's command: `scalelab worker` with
// the definition's worker flags, which expand as an app's do on the
// container network, except for the worker's own variables.
func workerCmd(def *Definition, name string, vars func(string) flagVars) ([]string, error) {
	v := vars(name)
	for _, k := range appOnlyVars {
		delete(v, k)
	}
	v["worker.name"] = []string{name}
	v["worker.dir"] = []string{"/data"}
	v["worker.metrics_addr"] = []string{fmt.Sprintf("0.0.0.0:%d", appMetricsPort)}
	args := []string{"worker"}
	for _, f := range def.Workers.Flags {
		exp, err := expandFlag(f, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		args = append(args, exp...)
	}
	return args, nil
}

// promJobs are Prometheus' scrape jobs on a container network.
func promJobs(def *Definition, host func(string) string) []promJob {
	app := promJob{Name: "app"}
	for i := range def.Apps.Count {
		name := fmt.Sprintf("app-%d", i+1)
		app.Targets = append(app.Targets, promTarget{Addr: fmt.Sprintf("%s:%d", host(name), appMetricsPort), Component: name})
	}
	jobs := []promJob{app}
	if w := def.Workers; w != nil {
		job := promJob{Name: "worker"}
		for i := range w.Count {
			name := fmt.Sprintf("worker-%d", i+1)
			job.Targets = append(job.Targets, promTarget{Addr: fmt.Sprintf("%s:%d", host(name), appMetricsPort), Component: name})
		}
		jobs = append(jobs, job)
	}
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
