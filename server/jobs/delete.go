package jobs

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"scalelab/server"
)

// DeleteRecordsArgs asks for the records of a deleted user to be deleted,
// in batches. The job is inserted in the transaction that deleted the
// user (see Queue.DeleteUserLater).
type DeleteRecordsArgs struct {
	UserID string `json:"user_id"`
	// KeyHash is the SHA-256 (hex) of the key in the status URL. The
	// user is gone, so no token can guard the status of its deletion: the
	// key does, and only its hash is stored.
	KeyHash string `json:"key_hash"`
}

// Kind names the job in River's table.
func (DeleteRecordsArgs) Kind() string { return "delete_records" }

// InsertOpts: River's default of 25 attempts over about three weeks. The
// user is already gone; what is left must go eventually, however long the
// database is away.
func (DeleteRecordsArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{} }

// DeleteBatch is how many records one transaction of a deletion job
// deletes: enough that a million records take a thousand short
// transactions, few enough that each holds its locks and its WAL for
// milliseconds, and replicas never fall far behind.
const DeleteBatch = 1000

// RecordDeleter deletes the records of deleted users, a batch at a time;
// the Postgres store is one (postgres.DB.DeleteDeletedUserRecords).
type RecordDeleter interface {
	DeleteDeletedUserRecords(ctx context.Context, userID string, batch int) (int64, error)
}

// UserDetacher deletes a user at once and leaves its records to a job
// inserted by enqueue in the same transaction, when it has at least
// minRecords; the Postgres store is one (postgres.DB.DeleteUserLater).
type UserDetacher interface {
	DeleteUserLater(ctx context.Context, id string, minRecords int64, enqueue func(ctx context.Context, tx pgx.Tx) error) (bool, error)
}

// deleteRecordsWorker deletes a deleted user's records DeleteBatch at a
// time until none is left. Each batch commits on its own, so a retried or
// interrupted job loses nothing and starts where the last one stopped.
type deleteRecordsWorker struct {
	river.WorkerDefaults[DeleteRecordsArgs]
	records RecordDeleter
}

// Timeout: a user at the quota's ten thousand records takes ten batches,
// but the quota is a flag; a deletion takes as long as it takes. Stop
// cancels it, and the retry continues.
func (w *deleteRecordsWorker) Timeout(*river.Job[DeleteRecordsArgs]) time.Duration { return -1 }

func (w *deleteRecordsWorker) Work(ctx context.Context, job *river.Job[DeleteRecordsArgs]) error {
	for {
		n, err := w.records.DeleteDeletedUserRecords(ctx, job.Args.UserID, DeleteBatch)
		if err != nil {
			return err
		}
		if n < DeleteBatch {
			return nil
		}
	}
}

// Deletion is an account deletion whose records are left to the queue.
type Deletion struct {
	JobID int64
	// Ticket is the last part of the status URL: the job id and a random
	// key, "<id>-<key>".
	Ticket string
}

// DeleteUserLater deletes user id at once and inserts the job that deletes
// its records, in one transaction, when Options.Detacher is set and the
// user has at least Options.DeferRecords records; ok is false (and
// nothing changed) otherwise: delete the user synchronously then.
func (q *Queue) DeleteUserLater(ctx context.Context, id string) (d Deletion, ok bool, err error) {
	if q.detacher == nil || q.deferRecords <= 0 {
		return Deletion{}, false, nil
	}
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return Deletion{}, false, fmt.Errorf("delete user %s: key: %w", id, err)
	}
	hexKey := hex.EncodeToString(key[:])
	sum := sha256.Sum256([]byte(hexKey))
	args := DeleteRecordsArgs{UserID: id, KeyHash: hex.EncodeToString(sum[:])}
	ok, err = q.detacher.DeleteUserLater(ctx, id, q.deferRecords, func(ctx context.Context, tx pgx.Tx) error {
		res, err := q.client.InsertTx(ctx, tx, args, nil)
		if err != nil {
			return fmt.Errorf("enqueue deletion of %s's records: %w", id, err)
		}
		d.JobID = res.Job.ID
		return nil
	})
	if err != nil || !ok {
		return Deletion{}, false, err
	}
	d.Ticket = strconv.FormatInt(d.JobID, 10) + "-" + hexKey
	return d, true, nil
}

// DeletionStatus looks up the deletion a status URL's ticket names: its
// job's status (queued, running, done or failed). A ticket that names no
// deletion, or whose key does not match, is ENOTFOUND.
func (q *Queue) DeletionStatus(ctx context.Context, ticket string) (string, error) {
	notFound := server.Errorf(server.ENOTFOUND, "deletion %q not found", ticket)
	idText, key, found := strings.Cut(ticket, "-")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !found || err != nil || id <= 0 || len(key) != 32 {
		return "", notFound
	}
	job, err := q.client.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		return "", notFound
	}
	if err != nil {
		return "", fmt.Errorf("get deletion %d: %w", id, err)
	}
	var args DeleteRecordsArgs
	if job.Kind != (DeleteRecordsArgs{}).Kind() || json.Unmarshal(job.EncodedArgs, &args) != nil {
		return "", notFound
	}
	sum := sha256.Sum256([]byte(key))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(args.KeyHash)) != 1 {
		return "", notFound
	}
	return jobStatus(job.State), nil
}
