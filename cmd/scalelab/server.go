package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"scalelab/server/auth"
	"scalelab/server/cache"
	"scalelab/server/httpapi"
	"scalelab/server/ratelimit"
)

type serverConfig struct {
	addr            string
	db              string
	replicas        listFlag
	redis           listFlag
	cacheTTL        time.Duration
	cacheMiB        int
	rateLimit       int
	loginLimit      int
	argonMemoryKiB  uint
	argonTime       uint
	drainDelay      time.Duration
	shutdownTimeout time.Duration
	logLevel        string
	name            string
	tokenSecret     string
	tokenTTL        time.Duration
	trustedProxies  listFlag
	l2TTL           time.Duration
	migrationDB     string
	unversioned     bool
	purgeURLs       listFlag
}

func runServer(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c serverConfig
	fs := newFlagSet("server", stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "listen address HOST:PORT (port 0 picks a free port)")
	fs.StringVar(&c.db, "db", "sqlite:scalelab.db", "database: sqlite:PATH or postgres://URL")
	fs.Var(&c.replicas, "replica", "read replica postgres://URL (repeatable; phase 3)")
	fs.Var(&c.redis, "redis", "Redis ADDR[,ADDR...] for the L2 cache and shared rate limits (phase 3)")
	fs.DurationVar(&c.cacheTTL, "cache-ttl", 5*time.Minute, "L1 in-process cache TTL; 0 turns L1 off")
	fs.IntVar(&c.cacheMiB, "cache-size", 64, "L1 memory bound in MiB")
	fs.IntVar(&c.rateLimit, "rate-limit", 0, "requests per second per client on /api/v1 (burst 2×N); 0 = off")
	fs.IntVar(&c.loginLimit, "login-limit", 0, "failed token requests per minute per login and per address; 0 = off")
	fs.UintVar(&c.argonMemoryKiB, "argon2-memory", uint(auth.DefaultParams().Memory), "argon2id memory in KiB (OWASP minimum 19456)")
	fs.UintVar(&c.argonTime, "argon2-time", uint(auth.DefaultParams().Time), "argon2id passes (OWASP minimum 2)")
	fs.DurationVar(&c.drainDelay, "drain-delay", 0, "on SIGTERM, fail /readyz this long before closing listeners")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long to wait for in-flight requests on shutdown")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.name, "instance-name", "", "name of this instance in logs and metrics")
	fs.StringVar(&c.tokenSecret, "token-secret", "", "secret (32+ bytes; raw, base64: or hex:) that signs /api/v1 tokens; share it across instances. Empty: a random one for this process")
	fs.DurationVar(&c.tokenTTL, "token-ttl", auth.DefaultTokenTTL, "lifetime of /api/v1 access tokens")
	fs.StringVar(&c.migrationDB, "migration-db", "", "postgres://URL to run migrations on when --db is a pgbouncer in transaction mode (default: --db)")
	fs.BoolVar(&c.unversioned, "unversioned-api", true, "serve the unauthenticated /api/users routes of phases 1–2; false leaves only /api/v1, whose auth they would bypass")
	fs.DurationVar(&c.l2TTL, "l2-ttl", 15*time.Minute, "L2 (Redis) cache TTL, jittered ±10%")
	fs.Var(&c.purgeURLs, "purge-url", "CDN base URL to send PURGE to after writes, e.g. Varnish (repeatable; phase 4)")
	fs.Var(&c.trustedProxies, "trusted-proxy", "CIDR of a proxy whose X-Forwarded-For is believed for client addresses (repeatable)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, c.logLevel)
	if err != nil {
		return err
	}
	if c.name != "" {
		log = log.With("instance", c.name)
	}
	return serve(ctx, c, log, stdout)
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, &exitError{code: 2, msg: fmt.Sprintf("--log-level %q: %v", level, err)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// serve runs the server until ctx ends, then drains: /readyz fails first,
// then in-flight requests finish, then the store closes.
func serve(ctx context.Context, c serverConfig, log *slog.Logger, stdout io.Writer) error {
	params := auth.DefaultParams()
	params.Memory, params.Time = uint32(c.argonMemoryKiB), uint32(c.argonTime)
	if params.Weaker() {
		log.Warn("argon2id cost is below OWASP's minimum (m=19456 KiB, t=2): fine for a lab run, never for real passwords",
			"memory_kib", params.Memory, "time", params.Time)
	}
	hasher, err := auth.NewHasher(params, 0)
	if err != nil {
		return &exitError{code: 2, msg: err.Error()}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	store, err := openStoreWith(ctx, c.db, c.migrationDB, reg, log, c.replicas...)
	if err != nil {
		return err
	}
	defer store.Close()

	cacheMetrics := cache.NewMetrics(reg)
	var l1 *cache.L1[*httpapi.UserEntry]
	if c.cacheTTL > 0 {
		l1, err = cache.NewL1(cache.L1Options[*httpapi.UserEntry]{
			TTL:      c.cacheTTL,
			MaxBytes: uint64(c.cacheMiB) << 20,
			Weigh:    httpapi.WeighUserEntry,
			Metrics:  cacheMetrics,
		})
		if err != nil {
			return err
		}
		defer l1.Close()
	}

	// One Redis client serves the L2 tier and the shared rate limits.
	var rdb redis.UniversalClient
	var l2 *cache.L2
	if len(c.redis) > 0 {
		rdb, err = cache.NewRedisClient(cache.RedisOptions{Addrs: c.redis})
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("--redis: %v", err)}
		}
		defer rdb.Close()
		l2, err = cache.NewL2(rdb, cache.L2Options{TTL: c.l2TTL, Metrics: cacheMetrics, Registerer: reg, Logger: log})
		if err != nil {
			return err
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
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			l2.Close(cctx)
		}()
	}
	var purger *cache.Purger
	if len(c.purgeURLs) > 0 {
		// Repeat: a CDN fetch in flight during a purge can store the old
		// view after it; the repeat bounds that to half a second.
		purger, err = cache.NewPurger(cache.PurgerOptions{BaseURLs: c.purgeURLs, Repeat: 500 * time.Millisecond, Registerer: reg, Logger: log})
		if err != nil {
			return &exitError{code: 2, msg: fmt.Sprintf("--purge-url: %v", err)}
		}
		purger.Start(ctx)
		defer func() {
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			purger.Close(cctx)
		}()
	}

	tokens, err := newIssuer(c, log)
	if err != nil {
		return err
	}
	trusted, err := ratelimit.ParseTrustedProxies(c.trustedProxies)
	if err != nil {
		return &exitError{code: 2, msg: fmt.Sprintf("--trusted-proxy: %v", err)}
	}
	var limiter *ratelimit.Limiter
	if c.rateLimit > 0 || c.loginLimit > 0 {
		limiter, err = ratelimit.New(rdb, ratelimit.Config{Rate: c.rateLimit, LoginLimit: c.loginLimit, Registerer: reg, Logger: log})
		if err != nil {
			return &exitError{code: 2, msg: err.Error()}
		}
	}

	var draining atomic.Bool
	handler, err := httpapi.NewHandler(httpapi.Config{
		Store:          store,
		Hasher:         hasher,
		UserCache:      l1,
		Logger:         log,
		Registry:       reg,
		Draining:       &draining,
		Tokens:         tokens,
		Limiter:        limiter,
		TrustedProxies: trusted,
		NoUnversioned:  !c.unversioned,
		L2:             l2,
		Purger:         purger,
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "scalelab server listening on http://%s\n", ln.Addr())
	log.Info("server started", "addr", ln.Addr().String(), "db", redactDSN(c.db), "l1_ttl", c.cacheTTL)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	draining.Store(true)
	log.Info("draining: /readyz now fails", "delay", c.drainDelay)
	if c.drainDelay > 0 {
		time.Sleep(c.drainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("server stopped")
	return nil
}

// newIssuer returns the token issuer. Without a configured secret each
// process makes its own, and tokens then work only on the instance that
// issued them: fine alone, wrong behind a load balancer.
func newIssuer(c serverConfig, log *slog.Logger) (*auth.Issuer, error) {
	secret := c.tokenSecret
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
		return nil, &exitError{code: 2, msg: fmt.Sprintf("--token-secret: %v", err)}
	}
	iss, err := auth.NewIssuer(auth.IssuerOptions{Key: key, TTL: c.tokenTTL})
	if err != nil {
		return nil, &exitError{code: 2, msg: err.Error()}
	}
	return iss, nil
}

// redactDSN hides a password in a database URL for logs.
func redactDSN(dsn string) string {
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
