package postgres

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"scalelab/server"
)

const recordCols = `id, user_id, data, created_at, updated_at`

// The statements on records and usage counters that TestPartitionPruning
// checks: each names the partition key (records.user_id, users.id), so in
// the partitioned layout it reads one partition.
const (
	sqlLockUsage    = `SELECT records_count, records_bytes FROM users WHERE id = $1::uuid FOR UPDATE`
	sqlSetUsage     = `UPDATE users SET records_count = $1, records_bytes = $2 WHERE id = $3::uuid`
	sqlUsage        = `SELECT records_count, records_bytes FROM users WHERE id = $1::uuid`
	sqlRecord       = `SELECT ` + recordCols + ` FROM records WHERE id = $1::uuid AND user_id = $2::uuid`
	sqlRecordSize   = `SELECT octet_length(data::text) FROM records WHERE id = $1::uuid AND user_id = $2::uuid FOR UPDATE`
	sqlUpdateRecord = `UPDATE records
		SET data = $1::json, updated_at = greatest($2::timestamptz, updated_at + interval '1 microsecond')
		WHERE id = $3::uuid AND user_id = $4::uuid RETURNING ` + recordCols
	sqlDeleteRecord = `DELETE FROM records WHERE id = $1::uuid AND user_id = $2::uuid RETURNING octet_length(data::text)`
	// sqlRecordsFirst and sqlRecordsAfter take the columns to read.
	sqlRecordsFirst = `SELECT %s FROM records WHERE user_id = $1::uuid ORDER BY id DESC LIMIT $2`
	sqlRecordsAfter = `SELECT %s FROM records WHERE user_id = $1::uuid AND id < $2::uuid ORDER BY id DESC LIMIT $3`
)

// CreateRecord inserts r for its owner r.UserID. It fills r.ID (a new
// UUIDv7), r.CreatedAt and r.UpdatedAt when they are zero. r.Data is stored
// as json (not jsonb), byte for byte, so it reads back exactly as given
// (callers compact it); it must be valid JSON (EINVALID). An unknown owner is
// ENOTFOUND; a record that would pass the owner's quota is EQUOTA. The
// owner's usage counters change in the same transaction.
func (db *DB) CreateRecord(ctx context.Context, r *server.Record) error {
	defer db.wrote("create_record", time.Now())
	if !server.ValidID(r.UserID) {
		return errUserNotFound()
	}
	if err := server.PrepareNewRecord(r); err != nil {
		return err
	}
	err := db.recordTx(ctx, r.UserID, func(tx pgx.Tx, u server.Usage) (server.Usage, error) {
		n := int64(len(r.Data))
		if err := db.quota.Check(u, 1, n); err != nil {
			return u, err
		}
		_, err := tx.Exec(ctx, `INSERT INTO records (`+recordCols+`)
			VALUES ($1::uuid, $2::uuid, $3::json, $4::timestamptz, $5::timestamptz)`,
			r.ID, r.UserID, string(r.Data), r.CreatedAt, r.UpdatedAt)
		if err != nil {
			return u, mapError(err)
		}
		return server.Usage{Records: u.Records + 1, Bytes: u.Bytes + n}, nil
	})
	if err != nil {
		return fmt.Errorf("create record for user %s: %w", r.UserID, err)
	}
	db.recordPosition(ctx)
	return nil
}

// CreateRecords inserts rs for owner userID in one transaction with one
// multi-row INSERT (arrays unnested server-side: one statement whatever
// the batch size, so it stays a prepared statement), after checking the
// owner's quota for the whole batch.
func (db *DB) CreateRecords(ctx context.Context, userID string, rs []*server.Record) error {
	defer db.wrote("create_records", time.Now())
	if !server.ValidID(userID) {
		return errUserNotFound()
	}
	bytes, err := server.PrepareNewRecords(userID, rs)
	if err != nil {
		return err
	}
	ids, data := make([]string, len(rs)), make([]string, len(rs))
	created, updated := make([]time.Time, len(rs)), make([]time.Time, len(rs))
	for i, r := range rs {
		ids[i], data[i], created[i], updated[i] = r.ID, string(r.Data), r.CreatedAt, r.UpdatedAt
	}
	err = db.recordTx(ctx, userID, func(tx pgx.Tx, u server.Usage) (server.Usage, error) {
		if err := db.quota.Check(u, int64(len(rs)), bytes); err != nil {
			return u, err
		}
		_, err := tx.Exec(ctx, `INSERT INTO records (`+recordCols+`)
			SELECT i, $2::uuid, d::json, c, m FROM unnest($1::uuid[], $3::text[], $4::timestamptz[], $5::timestamptz[]) AS t(i, d, c, m)`,
			ids, userID, data, created, updated)
		if err != nil {
			return u, mapError(err)
		}
		return server.Usage{Records: u.Records + int64(len(rs)), Bytes: u.Bytes + bytes}, nil
	})
	if err != nil {
		return fmt.Errorf("create %d records for user %s: %w", len(rs), userID, err)
	}
	db.recordPosition(ctx)
	return nil
}

