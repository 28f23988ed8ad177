package sqlite

import (
	"context"
	"fmt"
	"strings"
	"time"

	"scalelab/server"
)

const (
	// seedRowsPerInsert rows go into one multi-row INSERT (11 parameters a
	// row, well under SQLite's 32766).
	seedRowsPerInsert = 500
	// seedRowsPerTx rows are committed at once: big enough that commits
	// cost nothing, small enough that progress is reported often.
	seedRowsPerTx = 50_000
)

// Seed bulk-loads the seeded users server.SeedUser(i, passwordHash, now)
// for i in [0, users), all sharing passwordHash, through prepared multi-row
// INSERTs in large transactions, and calls progress (if not nil) with the
// number of seeded users present after every commit.
//
// Seed is idempotent and resumable: seeded users are inserted in order and
// committed in order, so those present are always users 0..k-1; Seed finds
// k (a binary search over SeedUserID) and inserts only users k..users-1.
// Seeding a database that already holds that many is a no-op. A database
// whose seeded users are not such a prefix (one was deleted, say) fails
// with ECONFLICT on the first one already present.
func (db *DB) Seed(ctx context.Context, users int, passwordHash string, progress func(done int)) error {
	if err := server.CheckSeed(users, passwordHash); err != nil {
		return err
	}
	start := time.Now()
	have, err := server.SeededPrefix(ctx, users, db.userExists)
	if err != nil {
		return err
	}
	if have > 0 {
		db.log.Info("seed: users already present", "present", have, "wanted", users)
	}
	if progress != nil {
		progress(have)
	}
	now := server.Now()
	for from := have; from < users; from += seedRowsPerTx {
		to := min(from+seedRowsPerTx, users)
		if err := db.seedRange(ctx, from, to, passwordHash, now); err != nil {
			return fmt.Errorf("seed users %d..%d: %w", from, to-1, err)
		}
		if progress != nil {
			progress(to)
		}
	}
	if users > have {
		took := time.Since(start)
		db.log.Info("seed: done", "inserted", users-have, "took", took.Round(time.Millisecond),
			"users_per_s", int(float64(users-have)/took.Seconds()))
	}
	return nil
}

// userExists reports whether a user with this id is stored.
func (db *DB) userExists(ctx context.Context, id string) (bool, error) {
	var exists bool
	err := db.stmts.userExists.QueryRowContext(ctx, id).Scan(&exists)
	return exists, err
}

// seedRange inserts seeded users [from, to) in one transaction.
func (db *DB) seedRange(ctx context.Context, from, to int, hash string, now time.Time) (err error) {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	full, err := tx.PrepareContext(ctx, seedInsert(seedRowsPerInsert))
	if err != nil {
		return err
	}
	defer full.Close()
	const cols = 11
	args := make([]any, 0, seedRowsPerInsert*cols)
	created := micros(now)
	for i := from; i < to; {
		n := min(seedRowsPerInsert, to-i)
		args = args[:0]
		for j := i; j < i+n; j++ {
			u := server.SeedUser(j, hash, now)
			args = append(args, u.ID, u.Email, server.FoldKey(u.Email), u.Username, server.FoldKey(u.Username),
				u.PasswordHash, u.Profile.Name, u.Profile.Avatar, created, created, u.Version)
		}
		st := full
		if n < seedRowsPerInsert {
			if st, err = tx.PrepareContext(ctx, seedInsert(n)); err != nil {
				return err
			}
		}
		_, err = st.ExecContext(ctx, args...)
		if st != full {
			st.Close()
		}
		if err != nil {
			return mapError(err)
		}
		i += n
	}
	return tx.Commit()
}

// seedInsert returns an INSERT of n rows.
func seedInsert(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO users (id, email, email_key, username, username_key, password_hash, name, avatar, created_at, updated_at, version) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?,?,?,?,?,?,?,?)")
	}
	return b.String()
}
