package topologies

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"scalelab/internal/pgserver"
)

// Postgres is a PostgreSQL server of a topology, the primary or one of its
// streaming replicas, run by package pgserver (initdb, pg_ctl,
// pg_basebackup as the postgres user). pg_ctl puts the postmaster in a
// session of its own, so Pause, Kill and the CPU accounting cover its
// backends too.
type Postgres struct {
	name    string
	db      string
	replica bool
	srv     *pgserver.Server
	log     *slog.Logger
}

// Name is "primary" or "replica-N".
func (p *Postgres) Name() string { return p.name }

// PID is the postmaster's process ID, 0 when it is not running.
func (p *Postgres) PID() int { return p.srv.PID() }

// Port is the server's TCP port on 127.0.0.1.
func (p *Postgres) Port() int { return p.srv.Port() }

// URL is a connection URL for the topology's database.
func (p *Postgres) URL() string { return p.srv.URL(p.db) }

// Server is the underlying pgserver handle (Connect, DataDir, LogFile…).
func (p *Postgres) Server() *pgserver.Server { return p.srv }

// SlotName is the replica's application_name and replication slot name
// (replica-1 → replica1); "" for the primary.
func (p *Postgres) SlotName() string {
	if !p.replica {
		return ""
	}
	return slotName(p.name)
}

func slotName(component string) string { return strings.ReplaceAll(component, "-", "") }

func (p *Postgres) proc() *process {
	pid := p.srv.PID()
	if pid == 0 {
		return nil
	}
	st, err := readProcStat(pid)
	if err != nil {
		return nil
	}
	return adoptProcess(pid, st.startTicks, st.pgrp == pid)
}

// Stop shuts the server down with pg_ctl stop -m fast.
func (p *Postgres) Stop(ctx context.Context) error {
	if pr := p.proc(); pr != nil {
		_ = pr.signal(syscall.SIGCONT) // pg_ctl stop cannot reach a paused postmaster
	}
	if err := p.srv.Stop(ctx); err != nil {
		return fmt.Errorf("stop %s: %w", p.name, err)
	}
	return nil
}

// Kill sends SIGKILL to the postmaster and all its backends, as a crash
// of the machine would; the next Start runs crash recovery.
func (p *Postgres) Kill(ctx context.Context) error {
	pr := p.proc()
	if pr == nil {
		return nil
	}
	if err := pr.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	if err := pr.wait(ctx); err != nil {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	pr.killStragglers()
	return nil
}

// Pause freezes the postmaster and its backends (SIGSTOP to the group):
// a paused replica stops replaying WAL and falls behind.
func (p *Postgres) Pause() error {
	pr := p.proc()
	if pr == nil {
		return fmt.Errorf("pause %s: not running", p.name)
	}
	return pr.signal(syscall.SIGSTOP)
}

// Resume continues a paused server.
func (p *Postgres) Resume() error {
	pr := p.proc()
	if pr == nil {
		return fmt.Errorf("resume %s: not running", p.name)
	}
	return pr.signal(syscall.SIGCONT)
}

// Restart stops the server if it runs, starts it, and for a replica waits
// until it streams again.
func (p *Postgres) Restart(ctx context.Context) error {
	if err := p.Stop(ctx); err != nil {
		return err
	}
	return p.start(ctx)
}

func (p *Postgres) start(ctx context.Context) error {
	if err := p.waitReaped(ctx); err != nil {
		return err
	}
	if err := p.srv.Start(ctx); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	if p.replica {
		wctx, cancel := context.WithTimeout(ctx, defaultReadyTimeout)
		defer cancel()
		if err := p.srv.WaitStreaming(wctx); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	return nil
}

// waitReaped waits, after a Kill, until the old postmaster is really
// gone. pg_ctl detaches the postmaster, so PID 1 reaps it, here a second or
// two late; until then its zombie keeps the PID in postmaster.pid alive
// and a new postmaster refuses to start ("lock file already exists"). If
// the zombie outlives the wait, the lock file is stale and is removed.
func (p *Postgres) waitReaped(ctx context.Context) error {
	lock := filepath.Join(p.srv.DataDir(), "postmaster.pid")
	b, err := os.ReadFile(lock)
	if err != nil {
		return nil
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		st, err := readProcStat(pid)
		if err != nil {
			return nil // reaped
		}
		if st.state != 'Z' && st.state != 'X' {
			return nil // a live postmaster: let pg_ctl say so
		}
		select {
		case <-ctx.Done():
			p.log.Warn("postmaster is still a zombie; removing its stale lock file", "component", p.name, "pid", pid)
			if err := os.Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("%s: remove stale %s: %w", p.name, lock, err)
			}
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// postgresConf turns the definition's settings into postgresql.conf lines.
func postgresConf(settings map[string]string) []string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		lines = append(lines, fmt.Sprintf("%s = '%s'", k, strings.ReplaceAll(settings[k], "'", "''")))
	}
	return lines
}

// startPrimary initializes and starts the primary and creates the
// topology's database. registered is called as soon as a process may
// exist, so that a failure later still stops it.
func startPrimary(ctx context.Context, dir string, def *PostgresDef, noSync bool, log *slog.Logger, registered func(*Postgres)) (*Postgres, error) {
	srv, err := pgserver.Init(ctx, pgserver.Options{Dir: dir, Conf: postgresConf(def.Settings), NoSync: noSync, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("primary: %w", err)
	}
	p := &Postgres{name: "primary", db: def.Database, srv: srv, log: log}
	registered(p)
	if err := p.start(ctx); err != nil {
		return p, err
	}
	if err := srv.CreateDatabase(ctx, def.Database); err != nil {
		return p, fmt.Errorf("primary: %w", err)
	}
	return p, nil
}

// startReplica makes a replica of primary with pg_basebackup, starts it
// and waits until it streams (pg_stat_wal_receiver.status = streaming).
func startReplica(ctx context.Context, primary *Postgres, name, dir string, noSync bool, log *slog.Logger, registered func(*Postgres)) (*Postgres, error) {
	start := time.Now()
	srv, err := primary.srv.NewReplica(ctx, slotName(name), pgserver.Options{Dir: dir, NoSync: noSync, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &Postgres{name: name, db: primary.db, replica: true, srv: srv, log: log}
	registered(p)
	if err := p.start(ctx); err != nil {
		return p, err
	}
	log.Debug("replica streaming", "component", name, "took", time.Since(start).Round(time.Millisecond))
	return p, nil
}
