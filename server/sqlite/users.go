package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"scalelab/server"
)

// CreateUser inserts u. It fills u.ID (a new UUIDv7), u.CreatedAt,
// u.UpdatedAt and u.Version when they are zero, and answers ECONFLICT (Field
// "email" or "username") when either is taken, compared case-insensitively.
func (db *DB) CreateUser(ctx context.Context, u *server.User) error {
	defer db.metrics.Since("create_user", time.Now())
	if err := server.PrepareNewUser(u); err != nil {
		return err
	}
	_, err := db.stmts.createUser.ExecContext(ctx, u.ID, u.Email, server.FoldKey(u.Email), u.Username,
		server.FoldKey(u.Username), u.PasswordHash, u.Profile.Name, u.Profile.Avatar,
		micros(u.CreatedAt), micros(u.UpdatedAt), u.Version)
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, mapError(err))
	}
	return nil
}

// User returns the user with the given id, or ENOTFOUND.
func (db *DB) User(ctx context.Context, id string) (*server.User, error) {
	defer db.metrics.Since("user", time.Now())
	if !server.ValidID(id) {
		return nil, errUserNotFound()
	}
	u, err := scanUser(db.stmts.user.QueryRowContext(ctx, id))
	if err != nil {
		return nil, fmt.Errorf("load user %s: %w", id, err)
	}
	return u, nil
}

// UserByLogin returns the user whose email or username is login, compared
// case-insensitively, or ENOTFOUND.
func (db *DB) UserByLogin(ctx context.Context, login string) (*server.User, error) {
	defer db.metrics.Since("user_by_login", time.Now())
	u, err := scanUser(db.stmts.userByLogin.QueryRowContext(ctx, server.FoldKey(login)))
	if err != nil {
		return nil, fmt.Errorf("load user by login: %w", err)
	}
	return u, nil
}

// UpdateUser applies the non-nil fields of upd in one statement, advances
// UpdatedAt (server.NextUpdate) and Version, and returns the new user.
func (db *DB) UpdateUser(ctx context.Context, id string, upd server.UserUpdate) (*server.User, error) {
	defer db.metrics.Since("update_user", time.Now())
	if !server.ValidID(id) {
		return nil, errUserNotFound()
	}
	u, err := scanUser(db.stmts.updateUser.QueryRowContext(ctx,
		nullable(upd.Email), foldNullable(upd.Email), nullable(upd.Username), foldNullable(upd.Username),
		nullable(upd.PasswordHash), nullable(upd.Name), nullable(upd.Avatar), micros(server.Now()), id, upd.IfVersion))
	if server.ErrorCode(err) == server.ENOTFOUND && upd.IfVersion != nil {
		var exists bool
		if qerr := db.writer.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = ?)`, id).Scan(&exists); qerr != nil {
			return nil, fmt.Errorf("update user %s: %w", id, qerr)
		}
		if exists {
			err = server.Errorf(server.EPRECONDITION, "the user changed since the version If-Match names")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("update user %s: %w", id, err)
	}
	return u, nil
}

// DeleteUser deletes the user and, by cascade, its records.
func (db *DB) DeleteUser(ctx context.Context, id string) error {
	defer db.metrics.Since("delete_user", time.Now())
	if !server.ValidID(id) {
		return errUserNotFound()
	}
	res, err := db.stmts.deleteUser.ExecContext(ctx, id)
	if err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	} else if n == 0 {
		return errUserNotFound()
	}
	return nil
}

func errUserNotFound() error { return server.Errorf(server.ENOTFOUND, "user not found") }

func scanUser(row *sql.Row) (*server.User, error) {
	var u server.User
	var created, updated int64
	err := row.Scan(&u.ID, &u.Email, &u.Username, &u.PasswordHash, &u.Profile.Name, &u.Profile.Avatar,
		&created, &updated, &u.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errUserNotFound()
	}
	if err != nil {
		return nil, mapError(err)
	}
	u.CreatedAt, u.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &u, nil
}

// nullable passes an absent field as NULL.
func nullable(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func foldNullable(p *string) any {
	if p == nil {
		return nil
	}
	return server.FoldKey(*p)
}
