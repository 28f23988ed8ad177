// Package postgres is scalelab's PostgreSQL store (phases 2 to 4), on
// pgx/v5 connection pools: one to the primary and, in phase 3, one to each
// streaming read replica (Options.Replicas).
//
// # Routing
//
// Writes (and everything that must be one transaction) go to the primary.
// Reads go through DB.read, which picks a replica that is healthy and lags
// less than Options.MaxReplicaLag, round robin, and the primary when there
// is none. A router goroutine probes every replica every
// Options.ReplicaCheckInterval and measures its lag against the primary's
// WAL position (see lsnHistory); a replica that fails a probe or a read is
// skipped until it answers again, and a read that fails on a replica runs
// again on the primary.
//
// # Read-your-writes
//
// A write made with a server.WithPositionRecorder context reports the
// primary's WAL position after its commit; a read made with
// server.WithMinPosition is served only by a replica that has replayed that
// far (see server.Position for why positions and not time or versions). So
// a client that carries its last write's position to any app instance
// never reads older data, and still reads from replicas once they caught
// up, which is usually within a millisecond.
//
// # Layouts
//
// The tables come in two layouts (docs/schema.md), chosen when Open creates
// the schema of an empty database (Options.Partitions): plain tables, or
// users hash-partitioned by id and records by user_id, with email and
// username kept unique across partitions by the lookup tables user_emails
// and user_usernames. Every statement that names a user names the
// partition key, so it reads one partition (TestPartitionPruning).
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/prometheus/client_golang/prometheus"

	"scalelab/server"
	"scalelab/server/internal/dbmetrics"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Options configures a DB. The zero value is fine.
type Options struct {
	// MaxConns is the pool size; 0 keeps the URL's pool_max_conns or pgx's
	// default, max(4, number of CPUs).
	MaxConns int32
	// ExecMode is how pgx runs queries; 0 keeps the URL's
	// default_query_exec_mode or pgx's default, QueryExecModeCacheStatement
	// (named prepared statements, one round trip). Behind pgbouncer in
	// transaction mode use pgx.QueryExecModeCacheDescribe: named prepared
	// statements live on a server connection that pgbouncer hands to other
	// clients ("prepared statement already exists").
	ExecMode pgx.QueryExecMode
	// MigrationURL is where migrations run; "" means the store's URL. Point
	// it straight at the primary when the store's URL is a pgbouncer in
	// transaction mode: migrations hold a session-level advisory lock, which
	// transaction pooling cannot keep.
	MigrationURL string
	// Registerer receives the store's metrics (see server/internal/dbmetrics:
	// query durations, pool stats); nil registers none.
	Registerer prometheus.Registerer
	// Logger receives migrations and seeding progress, and replicas going
	// unhealthy or lagging and back; nil discards.
	Logger *slog.Logger

	// Replicas are the URLs (postgres://...) of streaming read replicas of
	// the primary, each naming one server (not a balancer over several: a
	// read that re-checks a replica's position must run where it checked).
	// They are named replica-1, replica-2, … in this order in metrics and
	// logs. MaxConns and ExecMode apply to their pools too. A replica that
	// is down when Open runs is not an error: reads skip it until it answers.
	Replicas []string
	// MaxReplicaLag is the most a replica may lag behind the primary (how
	// long ago the primary was where the replica is) and still serve reads
	// that carry no position; 0 means 1 s.
	MaxReplicaLag time.Duration
	// MaxReplicaLagBytes also bounds the lag in bytes of WAL; 0 means no
	// such bound.
	MaxReplicaLagBytes int64
	// ReplicaCheckInterval is how often the router probes every replica and
	// the primary's position; 0 means DefaultCheckInterval (200 ms).
	ReplicaCheckInterval time.Duration
	// ReplicaCheckTimeout bounds one probe (a new connection included): a
	// replica that does not answer within it is unhealthy; 0 means 200 ms.
	ReplicaCheckTimeout time.Duration
	// Quota bounds each user's stored records; the zero value none.
	Quota server.Quota
	// HedgeAfter is how long a replica may take to answer a user read
	// before it is sent to another replica or the primary too (see
	// readHedged); 0 means 100 ms.
	HedgeAfter time.Duration

	// Partitions is the layout of the tables (docs/schema.md): 0 plain
	// tables, 2 to MaxPartitions users hash-partitioned by id and records
	// by user_id into that many partitions each. It is chosen when Open
	// creates the schema of an empty database; a database keeps the layout
	// it was created with, so on one that has a schema already Partitions
	// is checked (RequireLayout) or ignored.
	Partitions int
	// RequireLayout makes Open fail with a *LayoutError when the database
	// has another layout than Partitions asks for (the server's
	// --partitions). Without it Open takes the layout the database has:
	// for tools that work on either (seed, worker).
	RequireLayout bool
}

