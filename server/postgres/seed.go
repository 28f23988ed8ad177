package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"scalelab/server"
)

// seedRowsPerCopy rows go into one COPY, which commits on its own.
const seedRowsPerCopy = 100_000

// Seed bulk-loads the seeded users server.SeedUser(i, passwordHash, now)
// for i in [0, users), all sharing passwordHash, with COPY in batches, and
// calls progress (if not nil) with the number of seeded users present after
// every batch.
//
// Seed is idempotent and resumable: batches are inserted and committed in
// order, so the seeded users present are always users 0..k-1; Seed finds k
// (a binary search over SeedUserID) and inserts only users k..users-1.
// Seeding a database that already holds that many is a no-op. A database
// whose seeded users are not such a prefix (one was deleted, say) fails with
// ECONFLICT.
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
	cols := []string{"id", "email", "email_key", "username", "username_key", "password_hash", "name", "avatar", "created_at", "updated_at", "version"}
	for from := have; from < users; from += seedRowsPerCopy {
		to := min(from+seedRowsPerCopy, users)
		i := from
		rows := pgx.CopyFromFunc(func() ([]any, error) {
			if i == to {
				return nil, nil
			}
			u := server.SeedUser(i, passwordHash, now)
			i++
			id, err := uuid.Parse(u.ID)
			if err != nil {
				return nil, err
			}
			return []any{id, u.Email, server.FoldKey(u.Email), u.Username, server.FoldKey(u.Username),
				u.PasswordHash, u.Profile.Name, u.Profile.Avatar, u.CreatedAt, u.UpdatedAt, u.Version}, nil
		})
		if _, err := db.primary.CopyFrom(ctx, pgx.Identifier{"users"}, cols, rows); err != nil {
			return fmt.Errorf("seed users %d..%d: %w", from, to-1, mapError(err))
		}
		if progress != nil {
			progress(to)
		}
	}
	db.recordPosition(ctx)
	if users > have {
		took := time.Since(start)
		db.log.Info("seed: done", "inserted", users-have, "took", took.Round(time.Millisecond),
			"users_per_s", int(float64(users-have)/took.Seconds()))
	}
	return nil
}

// userExists reports whether a user with this id is on the primary.
func (db *DB) userExists(ctx context.Context, id string) (bool, error) {
	var exists bool
	err := db.primary.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1::uuid)`, id).Scan(&exists)
	return exists, err
}
