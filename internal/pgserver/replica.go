package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
)

// replicaName is what a physical replication slot name may be.
var replicaName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// NewReplica makes a streaming replica of the running server s in opts.Dir
// with pg_basebackup -R -X stream -c fast -C -S name, as the role
// ReplicationUser with application_name=name, so the replica shows up under
// that name in the primary's pg_stat_replication and keeps a physical slot of
// that name on the primary (which holds WAL for it until the slot is dropped:
// a second replica of the same name fails). The replica gets its own port
// (opts.Port, or a free one) and socket directory, the primary's
// Options.Conf followed by opts.Conf (a hot standby needs max_connections and
// similar settings at least as high as its primary's), and is not started:
// call Start, then WaitStreaming.
//
// name must be 1-63 characters of [a-z0-9_], a valid slot name.
func (s *Server) NewReplica(ctx context.Context, name string, opts Options) (*Server, error) {
	if !replicaName.MatchString(name) {
		return nil, fmt.Errorf("pgserver: replica name %q: want 1-63 characters of [a-z0-9_]", name)
	}
	if s.PID() == 0 {
		return nil, fmt.Errorf("pgserver: replica %s of %s: primary is not running", name, s.dir)
	}
	// A hot standby refuses to start with max_connections and the like
	// lower than its primary's, so it inherits the primary's extra settings.
	opts.Conf = append(append([]string(nil), s.conf...), opts.Conf...)
	r, err := newServer(opts)
	if err != nil {
		return nil, err
	}
	if err := r.pickPort(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(r.DataDir()); err == nil {
		return nil, fmt.Errorf("pgserver: %s already exists; use Open to reuse it", r.DataDir())
	}
	start := time.Now()
	if err := r.makeDirs(ctx); err != nil {
		return nil, err
	}
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s application_name=%s", s.Port(), ReplicationUser, name)
	args := []string{"-D", r.DataDir(), "-d", conninfo, "-R", "-X", "stream", "-c", "fast", "-C", "-S", name}
	if r.noSync {
		args = append(args, "--no-sync")
	}
	if _, err := r.run(ctx, "pg_basebackup", args...); err != nil {
		return nil, fmt.Errorf("pgserver: pg_basebackup of %s into %s: %w", s.dir, r.DataDir(), err)
	}
	// The copy carries the primary's scalelab.conf; give the replica its own.
	if err := r.writeConf(); err != nil {
		return nil, err
	}
	r.log.Info("postgres replica created", "name", name, "dir", r.dir, "port", r.Port(), "primary_port", s.Port(), "took", time.Since(start).Round(time.Millisecond))
	return r, nil
}

// WaitStreaming waits until the server, a started replica, receives WAL from
// its primary (pg_stat_wal_receiver.status = 'streaming'), or ctx ends.
func (s *Server) WaitStreaming(ctx context.Context) error {
	const poll = 50 * time.Millisecond
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.WithoutCancel(ctx))
		}
	}()
	status, lastErr := "", error(nil)
	for {
		if conn == nil {
			conn, lastErr = s.Connect(ctx, "postgres")
		}
		if conn != nil {
			lastErr = conn.QueryRow(ctx, "SELECT coalesce((SELECT status FROM pg_stat_wal_receiver), 'no wal receiver')").Scan(&status)
			if lastErr == nil && status == "streaming" {
				return nil
			}
			if lastErr != nil {
				conn.Close(context.WithoutCancel(ctx))
				conn = nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pgserver: wait for %s to stream (last status %q): %w", s.dir, status, errors.Join(ctx.Err(), lastErr))
		case <-time.After(poll):
		}
	}
}