// MaxPartitions is the most partitions Options.Partitions may ask for.
const MaxPartitions = 1024

// LayoutError is Open's answer when Options.RequireLayout asks for another
// layout than the database has: a database keeps the layout it was created
// with.
type LayoutError struct {
	Have, Want int // partitions; 0 is plain tables
}

func (e *LayoutError) Error() string {
	return fmt.Sprintf("the database has %s, not %s: the layout is chosen when the schema is created (use a new database for the other layout)",
		layoutName(e.Have), layoutName(e.Want))
}

func layoutName(partitions int) string {
	if partitions == 0 {
		return "plain tables"
	}
	return fmt.Sprintf("users and records hash-partitioned %d ways", partitions)
}

// DB is a server.Store on a PostgreSQL database and its read replicas.
type DB struct {
	primary *primaryPool
	log     *slog.Logger
	quota   server.Quota
	// partitions is the database's layout: 0 plain tables, N partitions.
	partitions int

	replicas    []*replica // read-only after Open
	next        atomic.Uint64
	maxLag      time.Duration
	maxLagBytes int64
	hedgeAfter  time.Duration
	router      *router // nil without replicas

	metrics        *dbmetrics.Queries // durations of operations the primary served
	replicaMetrics *dbmetrics.Queries // … and those a replica served
	primaryQueries prometheus.Counter
	fallbacks      map[string]prometheus.Counter // by reason; read-only after Open
}

var _ server.Store = (*DB)(nil)

// ops are the operation labels of the query duration metric.
var ops = []string{"create_user", "user", "user_by_login", "update_user", "delete_user",
	"create_record", "create_records", "record", "records", "update_record", "delete_record", "usage", "stats"}

// migrationLockID is the advisory lock that serializes migrations of app
// instances starting at once ("scalelab" in ASCII).
const migrationLockID int64 = 0x7363616c656c6162

// Open connects to the database at url (postgres://...), applies the
// embedded migrations (one instance at a time when several start together),
// opens a pool to each of opts.Replicas, starts the router that watches
// them, and returns the store.
func Open(ctx context.Context, url string, opts Options) (*DB, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := poolConfig(url, opts)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err) // pgx keeps passwords out of this error
	}
	where := fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)

	if p := opts.Partitions; p < 0 || p == 1 || p > MaxPartitions {
		return nil, fmt.Errorf("open postgres %s: %d partitions: want 0 (plain tables) or 2 to %d", where, p, MaxPartitions)
	}
	migrationURL := opts.MigrationURL
	if migrationURL == "" {
		migrationURL = url
	}
	partitions, err := migrate(ctx, migrationURL, opts, log)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	db := &DB{primary: newPrimaryPool(pool, log), log: log, quota: opts.Quota, partitions: partitions,
		maxLag: opts.MaxReplicaLag, maxLagBytes: opts.MaxReplicaLagBytes}
	if db.maxLag <= 0 {
		db.maxLag = DefaultMaxReplicaLag
	}
	db.hedgeAfter = opts.HedgeAfter
	if db.hedgeAfter <= 0 {
		db.hedgeAfter = defaultHedgeAfter
	}
	if err := db.openReplicas(ctx, opts); err != nil {
		db.closePools()
		return nil, fmt.Errorf("open postgres %s: %w", where, err)
	}
	if err := db.registerMetrics(opts.Registerer); err != nil {
		db.closePools()
		return nil, fmt.Errorf("open postgres %s: register metrics: %w", where, err)
	}
	if len(db.replicas) > 0 {
		probe := cfg.ConnConfig.Copy()
		probe.RuntimeParams["application_name"] = "scalelab-router"
		db.router = &router{primary: probe, replicas: db.replicas, usable: db.usable, log: log,
			interval: opts.ReplicaCheckInterval, timeout: opts.ReplicaCheckTimeout, primaryHealth: db.primary}
		db.primary.guarded = true
		if db.router.interval <= 0 {
			db.router.interval = DefaultCheckInterval
		}
		if db.router.timeout <= 0 {
			db.router.timeout = defaultCheckTimeout
		}
		db.router.start()
		log.Info("postgres replicas", "replicas", len(db.replicas), "max_lag", db.maxLag, "max_lag_bytes", db.maxLagBytes,
			"check_interval", db.router.interval)
	}
	return db, nil
}

