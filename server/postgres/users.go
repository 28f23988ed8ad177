package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"scalelab/server"
)

const userCols = `id, email, username, password_hash, name, avatar, created_at, updated_at, version`

// CreateUser inserts u. It fills u.ID (a new UUIDv7), u.CreatedAt,
// u.UpdatedAt and u.Version when they are zero, and answers ECONFLICT (Field
// "email" or "username") when either is taken, compared case-insensitively;
// of concurrent sign-ups with one email exactly one wins.
func (db *DB) CreateUser(ctx context.Context, u *server.User) error {
	defer db.wrote("create_user", time.Now())
	if err := server.PrepareNewUser(u); err != nil {
		return err
	}
	_, err := db.primary.writeExec(ctx, `INSERT INTO users (`+userCols+`, email_key, username_key)
		VALUES ($1::uuid, $2, $3, $4, $5, $6, $7::timestamptz, $8::timestamptz, $9, $10, $11)`,
		u.ID, u.Email, u.Username, u.PasswordHash, u.Profile.Name, u.Profile.Avatar, u.CreatedAt, u.UpdatedAt, u.Version,
		server.FoldKey(u.Email), server.FoldKey(u.Username))
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, mapError(err))
	}
	db.recordPosition(ctx)
	return nil
}

// User returns the user with the given id, or ENOTFOUND.
func (db *DB) User(ctx context.Context, id string) (*server.User, error) {
	if !server.ValidID(id) {
		return nil, errUserNotFound()
	}
	u, err := readHedged(ctx, db, "user", func(ctx context.Context, q querier) (*server.User, error) {
		return scanUser(q.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1::uuid`, id))
	})
	if err != nil {
		return nil, fmt.Errorf("load user %s: %w", id, err)
	}
	return u, nil
}

// UserByLogin returns the user whose email or username is login, compared
// case-insensitively, or ENOTFOUND.
func (db *DB) UserByLogin(ctx context.Context, login string) (*server.User, error) {
	key := server.FoldKey(login)
	u, err := readHedged(ctx, db, "user_by_login", func(ctx context.Context, q querier) (*server.User, error) {
		return scanUser(q.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE email_key = $1 OR username_key = $1`, key))
	})
	if err != nil {
		return nil, fmt.Errorf("load user by login: %w", err)
	}
	return u, nil
}

// UpdateUser applies the non-nil fields of upd in one statement (so one
// transaction), advances UpdatedAt (server.NextUpdate, computed in SQL from
// the row's current value) and Version, and returns the new user. The
// unique constraints re-check email and username.
func (db *DB) UpdateUser(ctx context.Context, id string, upd server.UserUpdate) (*server.User, error) {
	defer db.wrote("update_user", time.Now())
	if !server.ValidID(id) {
		return nil, errUserNotFound()
	}
	var u *server.User
	err := db.primary.writeRow(ctx, func(row pgx.Row) (err error) {
		u, err = scanUser(row)
		return err
	}, `UPDATE users SET
			email = coalesce($1, email), email_key = coalesce($2, email_key),
			username = coalesce($3, username), username_key = coalesce($4, username_key),
			password_hash = coalesce($5, password_hash), name = coalesce($6, name), avatar = coalesce($7, avatar),
			updated_at = greatest($8::timestamptz, updated_at + interval '1 microsecond'), version = version + 1
			WHERE id = $9::uuid AND ($10::bigint IS NULL OR version = $10) RETURNING `+userCols,
		upd.Email, fold(upd.Email), upd.Username, fold(upd.Username), upd.PasswordHash, upd.Name, upd.Avatar,
		server.Now(), id, upd.IfVersion)
	if server.ErrorCode(err) == server.ENOTFOUND && upd.IfVersion != nil {
		var exists bool
		if qerr := db.primary.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1::uuid)`, id).Scan(&exists); qerr != nil {
			return nil, fmt.Errorf("update user %s: %w", id, qerr)
		}
		if exists {
			err = server.Errorf(server.EPRECONDITION, "the user changed since the version If-Match names")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("update user %s: %w", id, err)
	}
	db.recordPosition(ctx)
	return u, nil
}

// DeleteUser deletes the user and, by cascade, its records.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	defer db.wrote("delete_user", time.Now())
	if !server.ValidID(id) {
		return errUserNotFound()
	}
	tag, err := db.primary.writeExec(ctx, `DELETE FROM users WHERE id = $1::uuid`, id)
	if err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return errUserNotFound()
	}
	db.recordPosition(ctx)
	return nil
}

// wrote times a write (on the primary) and counts it: defer db.wrote(op, time.Now()).
func (db *DB) wrote(op string, start time.Time) {
	db.primaryQueries.Inc()
	db.metrics.Since(op, start)
}

func errUserNotFound() error { return server.Errorf(server.ENOTFOUND, "user not found") }

func scanUser(row pgx.Row) (*server.User, error) {
	var u server.User
	err := row.Scan(&u.ID, &u.Email, &u.Username, &u.PasswordHash, &u.Profile.Name, &u.Profile.Avatar,
		&u.CreatedAt, &u.UpdatedAt, &u.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errUserNotFound()
	}
	if err != nil {
		return nil, mapError(err)
	}
	u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
	return &u, nil
}

// fold returns the case-insensitive key of an optional field.
func fold(p *string) *string {
	if p == nil {
		return nil
	}
	k := server.FoldKey(*p)
	return &k
}
