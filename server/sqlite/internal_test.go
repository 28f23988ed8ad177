package sqlite

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
)

func TestReaderIsReadOnly(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "x.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.reader.ExecContext(t.Context(), `DELETE FROM users`)
	if err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("DELETE through the reader pool = %v, want a readonly error", err)
	}
	var mode string
	if err := db.writer.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q, %v, want wal", mode, err)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "x.db"), Options{Registerer: reg, ReadConns: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u := &server.User{Email: "a@example.com", Username: "ada", PasswordHash: "h"}
	if err := db.CreateUser(t.Context(), u); err != nil {
		t.Fatal(err)
	}
	if _, err := db.User(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather() = %v", err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetHistogram() != nil:
				got[key] = float64(m.GetHistogram().GetSampleCount())
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			}
		}
	}
	for key, want := range map[string]float64{
		"scalelab_db_query_duration_seconds,op=user,role=primary,store=sqlite":        1,
		"scalelab_db_query_duration_seconds,op=create_user,role=primary,store=sqlite": 1,
		"scalelab_db_pool_max_open_connections,pool=reader,store=sqlite":              3,
		"scalelab_db_pool_max_open_connections,pool=writer,store=sqlite":              1,
	} {
		if got[key] != want {
			t.Errorf("metric %s = %v, want %v", key, got[key], want)
		}
	}
}
