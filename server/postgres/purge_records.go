package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"scalelab/server"
)

// DeleteUserLater deletes user id at once but leaves its records for
// later, when it has at least minRecords of them: in one transaction it
// deletes the user's row (the user is gone: reads answer ENOTFOUND, its
// tokens stop working, its email and username are free again) without the
// records (see migration 00200), and calls enqueue, which inserts the job
// that deletes them (DeleteDeletedUserRecords) in the same transaction, so
// that the job exists exactly when the deletion committed.
//
// A user with fewer records is left as it is and later is false: delete
// it with DeleteUser, which takes the records with it. An unknown user is
// ENOTFOUND.
func (db *DB) DeleteUserLater(ctx context.Context, id string, minRecords int64, enqueue func(ctx context.Context, tx pgx.Tx) error) (later bool, err error) {
	defer db.wrote("delete_user", time.Now())
	if !server.ValidID(id) {
		return false, errUserNotFound()
	}
	err = pgx.BeginFunc(ctx, db.primary, func(tx pgx.Tx) error {
		// The row lock orders this after record writes in flight, as
		// recordTx's lock does for DeleteUser's trigger.
		var n int64
		err := tx.QueryRow(ctx, `SELECT records_count FROM users WHERE id = $1::uuid FOR UPDATE`, id).Scan(&n)
		if errors.Is(err, pgx.ErrNoRows) {
			return errUserNotFound()
		}
		if err != nil {
			return err
		}
		if n < minRecords {
			return nil
		}
		if _, err := tx.Exec(ctx, `SET LOCAL scalelab.keep_records = 'on'`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1::uuid`, id); err != nil {
			return err
		}
		if err := enqueue(ctx, tx); err != nil {
			return err
		}
		later = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("delete user %s: %w", id, err)
	}
	if later {
		db.recordPosition(ctx)
	}
	return later, nil
}

// DeleteDeletedUserRecords deletes up to batch records of user userID in
// one transaction and returns how many it deleted; fewer than batch means
// none is left. The user must be deleted already: the records of a user
// that exists are never touched (0 is returned), so a job that runs by
// mistake cannot delete live data.
func (db *DB) DeleteDeletedUserRecords(ctx context.Context, userID string, batch int) (int64, error) {
	defer db.wrote("delete_records", time.Now())
	if !server.ValidID(userID) || batch < 1 {
		return 0, nil
	}
	// user_id in the outer statement too: with records partitioned by
	// user_id, both scans then stay in the one partition.
	tag, err := db.primary.Exec(ctx, `DELETE FROM records WHERE user_id = $1::uuid AND id IN (
    SELECT id FROM records WHERE user_id = $1::uuid
        AND NOT EXISTS (SELECT 1 FROM users WHERE id = $1::uuid)
    LIMIT $2)`, userID, batch)
	if err != nil {
		return 0, fmt.Errorf("delete records of deleted user %s: %w", userID, err)
	}
	return tag.RowsAffected(), nil
}
