// Package app wires the reference server: it turns a Config into a store,
// the cache tiers, the token issuer, the rate limiter and the HTTP handler,
// and serves them until its context ends. `scalelab server`, the regress
// check and the tests that start a server in-process all go through New, so
// that what they measure and test is what the command runs.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/net/netutil"

	"scalelab/server/admit"
	"scalelab/server/auth"
	"scalelab/server/cache"
	"scalelab/server/httpapi"
	"scalelab/server/postgres"
	"scalelab/server/ratelimit"
)

// ErrConfig marks an error in the configuration: a bad flag value rather
// than a failure at run time. The command line answers it with status 2.
var ErrConfig = errors.New("configuration")

// configError is an error in the configuration; it reads as its message
// alone and matches ErrConfig.
type configError struct{ msg string }

func (e *configError) Error() string        { return e.msg }
func (e *configError) Is(target error) bool { return target == ErrConfig }

// maxDBPool bounds --db-pool: PostgreSQL's own default max_connections is
// 100, and a pool past a few thousand is a typo.
const maxDBPool = 10000

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// Config is everything `scalelab server` takes on its command line.
type Config struct {
	Addr            string
	DB              string
	Replicas        ListFlag
	Redis           ListFlag
	CacheTTL        time.Duration
	CacheMiB        int
	RateLimit       int
	LoginLimit      int
	ArgonMemoryKiB  uint
	ArgonTime       uint
	DrainDelay      time.Duration
	ShutdownTimeout time.Duration
	LogLevel        string
	Name            string
	TokenSecret     string
	TokenTTL        time.Duration
	TrustedProxies  ListFlag
	L2TTL           time.Duration
	DegradedL1TTL   time.Duration
	MigrationDB     string
	PurgeURLs       ListFlag
	HashQueue       int
	SignupLimit     int
	QuotaRecords    int64
	QuotaBytes      int64
	// AsyncDeleteRecords: see registerQueueFlags.
	AsyncDeleteRecords int64
	// StatsRefresh is how often the stats views are refreshed (PostgreSQL).
	StatsRefresh time.Duration
	// Partitions is the PostgreSQL table layout: 0 plain tables, N users
	// and records hash-partitioned N ways (see postgres.Options).
	Partitions int
	// ReplicaCheckInterval and MaxReplicaLag tune the read router
	// (postgres.Options).
	ReplicaCheckInterval time.Duration
	MaxReplicaLag        time.Duration
	// DBPool is the size of each PostgreSQL pool (postgres.Options.MaxConns);
	// at most maxDBPool.
	DBPool int
	// API is the one API surface served: "v1" or "users".
	API            string
	InsecureListen bool
	MetricsAddr    string
	MaxConns       int
	MaxInFlight    int
	QueueTimeout   time.Duration
	ReadReserve    int

	// Middleware, when set, wraps the API handler. It is no flag: the
	// regress check uses it to plant a slowdown in the server under test.
	Middleware func(http.Handler) http.Handler
}

