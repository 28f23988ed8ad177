package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"scalelab/server"
)

// seedRowsPerCopy users go into one COPY (a batch).
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
	for from := have; from < users; from += seedRowsPerCopy {
		to := min(from+seedRowsPerCopy, users)
		if err := db.seedBatch(ctx, from, to, passwordHash, now); err != nil {
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

var seedCols = []string{"id", "email", "email_key", "username", "username_key", "password_hash", "name", "avatar", "created_at", "updated_at", "version"}

// seedBatch inserts the seeded users from..to-1 with one COPY, which
// commits on its own; in the partitioned layout, with their rows of the
// lookup tables, one COPY each, in one transaction.
func (db *DB) seedBatch(ctx context.Context, from, to int, passwordHash string, now time.Time) error {
	logins := db.partitions > 0
	var ids []uuid.UUID
	var emails, usernames []string
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
		email, username := server.FoldKey(u.Email), server.FoldKey(u.Username)
		if logins {
			ids, emails, usernames = append(ids, id), append(emails, email), append(usernames, username)
		}
		return []any{id, u.Email, email, u.Username, username,
			u.PasswordHash, u.Profile.Name, u.Profile.Avatar, u.CreatedAt, u.UpdatedAt, u.Version}, nil
	})
	if !logins {
		_, err := db.primary.CopyFrom(ctx, pgx.Identifier{"users"}, seedCols, rows)
		return err
	}
	return pgx.BeginFunc(ctx, db.primary, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, seedCols, rows); err != nil {
			return err
		}
		for _, l := range []struct {
			table, col string
			keys       []string
		}{{"user_emails", "email_key", emails}, {"user_usernames", "username_key", usernames}} {
			k := 0
			_, err := tx.CopyFrom(ctx, pgx.Identifier{l.table}, []string{l.col, "user_id"}, pgx.CopyFromFunc(func() ([]any, error) {
				if k == len(ids) {
					return nil, nil
				}
				k++
				return []any{l.keys[k-1], ids[k-1]}, nil
			}))
			if err != nil {
				return fmt.Errorf("%s: %w", l.table, err)
			}
		}
		return nil
	})
}

// userExists reports whether a user with this id is on the primary.
func (db *DB) userExists(ctx context.Context, id string) (bool, error) {
	var exists bool
	err := db.primary.QueryRow(ctx, sqlUserExists, id).Scan(&exists)
	return exists, err
}
