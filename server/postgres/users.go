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

// The statements on users. Those by id name the partition key, so in the
// partitioned layout they read one partition (TestPartitionPruning).
const (
	sqlInsertUser = `INSERT INTO users (` + userCols + `, email_key, username_key)
		VALUES ($1::uuid, $2, $3, $4, $5, $6, $7::timestamptz, $8::timestamptz, $9, $10, $11)`
	// sqlInsertUserLogins is sqlInsertUser for the partitioned layout: the
	// user and the rows of the lookup tables that keep email and username
	// unique, in one statement. Whichever of concurrent sign-ups with one
	// email inserts user_emails' row first wins; the others wait for it to
	// commit, then fail on user_emails_pkey.
	sqlInsertUserLogins = `WITH u AS (` + sqlInsertUser + ` RETURNING id, email_key, username_key),
		e AS (INSERT INTO user_emails (email_key, user_id) SELECT email_key, id FROM u)
		INSERT INTO user_usernames (username_key, user_id) SELECT username_key, id FROM u`
	sqlUser        = `SELECT ` + userCols + ` FROM users WHERE id = $1::uuid`
	sqlUserByLogin = `SELECT ` + userCols + ` FROM users WHERE email_key = $1 OR username_key = $1`
	// sqlUserByLoginPartitioned finds the id in the lookup tables, then
	// reads the one partition that holds it (pruned when the subquery's
	// value is known, at run time).
	sqlUserByLoginPartitioned = `SELECT ` + userCols + ` FROM users WHERE id = (
		SELECT user_id FROM user_emails WHERE email_key = $1
		UNION ALL SELECT user_id FROM user_usernames WHERE username_key = $1 LIMIT 1)`
	sqlUpdateUser = `UPDATE users SET
			email = coalesce($1, email), email_key = coalesce($2, email_key),
			username = coalesce($3, username), username_key = coalesce($4, username_key),
			password_hash = coalesce($5, password_hash), name = coalesce($6, name), avatar = coalesce($7, avatar),
			updated_at = greatest($8::timestamptz, updated_at + interval '1 microsecond'), version = version + 1
			WHERE id = $9::uuid AND ($10::bigint IS NULL OR version = $10) RETURNING ` + userCols
	sqlLockUserLogins = `SELECT email_key, username_key FROM users WHERE id = $1::uuid FOR UPDATE`
	sqlMoveEmail      = `UPDATE user_emails SET email_key = $1 WHERE email_key = $2 AND user_id = $3::uuid`
	sqlMoveUsername   = `UPDATE user_usernames SET username_key = $1 WHERE username_key = $2 AND user_id = $3::uuid`
	// sqlDeleteUser deletes the user's records and lookup rows too, by
	// their foreign keys' cascades.
	sqlDeleteUser = `DELETE FROM users WHERE id = $1::uuid`
	sqlUserExists = `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1::uuid)`
)

// CreateUser inserts u. It fills u.ID (a new UUIDv7), u.CreatedAt,
// u.UpdatedAt and u.Version when they are zero, and answers ECONFLICT (Field
// "email" or "username") when either is taken, compared case-insensitively;
// of concurrent sign-ups with one email exactly one wins.
func (db *DB) CreateUser(ctx context.Context, u *server.User) error {
	defer db.wrote("create_user", time.Now())
	if err := server.PrepareNewUser(u); err != nil {
		return err
	}
	q := sqlInsertUser
	if db.partitions > 0 {
		q = sqlInsertUserLogins
	}
	_, err := db.primary.writeExec(ctx, q,
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
		return scanUser(q.QueryRow(ctx, sqlUser, id))
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
	q := sqlUserByLogin
	if db.partitions > 0 {
		q = sqlUserByLoginPartitioned
	}
	u, err := readHedged(ctx, db, "user_by_login", func(ctx context.Context, qr querier) (*server.User, error) {
		return scanUser(qr.QueryRow(ctx, q, key))
	})
	if err != nil {
		return nil, fmt.Errorf("load user by login: %w", err)
	}
	return u, nil
}

// UpdateUser applies the non-nil fields of upd in one statement (so one
// transaction), advances UpdatedAt (server.NextUpdate, computed in SQL from
// the row's current value) and Version, and returns the new user. The
// unique constraints re-check email and username. In the partitioned
// layout a new email or username also moves the user's row in the lookup
// table, in the same transaction.
func (db *DB) UpdateUser(ctx context.Context, id string, upd server.UserUpdate) (*server.User, error) {
	defer db.wrote("update_user", time.Now())
	if !server.ValidID(id) {
		return nil, errUserNotFound()
	}
	var u *server.User
	var err error
	if db.partitions > 0 && (upd.Email != nil || upd.Username != nil) {
		err = pgx.BeginFunc(ctx, db.primary.writes(), func(tx pgx.Tx) error {
			if err := moveLogins(ctx, tx, id, upd); err != nil {
				return err
			}
			u, err = scanUser(tx.QueryRow(ctx, sqlUpdateUser, updateArgs(id, upd)...))
			return err
		})
	} else {
		err = db.primary.writeRow(ctx, func(row pgx.Row) (err error) {
			u, err = scanUser(row)
			return err
		}, sqlUpdateUser, updateArgs(id, upd)...)
	}
	if server.ErrorCode(err) == server.ENOTFOUND && upd.IfVersion != nil {
		var exists bool
		if qerr := db.primary.QueryRow(ctx, sqlUserExists, id).Scan(&exists); qerr != nil {
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

// updateArgs are sqlUpdateUser's arguments.
func updateArgs(id string, upd server.UserUpdate) []any {
	return []any{upd.Email, fold(upd.Email), upd.Username, fold(upd.Username), upd.PasswordHash, upd.Name, upd.Avatar,
		server.Now(), id, upd.IfVersion}
}

// moveLogins changes the keys of user id's rows in the lookup tables to
// upd's email and username, where those are new; the lookup tables'
// primary keys answer a key that is taken (ECONFLICT). The user's row is
// locked first, so concurrent updates of one user move their keys one
// after the other.
func moveLogins(ctx context.Context, tx pgx.Tx, id string, upd server.UserUpdate) error {
	var email, username string
	err := tx.QueryRow(ctx, sqlLockUserLogins, id).Scan(&email, &username)
	if errors.Is(err, pgx.ErrNoRows) {
		return errUserNotFound()
	}
	if err != nil {
		return err
	}
	for _, m := range []struct {
		sql      string
		new, old *string
	}{{sqlMoveEmail, fold(upd.Email), &email}, {sqlMoveUsername, fold(upd.Username), &username}} {
		if m.new == nil || *m.new == *m.old {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql, *m.new, *m.old, id); err != nil {
			return mapError(err)
		}
	}
	return nil
}

// DeleteUser deletes the user and, by cascade, its records (and, in the
// partitioned layout, its rows in the lookup tables).
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	defer db.wrote("delete_user", time.Now())
	if !server.ValidID(id) {
		return errUserNotFound()
	}
	tag, err := db.primary.writeExec(ctx, sqlDeleteUser, id)
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
