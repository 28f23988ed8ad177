package topologies

import (
	"bytes"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// phaseFiles are the checked-in definitions, phase-1.yaml … phase-4.yaml.
//
//go:embed phase-*.yaml
var phaseFiles embed.FS

// Definition is one topology: which components run, how many, their
// settings, and the server flags every app instance gets. It is loaded
// from YAML (see phase-*.yaml for commented examples); a section that is
// absent means the component is not part of the topology.
type Definition struct {
	Phase       int    `yaml:"phase"`
	Description string `yaml:"description"`
	// Entry is the component clients talk to: "app" (app-1), "haproxy" or
	// "varnish". Default: the outermost component present.
	Entry string `yaml:"entry"`
	// API is the path prefix of the user API in this phase ("/api/users"
	// or "/api/v1"), for drivers and smoke tests.
	API string `yaml:"api"`
	// Network is how far apart the tiers are: none (loopback, the
	// default), datacenter or internet; see netprofile.go. `--network`
	// overrides it.
	Network string `yaml:"network"`
	// Links override, per link name or pattern, what the profile gives a
	// link: latency, jitter, bandwidth, idle timeout (see LinkSettings).
	Links map[string]LinkSettings `yaml:"links"`

	Postgres     *PostgresDef     `yaml:"postgres"`
	PgBouncer    *PgBouncerDef    `yaml:"pgbouncer"`
	Redis        *RedisDef        `yaml:"redis"`
	RedisCluster *RedisClusterDef `yaml:"redis_cluster"`
	Apps         *AppsDef         `yaml:"apps"`
	Workers      *WorkersDef      `yaml:"workers"`
	HAProxy      *HAProxyDef      `yaml:"haproxy"`
	Varnish      *VarnishDef      `yaml:"varnish"`
	Prometheus   *PrometheusDef   `yaml:"prometheus"`

	// Limits are CPU and memory budgets by component kind or name (see
	// Limit); the docker runtime enforces them.
	Limits map[string]Limit `yaml:"limits"`
}

// PostgresDef is a primary and its streaming replicas.
type PostgresDef struct {
	Database string `yaml:"database"` // created on the primary; default "scalelab"
	Replicas int    `yaml:"replicas"` // hot standbys, each with its own slot
	// Settings are postgresql.conf parameters for every server.
	Settings map[string]string `yaml:"settings"`
}

// PgBouncerDef is a pgbouncer in front of the primary.
type PgBouncerDef struct {
	PoolMode        string `yaml:"pool_mode"`         // session, transaction (default) or statement
	DefaultPoolSize int    `yaml:"default_pool_size"` // server connections per database/user; default 20
	MaxClientConn   int    `yaml:"max_client_conn"`   // default 2000
}

// RedisDef is a standalone Redis.
type RedisDef struct {
	Settings map[string]string `yaml:"settings"` // redis.conf directives
}

// RedisClusterDef is a Redis Cluster.
type RedisClusterDef struct {
	Masters           int               `yaml:"masters"`             // default 3
	ReplicasPerMaster int               `yaml:"replicas_per_master"` // default 1
	NodeTimeout       time.Duration     `yaml:"node_timeout"`        // default 2s
	Settings          map[string]string `yaml:"settings"`
}

// AppsDef is the group of scalelab server instances.
type AppsDef struct {
	Count int `yaml:"count"` // default 1
	// Flags are passed to `scalelab server` after --addr, each one
	// `--name=value` or `--name`, with ${…} variables expanded (see
	// phase-1.yaml for the list). Every flag must be one the server
	// defines: the definition is checked against its flag set when it is
	// loaded. --db says where the apps' data lives (see
	// Topology.DatabaseURL).
	Flags []string `yaml:"flags"`

	// flagLines are the line numbers of Flags in the file, for errors.
	flagLines []int
}

// HAProxyDef is the load balancer in front of the app instances.
type HAProxyDef struct {
	Balance       string        `yaml:"balance"`        // default roundrobin
	MaxConn       int           `yaml:"maxconn"`        // default 4000; must stay well below the fd limit
	CheckInterval time.Duration `yaml:"check_interval"` // health check period; default 1s
}

// VarnishDef is the CDN stand-in in front of HAProxy (or app-1).
type VarnishDef struct {
	Storage string `yaml:"storage"` // -s argument; default malloc,256m
	// Params are varnishd -p parameters (default_ttl, default_grace, …).
	Params map[string]string `yaml:"params"`
}

// PrometheusDef scrapes the app instances and HAProxy (and, with
// Exporters, the data tiers).
type PrometheusDef struct {
	ScrapeInterval time.Duration `yaml:"scrape_interval"` // default 1s
	// Exporters starts Debian's exporters for the phase's Postgres, Redis
	// and Varnish, and scrapes them (see exporters.go).
	Exporters bool `yaml:"exporters"`
	// ExporterInterval is how often the exporters (and Prometheus itself)
	// are scraped; default 5s. They feed only the dashboard, and each
	// scrape of postgres_exporter runs its queries on the primary: at the
	// apps' 1 s, the exporters, their queries and Prometheus' ingestion
	// of their series cost an idle phase 3 about 20 ms of CPU a second.
	ExporterInterval time.Duration `yaml:"exporter_interval"`
}

// Flags are the flag sets of the scalelab commands a topology starts: a
// definition's app flags are checked against Server's, its worker flags
// against Worker's. They are arguments, not imports of the server (see
// Parse).
type Flags struct {
	// Server is the flag set of `scalelab server` (app.FlagSet("server")).
	Server *flag.FlagSet
	// Worker is the flag set of `scalelab worker`
	// (jobs.WorkerFlagSet("worker")); needed only by a definition with
	// workers.
	Worker *flag.FlagSet
}

// Phase returns the checked-in definition of phase n, its app and worker
// flags checked against flags.
func Phase(n int, flags Flags) (*Definition, error) {
	name := fmt.Sprintf("phase-%d.yaml", n)
	b, err := phaseFiles.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("no topology for phase %d", n)
	}
	return Parse(b, "topologies/"+name, flags)
}

