package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"scalelab/server"
)

// CreateRecord inserts r for its owner r.UserID. It fills r.ID (a new
// UUIDv7), r.CreatedAt and r.UpdatedAt when they are zero. r.Data is stored
// byte for byte, so it reads back exactly as given (callers compact it); it
// must be valid JSON (EINVALID). An unknown owner is ENOTFOUND; a record
// that would pass the owner's quota is EQUOTA. The owner's usage counters
// change in the same transaction.
func (db *DB) CreateRecord(ctx context.Context, r *server.Record) error {
	defer db.metrics.Since("create_record", time.Now())
	if !server.ValidID(r.UserID) {
		return errUserNotFound()
	}
	if err := server.PrepareNewRecord(r); err != nil {
		return err
	}
	err := db.recordTx(ctx, r.UserID, func(tx *sql.Tx, u server.Usage) (server.Usage, error) {
		n := int64(len(r.Data))
		if err := db.quota.Check(u, 1, n); err != nil {
			return u, err
		}
		if _, err := tx.StmtContext(ctx, db.stmts.createRecord).ExecContext(ctx, r.ID, r.UserID, string(r.Data), micros(r.CreatedAt), micros(r.UpdatedAt)); err != nil {
			return u, mapError(err)
		}
		return server.Usage{Records: u.Records + 1, Bytes: u.Bytes + n}, nil
	})
	if err != nil {
		return fmt.Errorf("create record for user %s: %w", r.UserID, err)
	}
	return nil
}

// CreateRecords inserts rs for owner userID in one transaction with one
// multi-row INSERT, after checking the owner's quota for the whole batch.
func (db *DB) CreateRecords(ctx context.Context, userID string, rs []*server.Record) error {
	defer db.metrics.Since("create_records", time.Now())
	if !server.ValidID(userID) {
		return errUserNotFound()
	}
	bytes, err := server.PrepareNewRecords(userID, rs)
	if err != nil {
		return err
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO records (` + recordCols + `) VALUES `)
	args := make([]any, 0, 5*len(rs))
	for i, r := range rs {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?)")
		args = append(args, r.ID, r.UserID, string(r.Data), micros(r.CreatedAt), micros(r.UpdatedAt))
	}
	err = db.recordTx(ctx, userID, func(tx *sql.Tx, u server.Usage) (server.Usage, error) {
		if err := db.quota.Check(u, int64(len(rs)), bytes); err != nil {
			return u, err
		}
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return u, mapError(err)
		}
		return server.Usage{Records: u.Records + int64(len(rs)), Bytes: u.Bytes + bytes}, nil
	})
	if err != nil {
		return fmt.Errorf("create %d records for user %s: %w", len(rs), userID, err)
	}
	return nil
}

// recordTx runs fn, a record write of user userID, in a transaction with
// the user's usage counters: fn gets the usage before and returns it
// after, and recordTx stores that on the user row before committing. An
// unknown user is ENOTFOUND. The store has one writer connection, so
// transactions do not interleave.
func (db *DB) recordTx(ctx context.Context, userID string, fn func(tx *sql.Tx, u server.Usage) (server.Usage, error)) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var before server.Usage
	err = tx.QueryRowContext(ctx, `SELECT records_count, records_bytes FROM users WHERE id = ?`, userID).Scan(&before.Records, &before.Bytes)
	if errors.Is(err, sql.ErrNoRows) {
		return errUserNotFound()
	}
	if err != nil {
		return err
	}
	after, err := fn(tx, before)
	if err != nil {
		return err
	}
	if after != before {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET records_count = ?, records_bytes = ? WHERE id = ?`, after.Records, after.Bytes, userID); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Usage returns what user userID stores, from the counters on its row.
func (db *DB) Usage(ctx context.Context, userID string) (server.Usage, error) {
	var u server.Usage
	if !server.ValidID(userID) {
		return u, errUserNotFound()
	}
	err := db.reader.QueryRowContext(ctx, `SELECT records_count, records_bytes FROM users WHERE id = ?`, userID).Scan(&u.Records, &u.Bytes)
	if errors.Is(err, sql.ErrNoRows) {
		return u, errUserNotFound()
	}
	if err != nil {
		return u, fmt.Errorf("load usage of user %s: %w", userID, err)
	}
	return u, nil
}

// Record returns the record id of user userID, or ENOTFOUND (also when the
// record belongs to another user).
func (db *DB) Record(ctx context.Context, userID, id string) (*server.Record, error) {
	defer db.metrics.Since("record", time.Now())
	if !server.ValidID(userID) || !server.ValidID(id) {
		return nil, errRecordNotFound()
	}
	r, err := scanRecord(db.stmts.record.QueryRowContext(ctx, id, userID))
	if err != nil {
		return nil, fmt.Errorf("load record %s: %w", id, err)
	}
	return r, nil
}

// Records returns up to limit (1..server.MaxPageLimit) records of userID, newest
// first, after the cursor of the previous page ("" for the first page),
// stopping early at server.MaxPageBytes of data (at least one record). The
// cursor is the last id of the previous page, so a page never repeats or
// skips a record that existed when the first page was read, whatever is
// inserted meanwhile. A malformed cursor is EBADREQUEST; an unknown user is
// ENOTFOUND.
func (db *DB) Records(ctx context.Context, userID string, limit int, cursor string) (*server.RecordPage, error) {
	defer db.metrics.Since("records", time.Now())
	if limit < 1 || limit > server.MaxPageLimit {
		return nil, server.Errorf(server.EBADREQUEST, "limit must be 1 to %d", server.MaxPageLimit)
	}
	after, err := decodeCursor(cursor)
	if err != nil {
		return nil, err
	}
	if !server.ValidID(userID) {
		return nil, errUserNotFound()
	}
	var rows *sql.Rows
	if after == "" {
		rows, err = db.stmts.recordsFirst.QueryContext(ctx, userID, limit+1)
	} else {
		rows, err = db.stmts.recordsAfter.QueryContext(ctx, userID, after, limit+1)
	}
	if err != nil {
		return nil, fmt.Errorf("list records of user %s: %w", userID, err)
	}
	defer rows.Close()
	page := &server.RecordPage{Items: make([]server.Record, 0, min(limit, 16))}
	more, size := false, 0
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list records of user %s: %w", userID, err)
		}
		// Past the limit, or past the byte budget (after the first
		// record): the page ends before r, and the cursor continues there.
		if len(page.Items) == limit || len(page.Items) > 0 && size+len(r.Data) > server.MaxPageBytes {
			more = true
			break
		}
		size += len(r.Data)
		page.Items = append(page.Items, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list records of user %s: %w", userID, err)
	}
	if more {
		page.NextCursor = encodeCursor(page.Items[len(page.Items)-1].ID)
	}
	if len(page.Items) == 0 {
		// Tell "no records" from "no such user"; only empty pages pay.
		exists, err := db.userExists(ctx, userID)
		if err != nil {
			return nil, fmt.Errorf("list records of user %s: %w", userID, err)
		}
		if !exists {
			return nil, errUserNotFound()
		}
	}
	return page, nil
}

