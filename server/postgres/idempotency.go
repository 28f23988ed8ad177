package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"scalelab/server"
)

var _ server.IdempotencyStore = (*DB)(nil)

// claimKey inserts a claim, or takes over one whose answer expired or
// whose request ended without one (lease over, same request); it returns a
// row only when the caller holds the claim.
const claimKey = `INSERT INTO idempotency_keys AS k (id, fingerprint, locked_until, expires_at)
	VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond', clock_timestamp() + $4::bigint * interval '1 millisecond')
	ON CONFLICT (id) DO UPDATE SET fingerprint = excluded.fingerprint, status = NULL, header = NULL, body = NULL,
		locked_until = excluded.locked_until, expires_at = excluded.expires_at
	WHERE k.expires_at < clock_timestamp()
		OR (k.status IS NULL AND k.locked_until < clock_timestamp() AND k.fingerprint = excluded.fingerprint)
	RETURNING true`

// ClaimIdempotencyKey implements server.IdempotencyStore on the primary.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, id, fingerprint string, lease time.Duration) (*server.SavedResponse, error) {
	if rand.IntN(256) == 0 {
		db.dropExpiredKeys(ctx)
	}
	for range 3 { // a key deleted between the insert and the read is claimed again
		var claimed bool
		err := db.primary.writeRow(ctx, func(row pgx.Row) error { return row.Scan(&claimed) },
			claimKey, id, fingerprint, lease.Milliseconds(), server.IdempotencyTTL.Milliseconds())
		if err == nil {
			return nil, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("claim idempotency key: %w", err)
		}
		var fp string
		var status *int
		var header, body []byte
		err = db.primary.QueryRow(ctx, `SELECT fingerprint, status, header, body FROM idempotency_keys WHERE id = $1`, id).
			Scan(&fp, &status, &header, &body)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read idempotency key: %w", err)
		}
		switch {
		case fp != fingerprint:
			return nil, server.ErrIdempotencyKeyReused()
		case status == nil:
			return nil, server.ErrIdempotencyKeyInUse()
		}
		r := &server.SavedResponse{Status: *status, Body: body}
		if len(header) > 0 {
			if err := json.Unmarshal(header, &r.Header); err != nil {
				return nil, fmt.Errorf("read idempotency key: header: %w", err)
			}
		}
		return r, nil
	}
	return nil, server.ErrIdempotencyKeyInUse()
}

// SaveIdempotentResponse implements server.IdempotencyStore.
func (db *DB) SaveIdempotentResponse(ctx context.Context, id string, r server.SavedResponse) error {
	header, err := json.Marshal(r.Header)
	if err != nil {
		return fmt.Errorf("save idempotent response: %w", err)
	}
	if _, err := db.primary.Exec(ctx, `UPDATE idempotency_keys SET status = $2, header = $3::jsonb, body = $4 WHERE id = $1`,
		id, r.Status, string(header), r.Body); err != nil {
		return fmt.Errorf("save idempotent response: %w", err)
	}
	return nil
}

// ReleaseIdempotencyKey implements server.IdempotencyStore.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, id string) error {
	if _, err := db.primary.Exec(ctx, `DELETE FROM idempotency_keys WHERE id = $1 AND status IS NULL`, id); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}

// dropExpiredKeys deletes some answers older than server.IdempotencyTTL;
// claims call it now and then, so the table stays about a day of keys.
func (db *DB) dropExpiredKeys(ctx context.Context) {
	_, err := db.primary.Exec(ctx, `DELETE FROM idempotency_keys WHERE id IN
		(SELECT id FROM idempotency_keys WHERE expires_at < clock_timestamp() LIMIT 1000)`)
	if err != nil {
		db.log.Warn("dropping expired idempotency keys failed", "err", err)
	}
}
