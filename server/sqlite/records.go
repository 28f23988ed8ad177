package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"scalelab/server"
)

// MaxPageLimit is the largest page Records returns.
const MaxPageLimit = 100

// CreateRecord inserts r for its owner r.UserID. It fills r.ID (a new
// UUIDv7), r.CreatedAt and r.UpdatedAt when they are zero. r.Data is stored
// byte for byte, so it reads back exactly as given (callers compact it); it
// must be valid JSON (EINVALID). An unknown owner is ENOTFOUND.
func (db *DB) CreateRecord(ctx context.Context, r *server.Record) error {
	defer db.metrics.Since("create_record", time.Now())
	if !server.ValidID(r.UserID) {
		return errUserNotFound()
	}
	if err := server.PrepareNewRecord(r); err != nil {
		return err
	}
	_, err := db.stmts.createRecord.ExecContext(ctx, r.ID, r.UserID, string(r.Data), micros(r.CreatedAt), micros(r.UpdatedAt))
	if err != nil {
		return fmt.Errorf("create record for user %s: %w", r.UserID, mapError(err))
	}
	return nil
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

// Records returns up to limit (1..MaxPageLimit) records of userID, newest
// first, after the cursor of the previous page ("" for the first page). The
// cursor is the last id of the previous page, so a page never repeats or
// skips a record that existed when the first page was read, whatever is
// inserted meanwhile. A malformed cursor is EBADREQUEST; an unknown user is
// ENOTFOUND.
func (db *DB) Records(ctx context.Context, userID string, limit int, cursor string) (*server.RecordPage, error) {
	defer db.metrics.Since("records", time.Now())
	if limit < 1 || limit > MaxPageLimit {
		return nil, server.Errorf(server.EBADREQUEST, "limit must be 1 to %d", MaxPageLimit)
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
	page := &server.RecordPage{Items: make([]server.Record, 0, limit)}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("list records of user %s: %w", userID, err)
		}
		page.Items = append(page.Items, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list records of user %s: %w", userID, err)
	}
	if len(page.Items) > limit {
		page.Items = page.Items[:limit]
		page.NextCursor = encodeCursor(page.Items[limit-1].ID)
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

// UpdateRecord replaces the record's data and advances its UpdatedAt.
func (db *DB) UpdateRecord(ctx context.Context, userID, id string, data json.RawMessage) (*server.Record, error) {
	defer db.metrics.Since("update_record", time.Now())
	if !server.ValidID(userID) || !server.ValidID(id) {
		return nil, errRecordNotFound()
	}
	if !json.Valid(data) {
		return nil, server.Errorf(server.EINVALID, "data must be a JSON value")
	}
	r, err := scanRecord(db.stmts.updateRecord.QueryRowContext(ctx, string(data), micros(server.Now()), id, userID))
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
	res, err := db.stmts.deleteRecord.ExecContext(ctx, id, userID)
	if err != nil {
		return fmt.Errorf("delete record %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("delete record %s: %w", id, err)
	} else if n == 0 {
		return errRecordNotFound()
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