// recordTx runs fn, a record write of user userID, in a transaction on the
// primary with the user's usage counters. It locks the user's row first
// (SELECT … FOR UPDATE): concurrent record writes of one user then run one
// after another, so two cannot pass the quota together, and every
// transaction that touches a user and their records takes the user's lock
// before any record's (DeleteUser's cascade does too), so they cannot
// deadlock. fn gets the usage before and returns it after; recordTx stores
// it before committing. An unknown user is ENOTFOUND.
func (db *DB) recordTx(ctx context.Context, userID string, fn func(tx pgx.Tx, u server.Usage) (server.Usage, error)) error {
	return pgx.BeginFunc(ctx, db.primary.writes(), func(tx pgx.Tx) error {
		var before server.Usage
		err := tx.QueryRow(ctx, sqlLockUsage, userID).Scan(&before.Records, &before.Bytes)
		if errors.Is(err, pgx.ErrNoRows) {
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
			_, err = tx.Exec(ctx, sqlSetUsage, after.Records, after.Bytes, userID)
		}
		return err
	})
}

// Usage returns what user userID stores, from the counters on its row (the
// owner's view shows them). It is a read like User (readHedged): served by
// a replica unless ctx asks for the primary or a position (read-your-writes).
func (db *DB) Usage(ctx context.Context, userID string) (server.Usage, error) {
	if !server.ValidID(userID) {
		return server.Usage{}, errUserNotFound()
	}
	u, err := readHedged(ctx, db, "usage", func(ctx context.Context, q querier) (server.Usage, error) {
		var u server.Usage
		err := q.QueryRow(ctx, sqlUsage, userID).Scan(&u.Records, &u.Bytes)
		if errors.Is(err, pgx.ErrNoRows) {
			return u, errUserNotFound()
		}
		return u, err
	})
	if err != nil {
		return u, fmt.Errorf("load usage of user %s: %w", userID, err)
	}
	return u, nil
}

// Record returns the record id of user userID, or ENOTFOUND (also when the
// record belongs to another user).
func (db *DB) Record(ctx context.Context, userID, id string) (*server.Record, error) {
	if !server.ValidID(userID) || !server.ValidID(id) {
		return nil, errRecordNotFound()
	}
	r, err := readHedged(ctx, db, "record", func(ctx context.Context, q querier) (*server.Record, error) {
		return scanRecord(q.QueryRow(ctx, sqlRecord, id, userID))
	})
	if err != nil {
		return nil, fmt.Errorf("load record %s: %w", id, err)
	}
	return r, nil
}

// Records returns up to limit (1..server.MaxPageLimit) records of userID, newest
// first, after the cursor of the previous page ("" for the first page),
// stopping early at server.MaxPageBytes of data (at least one record). The
// cursor is the last id of the previous page (with replicas, also the WAL
// position of the snapshot that page came from), so a page never repeats or
// skips a record that existed when the first page was read, whatever is
// inserted meanwhile and whichever replica serves the page. A malformed cursor is EBADREQUEST; an unknown user is
// ENOTFOUND.
func (db *DB) Records(ctx context.Context, userID string, limit int, cursor string) (*server.RecordPage, error) {
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
	// The cursor carries the position of the page that made it (see
	// records), and the next page must see at least as much.
	ctx = server.WithMinPosition(ctx, after.pos)
	withPos := len(db.replicas) > 0
	page, err := readHedged(ctx, db, "records", func(ctx context.Context, q querier) (*server.RecordPage, error) {
		return records(ctx, q, userID, limit, after.id, withPos)
	})
	if err != nil {
		return nil, fmt.Errorf("list records of user %s: %w", userID, err)
	}
	return page, nil
}

// snapshotPosition, evaluated in a statement, is a WAL position at or past
// every commit the statement's snapshot sees: the snapshot was taken before
// the function ran, and a replica's replay position (the primary's insert
// position) only grows. COALESCE evaluates its second argument only on the
// primary, where the first is null; on a replica it would fail.
const snapshotPosition = `coalesce(pg_last_wal_replay_lsn(), pg_current_wal_insert_lsn())::text`

