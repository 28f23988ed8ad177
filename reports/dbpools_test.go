package reports

import (
	"bytes"
	"strings"
	"testing"
)

// TestRenderDBPools shows the pools of a run in their own section and, in
// a capacity search, each step's pool columns; a result without pools
// shows neither.
func TestRenderDBPools(t *testing.T) {
	r := capacityResult()
	render := func() string {
		t.Helper()
		var md bytes.Buffer
		if err := RenderMarkdown(&md, r); err != nil {
			t.Fatal(err)
		}
		return md.String()
	}
	without := render()
	for _, absent := range []string{"## Database pools", "db pool in use"} {
		if strings.Contains(without, absent) {
			t.Errorf("a result without pools shows %q", absent)
		}
	}
	inUse, wait := 0.75, 45.0
	r.Capacity.Steps[1].DBPoolInUse, r.Capacity.Steps[1].DBPoolWaitUSPerRequest = &inUse, &wait
	r.DBPools = []DBPool{{Component: "app-1", Store: "postgres", Pool: "primary", MaxOpen: 4, InUseMean: 3.2, InUseMax: 4,
		Waits: 14340, WaitS: 37.9, WaitsPerS: 239, WaitMSMean: 2.64, WaitUSPerRequest: 45.1}}
	md := render()
	for _, want := range []string{
		"## Database pools",
		"| app-1 | postgres primary | 4 | 3.2 | 4 | 239 |",
		"| 45.1 |",
		"db pool in use | pool wait µs/req",
		"| 75% | 45.0 |",
		"a full pool makes requests wait with cores to spare",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report.md lacks %q:\n%s", want, md)
		}
	}
}
