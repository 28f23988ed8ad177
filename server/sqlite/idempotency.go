package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"scalelab/server"
)

var _ server.IdempotencyStore = (*DB)(nil)

// ClaimIdempotencyKey implements server.IdempotencyStore (see the Postgres
// store's for the statement's logic).
func (db *DB) ClaimIdempotencyKey(ctx context.Context, id, fingerprint string, lease time.Duration) (*server.SavedResponse, error) {
	now := time.Now()
	if rand.IntN(256) == 0 {
		if _, err := db.writer.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at < ?`, now.UnixMilli()); err != nil {
			db.log.Warn("dropping expired idempotency keys failed", "err", err)
		}
	}
	var claimed int
	err := db.writer.QueryRowContext(ctx, `INSERT INTO idempotency_keys AS k (id, fingerprint, locked_until, expires_at)
		VALUES (?1, ?2, ?3, ?4)
		ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, status = NULL, header = NULL, body = NULL,
			locked_until = excluded.locked_until, expires_at = excluded.expires_at
		WHERE k.expires_at < ?5 OR (k.status IS NULL AND k.locked_until < ?5 AND k.fingerprint = excluded.fingerprint)
		RETURNING 1`,
		id, fingerprint, now.Add(lease).UnixMilli(), now.Add(server.IdempotencyTTL).UnixMilli(), now.UnixMilli()).Scan(&claimed)
	if err == nil {
		return nil, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("claim idempotency key: %w", err)
	}
	var fp string
	var status sql.NullInt64
	var header sql.NullString
	var body []byte
	err = db.writer.QueryRowContext(ctx, `SELECT fingerprint, status, header, body FROM idempotency_keys WHERE id = ?`, id).
		Scan(&fp, &status, &header, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, server.ErrIdempotencyKeyInUse() // released since the insert: a retry claims it
	}
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", err)
	}
	switch {
	case fp != fingerprint:
		return nil, server.ErrIdempotencyKeyReused()
	case !status.Valid:
		return nil, server.ErrIdempotencyKeyInUse()
	}
	r := &server.SavedResponse{Status: int(status.Int64), Body: body}
	if header.Valid && header.String != "" {
		if err := json.Unmarshal([]byte(header.String), &r.Header); err != nil {
			return nil, fmt.Errorf("read idempotency key: header: %w", err)
		}
	}
	return r, nil
}

// SaveIdempotentResponse implements server.IdempotencyStore.
func (db *DB) SaveIdempotentResponse(ctx context.Context, id string, r server.SavedResponse) error {
	header, err := json.Marshal(r.Header)
	if err != nil {
		return fmt.Errorf("save idempotent response: %w", err)
	}
	if _, err := db.writer.ExecContext(ctx, `UPDATE idempotency_keys SET status = ?, header = ?, body = ? WHERE id = ?`,
		r.Status, string(header), r.Body, id); err != nil {
		return fmt.Errorf("save idempotent response: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey implements server.IdempotencyStore.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, id string) error {
	if _, err := db.writer.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE id = ? AND status IS NULL`, id); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