// RegisterFlags defines the server's flags on fs, with their defaults, and
// binds them to c. The topologies check their phase files against this
// same set, so a flag misspelt there fails when the file is loaded.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "listen address HOST:PORT (port 0 picks a free port)")
	fs.StringVar(&c.DB, "db", "sqlite:scalelab.db", "database: sqlite:PATH or postgres://URL")
	fs.Var(&c.Replicas, "replica", "read replica postgres://URL (repeatable; phase 3)")
	fs.Var(&c.Redis, "redis", "Redis ADDR[,ADDR...] for the L2 cache and shared rate limits (phase 3)")
	fs.IntVar(&c.Partitions, "partitions", 0, "PostgreSQL layout: 0 = plain tables; N (2-1024) = users hash-partitioned by id and records by user_id into N partitions each. Chosen when the schema is created; a database with another layout is refused")
	fs.DurationVar(&c.ReplicaCheckInterval, "replica-check-interval", postgres.DefaultCheckInterval, "how often each instance's read router probes every replica's replay position and the primary's WAL position (with --replica); a plain read may see data up to --max-replica-lag plus this old, while reads after a write stay exact")
	fs.IntVar(&c.DBPool, "db-pool", 0, "connections in each PostgreSQL pool, the primary's and each replica's (0: the URL's pool_max_conns, else pgx's default, max(4, cores)); a request waits for a free one")
	fs.DurationVar(&c.MaxReplicaLag, "max-replica-lag", postgres.DefaultMaxReplicaLag, "a replica further behind the primary than this serves no plain reads (with --replica)")
	fs.DurationVar(&c.StatsRefresh, "stats-refresh", time.Minute, "refresh interval of the PostgreSQL views behind GET /api/v1/stats (one instance at a time); 0 = never")
	fs.DurationVar(&c.CacheTTL, "cache-ttl", 5*time.Minute, "L1 in-process cache TTL; 0 turns L1 off")
	fs.IntVar(&c.CacheMiB, "cache-size", 64, "L1 memory bound in MiB")
	fs.IntVar(&c.RateLimit, "rate-limit", 0, "requests per second per client on /api/v1 (burst 2×N); 0 = off")
	fs.IntVar(&c.LoginLimit, "login-limit", 0, "failed token requests per minute per login and per address; 0 = off")
	fs.UintVar(&c.ArgonMemoryKiB, "argon2-memory", uint(auth.DefaultParams().Memory), "argon2id memory in KiB (OWASP minimum 19456)")
	fs.UintVar(&c.ArgonTime, "argon2-time", uint(auth.DefaultParams().Time), "argon2id passes (OWASP minimum 2)")
	fs.DurationVar(&c.DrainDelay, "drain-delay", 0, "on SIGTERM, fail /readyz this long before closing listeners")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to wait for in-flight requests on shutdown")
	fs.StringVar(&c.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.Name, "instance-name", "", "name of this instance in logs and metrics")
	fs.StringVar(&c.TokenSecret, "token-secret", "", "secret (32+ bytes; raw, base64: or hex:) that signs /api/v1 tokens; share it across instances. Empty: a random one for this process")
	fs.DurationVar(&c.TokenTTL, "token-ttl", auth.DefaultTokenTTL, "lifetime of /api/v1 access tokens")
	fs.StringVar(&c.MigrationDB, "migration-db", "", "postgres://URL to run migrations on when --db is a pgbouncer in transaction mode (default: --db)")
	fs.StringVar(&c.API, "api", httpapi.APIv1, "the one API this server serves: v1 (/api/v1, with auth) or users (the unauthenticated /api/users of phases 1–2, loopback only unless --insecure-listen)")
	fs.BoolVar(&c.InsecureListen, "insecure-listen", false, "let --api users listen on a non-loopback address: anyone who reaches it can read, change and delete every account")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "127.0.0.1:0", "listen address of /metrics, apart from the API (port 0 picks a free port, printed at start); empty turns it off")
	fs.IntVar(&c.MaxConns, "max-conns", 4096, "most client connections open at once; more wait in the kernel's accept queue. 0 = no cap")
	fs.IntVar(&c.MaxInFlight, "max-inflight", 8*runtime.GOMAXPROCS(0), "most API requests worked on at once (default 8 × GOMAXPROCS); past it requests wait up to --queue-timeout, then get 503. 0 = no limit")
	fs.DurationVar(&c.QueueTimeout, "queue-timeout", 10*time.Millisecond, "how long an API request may wait for an in-flight slot before it is shed with 503 and Retry-After")
	fs.IntVar(&c.ReadReserve, "read-reserve", 0, "in-flight slots kept for GET and HEAD, which writes may not take, so that writes hung on a stalled primary cannot shed reads (0: a quarter of --max-inflight; -1: none)")
	fs.DurationVar(&c.L2TTL, "l2-ttl", 15*time.Minute, "L2 (Redis) cache TTL, jittered ±10%")
	fs.DurationVar(&c.DegradedL1TTL, "l1-ttl-degraded", time.Second, "while Redis (the invalidation channel) is down, L1 entries older than this are loaded again: the bound on stale reads then")
	fs.Var(&c.PurgeURLs, "purge-url", "CDN base URL to send PURGE to after writes, e.g. Varnish (repeatable; phase 4)")
	c.registerBudgetFlags(fs)
	c.registerQueueFlags(fs)
	fs.Var(&c.TrustedProxies, "trusted-proxy", "CIDR of a proxy whose X-Forwarded-For is believed for client addresses (repeatable)")
}

