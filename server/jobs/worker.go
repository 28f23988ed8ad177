package jobs

import (
	"flag"
	"runtime"
)

// WorkerConfig is everything `scalelab worker` takes on its command line.
type WorkerConfig struct {
	DB          string
	MigrationDB string
	Concurrency int
	MetricsAddr string
	LogLevel    string
	Name        string
	// Partitions is the layout the worker gives an empty database (the
	// server's --partitions); a database with a schema keeps its own.
	Partitions int
}

// RegisterFlags defines the worker's flags on fs and binds them to c. The
// topologies check a phase file's worker flags against this same set.
func (c *WorkerConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DB, "db", "", "postgres://URL of the primary (the queue lives in Postgres; SQLite has none)")
	fs.StringVar(&c.MigrationDB, "migration-db", "", "postgres://URL to run migrations on when --db is a pgbouncer in transaction mode (default: --db)")
	fs.IntVar(&c.Concurrency, "concurrency", 2*runtime.GOMAXPROCS(0), "jobs worked at once (default 2 × GOMAXPROCS: exports wait on the database as much as they compute)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:0", "listen address of /metrics (port 0 picks a free port, printed at start); empty turns it off")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.Name, "instance-name", "", "name of this worker in logs")
	fs.IntVar(&c.Partitions, "partitions", 0, "layout of the tables when the worker finds an empty database: 0 plain, N hash partitions (as the servers' --partitions); a database with a schema keeps its layout")
}

// WorkerFlagSet returns a flag set with the worker's flags, bound to a
// fresh WorkerConfig with the defaults.
func WorkerFlagSet(name string) (*flag.FlagSet, *WorkerConfig) {
	var c WorkerConfig
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.RegisterFlags(fs)
	return fs, &c
}
