package topologies

import (
	"flag"
	"slices"
	"testing"

	"scalelab/server/app"
)

// serverFlags is the flag set phase files are checked against.
func serverFlags() *flag.FlagSet {
	fs, _ := app.FlagSet("server")
	return fs
}

// plan lists one step per component, each after what it needs.
func TestPlanPhase4(t *testing.T) {
	def, err := Phase(4, serverFlags())
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
		"app-1", "app-2", "app-3", "haproxy", "varnish",
		"postgres-exporter", "redis-exporter", "redis-cluster-exporter", "varnish-exporter", "prometheus-targets"}
	if !slices.Equal(names, want) {
		t.Errorf("steps = %q, want %q", names, want)
	}
	if d := deps["haproxy"]; !slices.Equal(d, []string{"app-1", "app-2", "app-3"}) {
		t.Errorf("haproxy waits for %q, want the three apps", d)
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