// records reads one page of Records on q. With withPos, the next page's
// cursor also carries the position of the snapshot this page was read
// from, so that the next page, served by whatever replica, sees at least
// as much: a replica further behind would skip the records committed in
// between, breaking "never skips a record that existed when the first page
// was read".
func records(ctx context.Context, q querier, userID string, limit int, after string, withPos bool) (*server.RecordPage, error) {
	cols := recordCols
	if withPos {
		cols += `, ` + snapshotPosition
	}
	var rows pgx.Rows
	var err error
	if after == "" {
		rows, err = q.Query(ctx, fmt.Sprintf(sqlRecordsFirst, cols), userID, limit+1)
	} else {
		rows, err = q.Query(ctx, fmt.Sprintf(sqlRecordsAfter, cols), userID, after, limit+1)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	page := &server.RecordPage{Items: make([]server.Record, 0, min(limit, 16))}
	var posText string
	var extra []any
	if withPos {
		extra = []any{&posText}
	}
	more, size := false, 0
	for rows.Next() {
		r, err := scanRecord(rows, extra...)
		if err != nil {
			return nil, err
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
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if more {
		var pos server.Position
		if withPos {
			if pos, err = server.ParsePosition(posText); err != nil {
				return nil, err
			}
			pos = recordEnd(pos)
		}
		page.NextCursor = encodeCursor(cursor{id: page.Items[len(page.Items)-1].ID, pos: pos})
	}
	if len(page.Items) == 0 {
		// Tell "no records" from "no such user"; only empty pages pay.
		var exists bool
		if err := q.QueryRow(ctx, sqlUserExists, userID).Scan(&exists); err != nil {
			return nil, err
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
	defer db.wrote("update_record", time.Now())
	if !server.ValidID(userID) || !server.ValidID(id) {
		return nil, errRecordNotFound()
	}
	if !json.Valid(data) {
		return nil, server.Errorf(server.EINVALID, "data must be a JSON value")
	}
	var r *server.Record
	err := db.recordTx(ctx, userID, func(tx pgx.Tx, u server.Usage) (server.Usage, error) {
		var old int64
		err := tx.QueryRow(ctx, sqlRecordSize, id, userID).Scan(&old)
		if errors.Is(err, pgx.ErrNoRows) {
			return u, errRecordNotFound()
		}
		if err != nil {
			return u, err
		}
		delta := int64(len(data)) - old
		if err := db.quota.Check(u, 0, delta); err != nil {
			return u, err
		}
		r, err = scanRecord(tx.QueryRow(ctx, sqlUpdateRecord, string(data), server.Now(), id, userID))
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
	db.recordPosition(ctx)
	return r, nil
}

// DeleteRecord deletes the record id of user userID.
func (db *DB) DeleteRecord(ctx context.Context, userID, id string) error {
	defer db.wrote("delete_record", time.Now())
	if !server.ValidID(userID) || !server.ValidID(id) {
		return errRecordNotFound()
	}
	err := db.recordTx(ctx, userID, func(tx pgx.Tx, u server.Usage) (server.Usage, error) {
		var old int64
		err := tx.QueryRow(ctx, sqlDeleteRecord, id, userID).Scan(&old)
		if errors.Is(err, pgx.ErrNoRows) {
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
	db.recordPosition(ctx)
	return nil
}

func errRecordNotFound() error { return server.Errorf(server.ENOTFOUND, "record not found") }

// scanRecord scans the record columns, and extra ones after them into
// extra.
func scanRecord(row pgx.Row, extra ...any) (*server.Record, error) {
	var r server.Record
	var data []byte
	err := row.Scan(append([]any{&r.ID, &r.UserID, &data, &r.CreatedAt, &r.UpdatedAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errRecordNotFound()
	}
	if err != nil {
		return nil, mapError(err)
	}
	r.Data = json.RawMessage(data)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return &r, nil
}

// cursor is where the next page starts: after id, in a snapshot at least
// as new as pos (0: any).
type cursor struct {
	id  string
	pos server.Position
}

// encodeCursor makes the opaque cursor: the 16 bytes of the last id, then,
// when there is one, the 8 bytes of the position (big-endian), base64url
// without padding (22 or 32 characters).
func encodeCursor(c cursor) string {
	u, err := uuid.Parse(c.id)
	if err != nil {
		// Stored ids are always valid. Were one not, this cursor fails to
		// decode (EBADREQUEST) instead of paging wrongly.
		return base64.RawURLEncoding.EncodeToString([]byte(c.id))
	}
	b := u[:]
	if c.pos != 0 {
		b = binary.BigEndian.AppendUint64(b, uint64(c.pos))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodeCursor returns what a cursor says, the zero cursor for "".
func decodeCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || (len(b) != 16 && len(b) != 24) {
		return cursor{}, server.Errorf(server.EBADREQUEST, "invalid cursor")
	}
	c := cursor{id: uuid.UUID(b[:16]).String()}
	if len(b) == 24 {
		c.pos = server.Position(binary.BigEndian.Uint64(b[16:]))
	}
	return c, nil
}
