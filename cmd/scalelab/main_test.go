package main

import (
	"os"
	"testing"

	"scalelab/internal/pgserver/pgtest"
)

// pg is this test binary's throwaway PostgreSQL, started on first use.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// postgresDSN returns a fresh database on the shared test server.
func postgresDSN(t *testing.T) string { return pg.Database(t) }
