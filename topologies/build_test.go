package topologies

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"scalelab/server/app"
	"scalelab/server/jobs"
)

// commandFlags are the flag sets phase files are checked against.
func commandFlags() Flags {
	server, _ := app.FlagSet("server")
	worker, _ := jobs.WorkerFlagSet("worker")
	return Flags{Server: server, Worker: worker}
}

// plan lists one step per component, each after what it needs.
func TestPlanPhase4(t *testing.T) {
	def, err := Phase(4, commandFlags())
	if err != nil {
		t.Fatal(err)
	}
	top := &Topology{rt: &runtime{log: discardLogger()}}
	b := &builder{t: top, def: def, bin: "scalelab", ports: newPortPicker(), log: discardLogger()}
	if err := b.plan(); err != nil {
		t.Fatal(err)
	}
	var names []string
	deps := map[string][]string{}
	for _, s := range b.steps {
		names = append(names, s.name)
		deps[s.name] = s.deps
	}
	want := []string{"prometheus", "primary", "replica-1", "replica-2", "pgbouncer", "redis", "redis-cluster",
		"app-1", "app-2", "app-3", "worker-1", "haproxy", "varnish",
		"postgres-exporter", "redis-exporter", "redis-cluster-exporter", "varnish-exporter", "prometheus-targets"}
	if !slices.Equal(names, want) {
		t.Errorf("steps = %q, want %q", names, want)
	}
	if d := deps["haproxy"]; !slices.Equal(d, []string{"app-1", "app-2", "app-3"}) {
		t.Errorf("haproxy waits for %q, want the three apps", d)
	}
	// The apps create the schema in the layout their --partitions asks
	// for; a worker takes the one it finds, so it starts after them.
	if d := deps["worker-1"]; !slices.Equal(d, []string{"app-1", "app-2", "app-3"}) {
		t.Errorf("worker-1 waits for %q, want the three apps", d)
	}
	if len(top.WorkerMetricsURLs) != 1 {
		t.Errorf("WorkerMetricsURLs = %q, want one", top.WorkerMetricsURLs)
	}
	if top.EntryURL == "" || top.EntryURL == top.AppURLs[0] {
		t.Errorf("entry %q, want Varnish's URL, not app-1's", top.EntryURL)
	}
}

func TestDatabaseURL(t *testing.T) {
	tests := []struct {
		flags []string
		want  string
	}{
		{[]string{"--db=sqlite:/run/app-1/data.db", "--cache-ttl=0"}, "sqlite:/run/app-1/data.db"},
		{[]string{"--db=sqlite:data.db"}, "sqlite:/run/app-1/data.db"},
		{[]string{"--db=sqlite:a.db", "--db=postgres://h/db"}, "postgres://h/db"},
		{[]string{"--cache-ttl=0"}, ""},
	}
	for _, tt := range tests {
		if got := databaseURL(tt.flags, "/run/app-1"); got != tt.want {
			t.Errorf("databaseURL(%q) = %q, want %q", tt.flags, got, tt.want)
		}
	}
}

func TestAppEnv(t *testing.T) {
	tests := []struct {
		n, cores int
		set      string
		want     []string
	}{
		{1, 2, "", nil}, // phases 1-2: every core
		{3, 2, "", []string{"GOMAXPROCS=1", "SCALELAB_MAX_INFLIGHT=16"}}, // phases 3-4 here
		{3, 8, "", []string{"GOMAXPROCS=2", "SCALELAB_MAX_INFLIGHT=64"}}, // a bigger box: the share
		{3, 1, "", nil}, // one core: already 1
		{2, 16, "", []string{"GOMAXPROCS=8", "SCALELAB_MAX_INFLIGHT=128"}},
		{3, 2, "2", nil}, // the runner's own setting stands
		{0, 2, "", nil},  // no instances: nothing to share
		{4, 2, "", []string{"GOMAXPROCS=1", "SCALELAB_MAX_INFLIGHT=16"}},    // never below 1
		{16, 64, "", []string{"GOMAXPROCS=4", "SCALELAB_MAX_INFLIGHT=512"}}, //
	}
	for _, tt := range tests {
		if got := appEnv(tt.n, tt.cores, tt.set); !slices.Equal(got, tt.want) {
			t.Errorf("appEnv(%d, %d, %q) = %q, want %q", tt.n, tt.cores, tt.set, got, tt.want)
		}
	}
}

// TestExportersScrapedApart: the exporters and Prometheus itself are
// scraped at prometheus.exporter_interval, everything else at the global
// scrape_interval.
func TestExportersScrapedApart(t *testing.T) {
	def, err := Phase(3, commandFlags())
	if err != nil {
		t.Fatal(err)
	}
	if got := def.Prometheus.ExporterInterval; got != 5*time.Second {
		t.Errorf("phase 3 exporter_interval = %v, want the default 5s", got)
	}
	dir := t.TempDir()
	b := &builder{def: def, exporters: []exporterPlan{{name: "postgres-exporter", port: 9187}}}
	jobs := append([]promJob{{Name: "app", Targets: []promTarget{{Addr: "127.0.0.1:9000", Component: "app-1"}}}}, b.exporterJobs()...)
	path := filepath.Join(dir, "prometheus.yml")
	if err := writeTemplate("prometheus.yml", path, prometheusConfig(def.Prometheus, "127.0.0.1:9090", jobs)); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Global struct {
			ScrapeInterval string `yaml:"scrape_interval"`
		} `yaml:"global"`
		ScrapeConfigs []struct {
			JobName        string `yaml:"job_name"`
			ScrapeInterval string `yaml:"scrape_interval"`
			ScrapeTimeout  string `yaml:"scrape_timeout"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("prometheus.yml does not parse: %v\n%s", err, raw)
	}
	if cfg.Global.ScrapeInterval != "1000ms" {
		t.Errorf("global scrape_interval = %q, want 1000ms", cfg.Global.ScrapeInterval)
	}
	got := map[string]string{}
	for _, j := range cfg.ScrapeConfigs {
		got[j.JobName] = j.ScrapeInterval + "/" + j.ScrapeTimeout
	}
	want := map[string]string{"app": "/", "postgres-exporter": "5000ms/5000ms", "prometheus": "5000ms/5000ms"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scrape intervals by job (-want +got):\n%s", diff)
	}
}