// UpdateRecord replaces the record's data and advances its UpdatedAt. A
// record that would grow past the owner's byte quota is EQUOTA.
func (db *DB) UpdateRecord(ctx context.Context, userID, id string, data json.RawMessage) (*server.Record, error) {
	defer db.metrics.Since("update_record", time.Now())
	if !server.ValidID(userID) || !server.ValidID(id) {
		return nil, errRecordNotFound()
	}
	if !json.Valid(data) {
		return nil, server.Errorf(server.EINVALID, "data must be a JSON value")
	}
	var r *server.Record
	err := db.recordTx(ctx, userID, func(tx *sql.Tx, u server.Usage) (server.Usage, error) {
		var old int64
		err := tx.QueryRowContext(ctx, `SELECT length(CAST(data AS BLOB)) FROM records WHERE id = ? AND user_id = ?`, id, userID).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return u, errRecordNotFound()
		}
		if err != nil {
			return u, err
		}
		delta := int64(len(data)) - old
		if err := db.quota.Check(u, 0, delta); err != nil {
			return u, err
		}
		r, err = scanRecord(tx.StmtContext(ctx, db.stmts.updateRecord).QueryRowContext(ctx, string(data), micros(server.Now()), id, userID))
		if err != nil {
			return u, err
		}
		return server.Usage{Records: u.Records, Bytes: u.Bytes + delta}, nil
	})
	if server.ErrorCode(err) == server.ENOTFOUND {
		return nil, errRecordNotFound() // an unknown user has no such record
	}
	if err != nil {
		return nil, fmt.Errorf("update record %s: %w", id, err)
	}
	return r, nil
}

// DeleteRecord deletes the record id of user userID.
func (db *DB) DeleteRecord(ctx context.Context, userID, id string) error {
	defer db.metrics.Since("delete_record", time.Now())
	if !server.ValidID(userID) || !server.ValidID(id) {
		return errRecordNotFound()
	}
	err := db.recordTx(ctx, userID, func(tx *sql.Tx, u server.Usage) (server.Usage, error) {
		var old int64
		err := tx.QueryRowContext(ctx, `DELETE FROM records WHERE id = ? AND user_id = ? RETURNING length(CAST(data AS BLOB))`, id, userID).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return u, errRecordNotFound()
		}
		if err != nil {
			return u, err
		}
		return server.Usage{Records: u.Records - 1, Bytes: u.Bytes - old}, nil
	})
	if server.ErrorCode(err) == server.ENOTFOUND {
		return errRecordNotFound()
	}
	if err != nil {
		return fmt.Errorf("delete record %s: %w", id, err)
	}
	return nil
}

func errRecordNotFound() error { return server.Errorf(server.ENOTFOUND, "record not found") }

func scanRecord(row interface{ Scan(...any) error }) (*server.Record, error) {
	var r server.Record
	var data string
	var created, updated int64
	err := row.Scan(&r.ID, &r.UserID, &data, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errRecordNotFound()
	}
	if err != nil {
		return nil, err
	}
	r.Data = json.RawMessage(data)
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &r, nil
}

// encodeCursor makes the opaque cursor: the 16 bytes of the last id,
// base64url without padding (22 characters).
func encodeCursor(id string) string {
	u, err := uuid.Parse(id)
	if err != nil {
		// Stored ids are always valid. Were one not, this cursor fails to
		// decode (EBADREQUEST) instead of paging wrongly.
		return base64.RawURLEncoding.EncodeToString([]byte(id))
	}
	return base64.RawURLEncoding.EncodeToString(u[:])
}

// decodeCursor returns the id a cursor names, "" for no cursor.
func decodeCursor(cursor string) (string, error) {
	if cursor == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) != 16 {
		return "", server.Errorf(server.EBADREQUEST, "invalid cursor")
	}
	return uuid.UUID(b).String(), nil
}