// LoadFile reads a definition from a YAML file; see Parse.
func LoadFile(path string, flags Flags) (*Definition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load topology: %w", err)
	}
	return Parse(b, path, flags)
}

// Parse decodes a definition strictly (unknown fields are errors), applies
// defaults and validates it. Every app flag must be one that flags.Server,
// the flag set of `scalelab server`, defines, and every worker flag one of
// flags.Worker (`scalelab worker`): the runner passes them to the binary
// built from the same tree, so a misspelt flag fails here, with its line,
// rather than when the processes start. Parse only looks flags up; it sets
// none. name is used in error messages (name:line: …).
//
// The flag sets are arguments, not imports of scalelab/server/...: the
// server's own tests use this package's topotest, so importing the server
// here would be an import cycle, and the runner would link the whole
// server for two flag sets.
func Parse(b []byte, name string, flags Flags) (*Definition, error) {
	if flags.Server == nil {
		return nil, fmt.Errorf("%s: no server flag set to check the app flags against", name)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var def Definition
	if err := dec.Decode(&def); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty topology", name)
		}
		return nil, yamlError(name, err)
	}
	if def.Apps != nil {
		def.Apps.flagLines = flagLines(b, "apps", len(def.Apps.Flags))
	}
	if def.Workers != nil {
		def.Workers.flagLines = flagLines(b, "workers", len(def.Workers.Flags))
	}
	def.setDefaults()
	if err := def.validate(flags); err != nil {
		if le, ok := err.(lineError); ok {
			return nil, fmt.Errorf("%s:%d: %w", name, le.line, le.err)
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &def, nil
}

// yamlLineRe is how yaml.v3 starts the message of an error at a line.
var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

// yamlError rewrites the decoder's "line N: msg" errors (an unknown field,
// a wrong type) as "name:N: msg", one per line.
func yamlError(name string, err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	out := make([]string, len(msgs))
	for i, m := range msgs {
		if loc := yamlLineRe.FindStringSubmatchIndex(m); loc != nil {
			out[i] = fmt.Sprintf("%s:%s: %s", name, m[loc[2]:loc[3]], m[loc[1]:])
		} else {
			out[i] = fmt.Sprintf("%s: %s", name, m)
		}
	}
	return errors.New(strings.Join(out, "\n"))
}

// flagLines returns the line of each of the n entries of section.flags
// (apps or workers); the strict decode already succeeded, so the document
// is well-formed.
func flagLines(b []byte, section string, n int) []int {
	lines := make([]int, n)
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil || len(doc.Content) == 0 {
		return lines
	}
	sec := mapValue(doc.Content[0], section)
	flags := mapValue(sec, "flags")
	if flags == nil {
		return lines
	}
	for i, f := range flags.Content {
		if i < n {
			lines[i] = f.Line
		}
	}
	return lines
}

// mapValue returns the value of key in mapping node m, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func (d *Definition) setDefaults() {
	if p := d.Postgres; p != nil && p.Database == "" {
		p.Database = "scalelab"
	}
	if p := d.PgBouncer; p != nil {
		p.PoolMode = cmpOr(p.PoolMode, "transaction")
		p.DefaultPoolSize = cmpOr(p.DefaultPoolSize, 20)
		p.MaxClientConn = cmpOr(p.MaxClientConn, 2000)
	}
	if c := d.RedisCluster; c != nil {
		c.Masters = cmpOr(c.Masters, 3)
		c.ReplicasPerMaster = cmpOr(c.ReplicasPerMaster, 1)
		c.NodeTimeout = cmpOr(c.NodeTimeout, 2*time.Second)
	}
	if a := d.Apps; a != nil {
		a.Count = cmpOr(a.Count, 1)
	}
	if w := d.Workers; w != nil {
		w.Count = cmpOr(w.Count, 1)
	}
	if h := d.HAProxy; h != nil {
		h.Balance = cmpOr(h.Balance, "roundrobin")
		h.MaxConn = cmpOr(h.MaxConn, 4000)
		h.CheckInterval = cmpOr(h.CheckInterval, time.Second)
	}
	if v := d.Varnish; v != nil {
		v.Storage = cmpOr(v.Storage, "malloc,256m")
	}
	if p := d.Prometheus; p != nil {
		p.ScrapeInterval = cmpOr(p.ScrapeInterval, time.Second)
		p.ExporterInterval = cmpOr(p.ExporterInterval, 5*time.Second)
	}
	d.Network = cmpOr(d.Network, NetworkNone)
	if d.Entry == "" {
		switch {
		case d.Varnish != nil:
			d.Entry = "varnish"
		case d.HAProxy != nil:
			d.Entry = "haproxy"
		default:
			d.Entry = "app"
		}
	}
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// flagRe is the form every app flag takes: --name or --name=value.
var flagRe = regexp.MustCompile(`^--[a-z0-9][a-z0-9-]*(=.*)?$`)

// lineError is a validation error at a known line of the file.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }

// validate checks the definition; an error about an app or worker flag is
// a lineError.
func (d *Definition) validate(flags Flags) error {
	if err := d.validateFields(); err != nil {
		return err
	}
	if err := d.validateFlags(flags.Server); err != nil {
		return err
	}
	return d.validateWorkers(flags.Worker)
}

func (d *Definition) validateFields() error {
	if d.Phase <= 0 {
		return errors.New("phase: must be a positive number")
	}
	if d.Apps == nil {
		return errors.New("apps: every topology runs at least one app instance")
	}
	if d.Apps.Count < 1 || d.Apps.Count > 32 {
		return fmt.Errorf("apps.count: %d, want 1 to 32", d.Apps.Count)
	}
	switch d.Entry {
	case "app":
	case "haproxy":
		if d.HAProxy == nil {
			return errors.New("entry: haproxy, but there is no haproxy section")
		}
	case "varnish":
		if d.Varnish == nil {
			return errors.New("entry: varnish, but there is no varnish section")
		}
	default:
		return fmt.Errorf("entry: %q, want app, haproxy or varnish", d.Entry)
	}
	if p := d.Postgres; p != nil && (p.Replicas < 0 || p.Replicas > 8) {
		return fmt.Errorf("postgres.replicas: %d, want 0 to 8", p.Replicas)
	}
	if p := d.PgBouncer; p != nil {
		if d.Postgres == nil {
			return errors.New("pgbouncer: needs a postgres section to pool")
		}
		if !slices.Contains([]string{"session", "transaction", "statement"}, p.PoolMode) {
			return fmt.Errorf("pgbouncer.pool_mode: %q, want session, transaction or statement", p.PoolMode)
		}
		if p.DefaultPoolSize < 1 || p.MaxClientConn < 1 {
			return errors.New("pgbouncer: default_pool_size and max_client_conn must be positive")
		}
	}
	if c := d.RedisCluster; c != nil {
		if c.Masters < 3 {
			return fmt.Errorf("redis_cluster.masters: %d, Redis Cluster needs at least 3", c.Masters)
		}
		if c.ReplicasPerMaster < 0 || c.ReplicasPerMaster > 3 {
			return fmt.Errorf("redis_cluster.replicas_per_master: %d, want 0 to 3", c.ReplicasPerMaster)
		}
	}
	if h := d.HAProxy; h != nil {
		// The file-descriptor hard limit here is 20000 and HAProxy needs
		// two per proxied connection.
		if h.MaxConn < 1 || h.MaxConn > 9000 {
			return fmt.Errorf("haproxy.maxconn: %d, want 1 to 9000", h.MaxConn)
		}
		if h.CheckInterval < 100*time.Millisecond {
			return fmt.Errorf("haproxy.check_interval: %v, want at least 100ms", h.CheckInterval)
		}
	}
	if err := checkNetwork(d.Network); err != nil {
		return err
	}
	if err := d.checkLinkSettings(); err != nil {
		return err
	}
	if p := d.Prometheus; p != nil && p.ScrapeInterval < 100*time.Millisecond {
		return fmt.Errorf("prometheus.scrape_interval: %v, want at least 100ms", p.ScrapeInterval)
	}
	if p := d.Prometheus; p != nil && p.ExporterInterval < 100*time.Millisecond {
		return fmt.Errorf("prometheus.exporter_interval: %v, want at least 100ms", p.ExporterInterval)
	}
	if err := validateLimits(d.Limits); err != nil {
		return err
	}
	return nil
}

// validateFlags checks each app flag's form, variables and name against
// server's flags.
func (d *Definition) validateFlags(server *flag.FlagSet) error {
	vars := d.placeholderVars()
	hasDB := false
	for i, f := range d.Apps.Flags {
		at := func(format string, a ...any) error {
			return flagError("apps", d.Apps.flagLines, i, fmt.Sprintf(format, a...))
		}
		name, err := checkFlag(f, vars, server, "server")
		if err != nil {
			return at("%v", err)
		}
		if name == "addr" {
			return at("%q: the runner sets --addr (each app gets a free port)", f)
		}
		hasDB = hasDB || name == "db"
	}
	if !hasDB {
		return errors.New("apps.flags: no --db: the definition must say where the apps' data lives")
	}
	return nil
}

// checkFlag checks one flag's form, its variables against vars and its
// name against fs, the flag set of `scalelab <command>`; it returns the
// flag's name.
func checkFlag(f string, vars flagVars, fs *flag.FlagSet, command string) (string, error) {
	if !flagRe.MatchString(f) {
		return "", fmt.Errorf("%q, want --name or --name=value", f)
	}
	if _, err := expandFlag(f, vars); err != nil {
		return "", err
	}
	name, _, hasValue := strings.Cut(strings.TrimPrefix(f, "--"), "=")
	fl := fs.Lookup(name)
	switch {
	case fl == nil:
		return "", fmt.Errorf("%q: scalelab %s has no flag --%s", f, command, name)
	case !hasValue && !isBoolFlag(fl):
		return "", fmt.Errorf("%q: --%s needs a value (--%s=…)", f, name, name)
	}
	return name, nil
}

// flagError is an error about entry i of section.flags, at its line when
// known.
func flagError(section string, lines []int, i int, msg string) error {
	err := fmt.Errorf("%s.flags[%d]: %s", section, i, msg)
	if i < len(lines) && lines[i] > 0 {
		return lineError{lines[i], err}
	}
	return err
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagVars are the values ${…} variables in app and worker flags expand
// to. A list value makes the flag repeat once per element.
type flagVars map[string][]string

// placeholderVars has every variable the definition can provide, with a
// dummy value, so that validation catches a flag that names a component
// the topology lacks.
func (d *Definition) placeholderVars() flagVars {
	v := flagVars{"app.name": {"x"}, "app.dir": {"x"}, "app.addr": {"x"}, "app.url": {"x"}, "app.metrics_addr": {"x"}, "run.secret": {"x"}}
	if d.Postgres != nil {
		v["postgres.url"] = []string{"x"}
		if d.Postgres.Replicas > 0 {
			v["replicas.url"] = []string{"x"}
			v["replicas.urls"] = []string{"x"}
		}
	}
	if d.PgBouncer != nil {
		v["pgbouncer.url"] = []string{"x"}
	}
	if d.Redis != nil {
		v["redis.addr"] = []string{"x"}
	}
	if d.RedisCluster != nil {
		v["redis_cluster.addrs"] = []string{"x"}
	}
	if d.HAProxy != nil {
		v["haproxy.url"] = []string{"x"}
	}
	if d.Varnish != nil {
		v["varnish.url"] = []string{"x"}
	}
	if d.Prometheus != nil {
		v["prometheus.url"] = []string{"x"}
	}
	return v
}

// appOnlyVars are the variables of one app instance, which worker flags
// have their own of (see workerVars).
var appOnlyVars = []string{"app.name", "app.dir", "app.addr", "app.url", "app.metrics_addr"}

// expandFlag expands ${name} variables in one flag. A variable with
// several values (${replicas.url}) makes as many flags, one per value.
func expandFlag(flag string, vars flagVars) ([]string, error) {
	var errs []error
	var list []string
	s := os.Expand(flag, func(name string) string {
		vals, ok := vars[name]
		if !ok {
			errs = append(errs, fmt.Errorf("unknown variable ${%s} (or its component is not in this topology)", name))
			return ""
		}
		if len(vals) == 1 {
			return vals[0]
		}
		if list != nil {
			errs = append(errs, fmt.Errorf("more than one list variable in %q", flag))
		}
		list = vals
		return "\x00"
	})
	if len(errs) > 0 {
		return nil, errs[0]
	}
	if list == nil {
		return []string{s}, nil
	}
	out := make([]string, 0, len(list))
	for _, v := range list {
		out = append(out, strings.Replace(s, "\x00", v, 1))
	}
	return out, nil
}

// programs lists the executables the topology starts (the scalelab binary
// aside).
func (d *Definition) programs() []string {
	var p []string
	if d.Postgres != nil {
		p = append(p, "initdb", "pg_ctl", "postgres")
		if d.Postgres.Replicas > 0 {
			p = append(p, "pg_basebackup")
		}
	}
	if d.PgBouncer != nil {
		p = append(p, "pgbouncer")
	}
	if d.Redis != nil || d.RedisCluster != nil {
		p = append(p, "redis-server")
	}
	if d.HAProxy != nil {
		p = append(p, "haproxy")
	}
	if d.Varnish != nil {
		p = append(p, "varnishd", "varnishstat")
	}
	if d.Prometheus != nil {
		p = append(p, "prometheus")
		p = append(p, d.exporterPrograms()...)
	}
	return p
}
