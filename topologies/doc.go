// Package topologies runs each phase's topology as real local processes
// (no Docker): PostgreSQL 15 with streaming replicas, pgbouncer, Redis and
// a Redis Cluster, HAProxy, Varnish, Prometheus, and the scalelab server
// instances among them, on free 127.0.0.1 ports, and takes them down again
// leaving nothing behind. With Options.Runtime RuntimeDocker the same
// components run as containers of locally built images on a bridge network
// of the run's own (docker.go); Compose and Stack write the same topology
// as Compose and Swarm stack files (compose.go).
//
// A topology is described in YAML (phase-1.yaml … phase-4.yaml are
// embedded; Phase loads one, LoadFile another), loaded strictly: an unknown
// field, or an app flag that `scalelab server`'s flag set (given by the
// caller, app.FlagSet("server")) does not define, or a worker flag that
// `scalelab worker`'s does not, is an error with the file and line. Up
// brings it up:
//
//	def, _ := topologies.Phase(3, topologies.Flags{Server: serverFlags, Worker: workerFlags})
//	top, err := topologies.Up(ctx, def, topologies.Options{Binary: "bin/scalelab", Logger: log})
//	if err != nil { … }            // everything Up started is already stopped
//	defer top.Down(context.WithoutCancel(ctx))
//	… top.EntryURL, top.PrimaryURL, top.ReplicaURLs …
//
// Up starts the components in dependency order, independent ones at the
// same time, and waits for each to really serve: Postgres answering
// queries, every replica streaming (pg_stat_wal_receiver), Redis PING,
// Redis Cluster cluster_state:ok on every node with every replica linked,
// pgbouncer answering through to the primary, every app instance's
// /readyz, every HAProxy backend server passing its health check, a
// request through Varnish reaching an app, and Prometheus having scraped
// every target. Any failure, a cancelled context or a panic stops what was
// started before Up returns.
//
// Each run lives in its own folder, Options.Dir/<run-id>/ (default
// .scalelab/topologies/), with one sub-folder per component holding its
// config, data and log, and a topology.json listing every endpoint and
// PID. Down stops the components in reverse dependency order, by PID (its
// process group and descendants) or by their own stop command (pg_ctl
// stop, SHUTDOWN NOSAVE), checks that no process or port of the run is
// left, and marks topology.json stopped; a second Down does nothing.
// Open reads topology.json so that another process (`scalelab down`) can
// do the same; ListRuns finds the runs not yet stopped. Nothing is ever
// stopped by name.
//
// Inject stops, kills (SIGKILL), pauses (SIGSTOP), resumes or restarts a
// component by name: app-N, primary, replica-N, pgbouncer,
// redis, redis-master-N, redis-replica-N, haproxy, varnish, prometheus,
// postgres-exporter, redis-exporter, redis-cluster-exporter,
// varnish-exporter.
//
// A Sampler measures a run: replica lag in seconds and bytes each interval
// (p50 and max), each component's CPU time from /proc, cache hits and
// misses per tier (L1 and L2 from the apps' metrics through Prometheus, L3
// from varnishstat) and HAProxy's requests per app instance, totals and
// per interval (cache lookups, lag samples, and the write-to-visible p99 of
// each second's probes; series.go). Stop returns plain Measurements for
// result.json.
//
// StartRedis and StartRedisCluster run Redis alone, for tests of other
// packages; package topotest wraps them and whole phases for tests.
//
// When a program is missing, Up fails with one message naming the Debian
// packages and `make deps`. As root, Postgres and pgbouncer run as the
// postgres user, so a run folder's parents must be searchable by others.
package topologies