// FlagSet returns a flag set with the server's flags, bound to a fresh
// Config with the defaults.
func FlagSet(name string) (*flag.FlagSet, *Config) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.RegisterFlags(fs)
	return fs, &c
}

// Default returns the configuration `scalelab server` runs with when given
// no flags.
func Default() Config {
	_, c := FlagSet("server")
	return *c
}

// NewLogger returns a text logger at the named level.
func NewLogger(w interface{ Write([]byte) (int, error) }, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, configErrorf("--log-level %q: %v", level, err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// Server is a wired reference server, listening but not yet serving.
type Server struct {
	cfg      Config
	log      *slog.Logger
	ln       net.Listener
	srv      *http.Server
	metrics  *http.Server // nil without --metrics-addr
	mln      net.Listener
	handler  http.Handler
	draining *atomic.Bool
	served   bool
	closers  []func()
}

// New opens everything c names and listens on c.Addr. The background work
// it starts (L2's invalidation subscription, the CDN purger) runs until ctx
// ends or Close is called. Close releases what New opened; Serve calls it.
func New(ctx context.Context, c Config, log *slog.Logger) (s *Server, err error) {
	if err := c.checkSurface(); err != nil {
		return nil, err
	}
	if c.DBPool < 0 || c.DBPool > maxDBPool {
		return nil, configErrorf("--db-pool %d: want 0 (the default) to %d", c.DBPool, maxDBPool)
	}
	srv := &Server{cfg: c, log: log, draining: new(atomic.Bool)}
	s = srv
	defer func() {
		if err != nil {
			srv.Close()
		}
	}()
	params := auth.DefaultParams()
	params.Memory, params.Time = uint32(c.ArgonMemoryKiB), uint32(c.ArgonTime)
	if params.Weaker() {
		log.Warn("argon2id cost is below OWASP's minimum (m=19456 KiB, t=2): fine for a lab run, never for real passwords",
			"memory_kib", params.Memory, "time", params.Time)
	}
	hasher, err := auth.NewHasher(params, 0, auth.WithQueue(c.HashQueue))
	if err != nil {
		return nil, configErrorf("%v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	store, err := OpenStore(ctx, StoreOptions{DSN: c.DB, MigrationDSN: c.MigrationDB, Replicas: c.Replicas, Registerer: reg, Logger: log, Quota: c.quota(),
		Partitions: c.Partitions, RequireLayout: true, ReplicaCheckInterval: c.ReplicaCheckInterval, MaxReplicaLag: c.MaxReplicaLag, PoolSize: c.DBPool})
	if err != nil {
		return nil, err
	}
	s.defer_(func() { store.Close() })
	queue, closeQueue, err := openQueue(ctx, c, store, reg, log)
	if err != nil {
		return nil, err
	}
	s.defer_(closeQueue)
	if sr, ok := store.(statsRefresher); ok && c.StatsRefresh > 0 {
		s.defer_(startStatsRefresh(ctx, sr, c.StatsRefresh, log))
	}

	cacheMetrics := cache.NewMetrics(reg)
	var l1 *cache.L1[*httpapi.UserEntry]
	if c.CacheTTL > 0 {
		l1, err = cache.NewL1(cache.L1Options[*httpapi.UserEntry]{
			TTL:      c.CacheTTL,
			MaxBytes: uint64(c.CacheMiB) << 20,
			Weigh:    httpapi.WeighUserEntry,
			Metrics:  cacheMetrics,
		})
		if err != nil {
			return nil, err
		}
		s.defer_(l1.Close)
	}

	// One Redis client serves the L2 tier and the shared rate limits.
	var rdb redis.UniversalClient
	var l2 *cache.L2
	if len(c.Redis) > 0 {
		rdb, err = cache.NewRedisClient(cache.RedisOptions{Addrs: c.Redis})
		if err != nil {
			return nil, configErrorf("--redis: %v", err)
		}
		s.defer_(func() { rdb.Close() })
		l2, err = cache.NewL2(rdb, cache.L2Options{TTL: c.L2TTL, Metrics: cacheMetrics, Registerer: reg, Logger: log})
		if err != nil {
			return nil, err
		}
		// Invalidations published by other instances drop this instance's
		// L1 entries; on every (re)subscription the whole L1 is flushed,
		// since messages may have been missed meanwhile.
		var onInvalidate func(string)
		var onReset func()
		if l1 != nil {
			onInvalidate, onReset = l1.Invalidate, l1.InvalidateAll
		}
		l2.Subscribe(ctx, onInvalidate, onReset)
		s.defer_(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			l2.Close(cctx)
		})
	}
	var purger *cache.Purger
	if len(c.PurgeURLs) > 0 {
		// Repeat: a CDN fetch in flight during a purge can store the old
		// view after it; the repeat bounds that to half a second.
		opts := cache.PurgerOptions{BaseURLs: c.PurgeURLs, Repeat: 500 * time.Millisecond, Registerer: reg, Logger: log}
		if queue != nil {
			// A purge that fails for seconds goes to the job queue,
			// which outlives this instance and retries for an hour.
			opts.Handoff = queue.EnqueuePurge
		}
		purger, err = cache.NewPurger(opts)
		if err != nil {
			return nil, configErrorf("--purge-url: %v", err)
		}
		purger.Start(ctx)
		s.defer_(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			purger.Close(cctx)
		})
	}

	tokens, err := newIssuer(c, log)
	if err != nil {
		return nil, err
	}
	trusted, err := ratelimit.ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return nil, configErrorf("--trusted-proxy: %v", err)
	}
	var limiter *ratelimit.Limiter
	if c.RateLimit > 0 || c.LoginLimit > 0 {
		limiter, err = ratelimit.New(rdb, ratelimit.Config{Rate: c.RateLimit, LoginLimit: c.LoginLimit, SignupLimit: c.SignupLimit, Registerer: reg, Logger: log})
		if err != nil {
			return nil, configErrorf("%v", err)
		}
	}

	var gate *admit.Gate
	if c.MaxInFlight > 0 {
		gate, err = admit.New(admit.Options{MaxInFlight: c.MaxInFlight, QueueTimeout: c.QueueTimeout, ReadReserve: c.ReadReserve, Registerer: reg})
		if err != nil {
			return nil, configErrorf("--max-inflight, --queue-timeout, --read-reserve: %v", err)
		}
	}

	s.handler, err = httpapi.NewHandler(httpapi.Config{
		Store:          store,
		Hasher:         hasher,
		UserCache:      l1,
		Logger:         log,
		Registry:       reg,
		Draining:       s.draining,
		Tokens:         tokens,
		Limiter:        limiter,
		TrustedProxies: trusted,
		API:            c.API,
		Gate:           gate,
		L2:             l2,
		Purger:         purger,
		DegradedL1TTL:  c.DegradedL1TTL,
		Queue:          queue,
	})
	if err != nil {
		return nil, err
	}
	handler := s.handler
	if c.Middleware != nil {
		handler = c.Middleware(handler)
	}

	s.ln, err = net.Listen("tcp", c.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	if c.MaxConns > 0 {
		s.ln = netutil.LimitListener(s.ln, c.MaxConns)
	}
	if c.MetricsAddr != "" {
		// /metrics tells the Go version, the build and every route's
		// traffic: it is for the operator's Prometheus, not for clients,
		// so it has a listener of its own, on loopback unless told.
		s.mln, err = net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("listen on --metrics-addr %s: %w", c.MetricsAddr, err)
		}
		s.metrics = &http.Server{
			Handler:           nosniff(metricsMux(reg)),
			ReadHeaderTimeout: 10 * time.Second,
			// A CPU profile answers after its ?seconds= (at most
			// maxProfile); the write deadline must outlast it.
			WriteTimeout: maxProfile + 30*time.Second,
			ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	s.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return s, nil
}

func (s *Server) defer_(f func()) { s.closers = append(s.closers, f) }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// URL is the server's base URL, http://HOST:PORT.
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// MetricsURL is the base URL of the metrics listener (its /metrics), or ""
// when there is none.
func (s *Server) MetricsURL() string {
	if s.mln == nil {
		return ""
	}
	return "http://" + s.mln.Addr().String()
}

// checkSurface refuses an unknown --api, and the unauthenticated users API
// on an address other machines can reach unless the operator insists.
func (c Config) checkSurface() error {
	switch c.API {
	case httpapi.APIv1:
		return nil
	case httpapi.APIUsers:
	default:
		return configErrorf("--api %q: want %s or %s", c.API, httpapi.APIv1, httpapi.APIUsers)
	}
	if c.InsecureListen || isLoopback(c.Addr) {
		return nil
	}
	return configErrorf("--api users on %s: refused, because that API has no authentication (anyone who reaches it can read, change and delete every account); listen on 127.0.0.1, or add --insecure-listen to accept that", c.Addr)
}

// isLoopback reports whether addr (HOST:PORT) listens on loopback only. An
// empty host listens on every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Handler is the API handler, without the configured middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests until ctx ends, then drains: /readyz fails first,
// then in-flight requests finish, then everything New opened is closed.
func (s *Server) Serve(ctx context.Context) error {
	defer s.Close()
	s.served = true
	s.log.Info("server started", "addr", s.ln.Addr().String(), "db", RedactDSN(s.cfg.DB), "l1_ttl", s.cfg.CacheTTL)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	merrc := make(chan error, 1)
	if s.metrics != nil {
		s.log.Info("metrics listener started", "addr", s.mln.Addr().String())
		go func() { merrc <- s.metrics.Serve(s.mln) }()
		// The metrics listener stops last, so the drain itself is
		// scraped; it has nothing in flight worth waiting for.
		defer func() {
			s.metrics.Close()
			<-merrc
		}()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("draining: /readyz now fails", "delay", s.cfg.DrainDelay)
	if s.cfg.DrainDelay > 0 {
		time.Sleep(s.cfg.DrainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("server stopped")
	return nil
}

// Close releases what New opened, in reverse order. Serve calls it; call
// it yourself only for a server that never served.
func (s *Server) Close() {
	if !s.served {
		if s.ln != nil {
			s.ln.Close()
		}
		if s.mln != nil {
			s.mln.Close()
		}
	}
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// newIssuer returns the token issuer. Without a configured secret each
// process makes its own, and tokens then work only on the instance that
// issued them: fine alone, wrong behind a load balancer.
func newIssuer(c Config, log *slog.Logger) (*auth.Issuer, error) {
	secret := c.TokenSecret
	if secret == "" {
		s, err := auth.GenerateSecret()
		if err != nil {
			return nil, err
		}
		secret = s
		log.Info("no --token-secret: tokens are signed with a random secret of this process only")
	}
	key, err := auth.NewKey(secret)
	if err != nil {
		return nil, configErrorf("--token-secret: %v", err)
	}
	iss, err := auth.NewIssuer(auth.IssuerOptions{Key: key, TTL: c.TokenTTL})
	if err != nil {
		return nil, configErrorf("%v", err)
	}
	return iss, nil
}

// nosniff marks h's responses X-Content-Type-Options: nosniff, as the API
// marks all of its own.
// maxProfile bounds a CPU profile's ?seconds= on the metrics listener.
const maxProfile = 10 * time.Minute

// metricsMux serves /metrics and, beside it, the runtime's profiles under
// /debug/pprof/ (a CPU profile is /debug/pprof/profile?seconds=N). Both are
// for the operator, never for clients: they live on the metrics listener
// (loopback unless told), never on the API port, where a profile request
// would let anyone make the instance spend its CPU on sampling and tell
// them what its code does. `scalelab run --profile` fetches them.
func metricsMux(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func nosniff(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		h.ServeHTTP(w, r)
	})
}

// RedactDSN hides a password in a database URL for logs.
func RedactDSN(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		if at := strings.LastIndex(dsn, "@"); at > i {
			userinfo := dsn[i+3 : at]
			if colon := strings.Index(userinfo, ":"); colon >= 0 {
				return dsn[:i+3] + userinfo[:colon] + ":***" + dsn[at:]
			}
		}
	}
	return dsn
}

// ListFlag is a flag that may be repeated; from the environment it takes a
// comma-separated list.
type ListFlag []string

func (l *ListFlag) String() string { return strings.Join(*l, ",") }

// Set adds the comma-separated values in v.
func (l *ListFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}