// poolConfig parses url and applies the pool options of opts.
func poolConfig(url string, opts Options) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	if opts.ExecMode != 0 {
		cfg.ConnConfig.DefaultQueryExecMode = opts.ExecMode
	}
	return cfg, nil
}

// openReplicas makes a pool for each replica. Pools connect on first use,
// so a replica that is down now costs nothing here.
func (db *DB) openReplicas(ctx context.Context, opts Options) error {
	for i, url := range opts.Replicas {
		name := fmt.Sprintf("replica-%d", i+1)
		cfg, err := poolConfig(url, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if cfg.ConnConfig.ConnectTimeout == 0 {
			cfg.ConnConfig.ConnectTimeout = replicaConnectTimeout
		}
		r := &replica{name: name, log: db.log, probe: cfg.ConnConfig.Copy()}
		r.state.Store(&replicaState{err: errors.New("not probed yet")})
		r.probe.RuntimeParams["application_name"] = "scalelab-router"
		// A new connection must not be to a server that has replayed less
		// than the router last saw (restarted, or restored from an older
		// backup within one check interval): reads that trusted that
		// sample would miss commits. Refusing it sends the read to the
		// primary and marks the replica unhealthy until its next probe.
		cfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			var text *string
			if err := c.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn()::text`).Scan(&text); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if text == nil {
				return fmt.Errorf("%s: not a replica (pg_last_wal_replay_lsn() is null)", name)
			}
			p, err := server.ParsePosition(*text)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if st := r.state.Load(); st.healthy && p < st.replay {
				return fmt.Errorf("%s: replayed %s, less than %s seen before (restarted?)", name, p, st.replay)
			}
			return nil
		}
		if r.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		db.replicas = append(db.replicas, r)
	}
	return nil
}

func (db *DB) registerMetrics(reg prometheus.Registerer) error {
	roles := []string{"primary"}
	if len(db.replicas) > 0 {
		roles = append(roles, "replica")
	}
	qs, err := dbmetrics.NewQueries(reg, "postgres", ops, roles...)
	if err != nil {
		return err
	}
	db.metrics = qs[0]
	if len(qs) > 1 {
		db.replicaMetrics = qs[1]
	}
	m := newRouteMetrics()
	db.primaryQueries = m.queries.WithLabelValues("postgres", "primary", "")
	db.fallbacks = make(map[string]prometheus.Counter, len(fallbackReasons))
	for _, reason := range fallbackReasons {
		db.fallbacks[reason] = m.fallbacks.WithLabelValues("postgres", reason)
	}
	pools := []dbmetrics.Pool{{Name: "primary", Stats: poolStats(db.primary.Pool)}}
	for _, r := range db.replicas {
		r.queries = m.queries.WithLabelValues("postgres", "replica", r.name)
		r.checks = make(map[string]prometheus.Counter, 3)
		for _, result := range []string{"caught_up", "behind", "error"} {
			r.checks[result] = m.checks.WithLabelValues("postgres", r.name, result)
		}
		pools = append(pools, dbmetrics.Pool{Name: r.name, Stats: poolStats(r.pool)})
	}
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.queries, m.fallbacks, m.checks} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	if len(db.replicas) > 0 {
		if err := reg.Register(replicaCollector{db}); err != nil {
			return err
		}
	}
	return dbmetrics.RegisterPools(reg, "postgres", pools...)
}

// migrate applies the embedded migrations through database/sql (goose's
// interface) under an advisory lock, in the layout the database has, or,
// on an empty one, in the layout opts.Partitions asks for; it returns the
// layout (the number of partitions, 0 for plain tables).
//
// The layouts share every migration but those that have a
// NNNNN_name.partitioned.sql twin: the plain layout runs NNNNN_name.sql,
// the partitioned one the twin, which reads the number of partitions from
// the setting scalelab.partitions of its connection.
func migrate(ctx context.Context, url string, opts Options, log *slog.Logger) (int, error) {
	// Parsed as a pool's URL, so that the pool's own parameters
	// (pool_max_conns and the like) are taken out rather than sent to the
	// server as settings, which it refuses.
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	cfg := pcfg.ConnConfig
	if opts.ExecMode != 0 {
		cfg.DefaultQueryExecMode = opts.ExecMode
	}
	if opts.Partitions > 0 {
		// Used only when this opens an empty database, which then gets
		// this layout.
		cfg.RuntimeParams["scalelab.partitions"] = strconv.Itoa(opts.Partitions)
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	// The lock is held on a connection of its own around the whole of Up,
	// not given to goose as its session locker: goose's Up first asks
	// HasPending without the locker, which creates goose_db_version when it
	// is missing, so instances starting together on a fresh database raced
	// to create it and all but one logged a duplicate-key ERROR
	// (pg_type_typname_nsp_index) before goose retried.
	lockConn, err := sqlDB.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer lockConn.Close()
	lock := advisoryLock{id: migrationLockID}
	if err := lock.SessionLock(ctx, lockConn); err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	defer func() {
		if err := lock.SessionUnlock(context.WithoutCancel(ctx), lockConn); err != nil {
			log.Warn("postgres migrations: release the lock", "err", err)
		}
	}()
	// Under the lock: instances starting together on an empty database
	// see the layout the first one created.
	partitions, exists, err := layout(ctx, lockConn)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	switch {
	case !exists:
		partitions = opts.Partitions
		log.Info("postgres: new schema", "layout", layoutName(partitions))
	case partitions != opts.Partitions && opts.RequireLayout:
		return 0, &LayoutError{Have: partitions, Want: opts.Partitions}
	}
	exclude, err := otherLayout(fsys, partitions > 0)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys, goose.WithDisableGlobalRegistry(true), goose.WithExcludeNames(exclude))
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	start := time.Now()
	results, err := p.Up(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("postgres migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration.Round(time.Microsecond))
	}
	log.Debug("postgres migrations checked", "applied", len(results), "took", time.Since(start).Round(time.Millisecond))
	return partitions, nil
}

// partitionedSuffix ends the name of a migration of the partitioned layout
// that replaces the plain layout's migration of the same name without it.
const partitionedSuffix = ".partitioned.sql"

// otherLayout returns the names of the migrations that the layout does
// not run: the partitioned twins for the plain layout, the migrations that
// have one for the partitioned layout.
func otherLayout(fsys fs.FS, partitioned bool) ([]string, error) {
	twins, err := fs.Glob(fsys, "*"+partitionedSuffix)
	if err != nil {
		return nil, err
	}
	if !partitioned {
		return twins, nil
	}
	var plain []string
	for _, t := range twins {
		plain = append(plain, strings.TrimSuffix(t, partitionedSuffix)+".sql")
	}
	return plain, nil
}

// layout reports whether the schema exists (the users table does) and, if
// so, into how many partitions users is hash-partitioned (0: a plain
// table).
func layout(ctx context.Context, conn *sql.Conn) (partitions int, exists bool, err error) {
	var kind string
	err = conn.QueryRowContext(ctx, `SELECT c.relkind::text, (SELECT count(*) FROM pg_inherits i WHERE i.inhparent = c.oid)
		FROM pg_class c WHERE c.oid = to_regclass('users')`).Scan(&kind, &partitions)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the layout of table users: %w", err)
	}
	if kind != "p" {
		partitions = 0
	}
	return partitions, true, nil
}

// Partitions returns the layout of the database's tables: 0 for plain
// tables, else the number of hash partitions of users and of records.
func (db *DB) Partitions() int { return db.partitions }

// advisoryLock is a goose session locker that waits in pg_advisory_lock
// (until ctx ends) instead of polling pg_try_advisory_lock as goose's own
// does every few seconds: app instances starting together run their
// migrations one after the other without sleeping.
type advisoryLock struct{ id int64 }

func (l advisoryLock) SessionLock(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", l.id); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	return nil
}

func (l advisoryLock) SessionUnlock(ctx context.Context, conn *sql.Conn) error {
	var ok bool
	if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", l.id).Scan(&ok); err != nil {
		return fmt.Errorf("release migration lock: %w", err)
	}
	if !ok {
		return errors.New("release migration lock: not held")
	}
	return nil
}

func poolStats(pool *pgxpool.Pool) func() dbmetrics.PoolStats {
	return func() dbmetrics.PoolStats {
		s := pool.Stat()
		return dbmetrics.PoolStats{Open: int(s.TotalConns()), InUse: int(s.AcquiredConns()), Idle: int(s.IdleConns()),
			MaxOpen: int(s.MaxConns()), WaitCount: s.EmptyAcquireCount(), WaitDuration: s.EmptyAcquireWaitTime()}
	}
}

// Ping reports whether the primary answers, within pingBudget; at once
// while the primary is taken for unreachable (see primaryPool). Replicas do
// not count here: ServesReads says whether reads can go on without the
// primary.
func (db *DB) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, pingBudget)
	defer cancel()
	if err := db.primary.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// pingBudget bounds Ping: readiness checks must answer well within a load
// balancer's check interval even when the primary hangs.
const pingBudget = 500 * time.Millisecond

// ServesReads reports whether plain reads can be served without the
// primary: a replica is usable (healthy, within the lag bounds).
func (db *DB) ServesReads() bool {
	for _, r := range db.replicas {
		if db.usable(r.state.Load()) {
			return true
		}
	}
	return false
}

// Close stops the router and closes the pools, waiting for connections in
// use to be released.
func (db *DB) Close() error {
	if db.router != nil {
		db.router.close()
	}
	db.closePools()
	return nil
}

func (db *DB) closePools() {
	for _, r := range db.replicas {
		r.pool.Close()
	}
	db.primary.Close()
}

// positionTimeout bounds the query that reads a write's position.
const positionTimeout = 2 * time.Second

// recordPosition reports, to ctx's server.PositionRecorder if it has one,
// the position of a write that has just committed on the primary.
//
// The position is pg_current_wal_insert_lsn() read after COMMIT returned:
// the commit record was inserted into the WAL before that, so the position
// is at or past the commit record's end, and a replica whose replay
// position (the end of the last record it replayed) has reached it has
// replayed the commit. pg_current_wal_lsn() would not do: it is the
// position written out to the kernel, which with synchronous_commit = off
// (the lab's NoSync servers) may still be before the commit record, and a
// test (ReadYourWritesAsyncCommit) sees replicas serve reads too early with
// it. The query need not run on the write's connection, only after its
// commit. Reading it costs the write one more round trip, paid only when a
// caller asks for the position.
//
// Should the query fail (the primary vanished right after the commit), the
// write still succeeded: it reports server.PositionUnknown, which sends the
// caller's next reads to the primary, rather than failing a committed write.
func (db *DB) recordPosition(ctx context.Context) {
	if !server.WantsPosition(ctx) {
		return
	}
	// The write committed: read its position even if the caller gave up.
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), positionTimeout)
	defer cancel()
	var text string
	err := db.primary.QueryRow(qctx, `SELECT pg_current_wal_insert_lsn()::text`).Scan(&text)
	p, perr := server.ParsePosition(text)
	p = recordEnd(p)
	if err = errors.Join(err, perr); err != nil {
		db.log.Warn("write committed but its WAL position is unknown: the caller's next reads go to the primary", "err", err)
		p = server.PositionUnknown
	} else {
		db.primary.seen(p)
	}
	server.RecordPosition(ctx, p)
}

// mapError turns constraint violations into domain errors, by constraint
// name (the migration names every constraint).
func mapError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case "23505": // unique_violation
		switch pe.ConstraintName {
		case "users_email_key":
			return &server.Error{Code: server.ECONFLICT, Field: "email", Message: "email is already taken"}
		case "users_username_key":
			return &server.Error{Code: server.ECONFLICT, Field: "username", Message: "username is already taken"}
		case "user_emails_pkey":
			return &server.Error{Code: server.ECONFLICT, Field: "email", Message: "email is already taken"}
		case "user_usernames_pkey":
			return &server.Error{Code: server.ECONFLICT, Field: "username", Message: "username is already taken"}
		}
		// A partition's index reports its own name: users_p3_pkey.
		if t, ok := strings.CutSuffix(partitionParent(pe.ConstraintName), "_pkey"); ok && (t == "users" || t == "records") {
			return &server.Error{Code: server.ECONFLICT, Field: "id", Message: "id already exists"}
		}
	case "23503": // foreign_key_violation: a record for a user that is gone
		return server.Errorf(server.ENOTFOUND, "user not found")
	}
	return err
}

// partitionParent returns the name of the partitioned table's object that
// a partition's object name (users_p3_pkey) stands for (users_pkey); other
// names as they are.
func partitionParent(name string) string {
	for _, t := range []string{"users", "records"} {
		rest, ok := strings.CutPrefix(name, t+"_p")
		if !ok {
			continue
		}
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i > 0 && i < len(rest) && rest[i] == '_' {
			return t + rest[i:]
		}
	}
	return name
}
