package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/klauspost/compress/gzip"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"scalelab/server"
)

// ExportArgs asks for an export of one user's records.
type ExportArgs struct {
	UserID string `json:"user_id"`
}

// Kind names the job in River's table.
func (ExportArgs) Kind() string { return "export" }

// InsertOpts: a failed export is retried three times, not River's 25 over
// three weeks: the owner is polling for it.
func (ExportArgs) InsertOpts() river.InsertOpts { return river.InsertOpts{MaxAttempts: 3} }

func decodeExportArgs(job *rivertype.JobRow) (ExportArgs, error) {
	var a ExportArgs
	if job.Kind != (ExportArgs{}).Kind() {
		return a, fmt.Errorf("job %d is a %s, not an export", job.ID, job.Kind)
	}
	err := json.Unmarshal(job.EncodedArgs, &a)
	return a, err
}

// exportRecord is one record in an export file: the API's record view.
type exportRecord struct {
	ID        string          `json:"id"`
	Data      json.RawMessage `json:"data"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// exportWorker writes every record of a user, newest first, as one JSON
// document {"user_id", "exported_at", "records": [...]}, gzip-compressed
// (gzip rather than zstd: every browser and curl --compressed can open
// it), into scalelab_exports.
type exportWorker struct {
	river.WorkerDefaults[ExportArgs]
	records server.RecordStore
	pool    *pgxpool.Pool
}

// pageSize is how many records one store read returns.
const pageSize = 100

func (w *exportWorker) Work(ctx context.Context, job *river.Job[ExportArgs]) error {
	userID := job.Args.UserID
	var raw bytes.Buffer
	fmt.Fprintf(&raw, `{"user_id":%q,"exported_at":%q,"records":[`, userID, time.Now().UTC().Format(time.RFC3339))
	var n int64
	for cursor := ""; ; {
		page, err := w.records.Records(ctx, userID, pageSize, cursor)
		if err != nil {
			return fmt.Errorf("export %s: read records: %w", userID, err)
		}
		for _, r := range page.Items {
			b, err := json.Marshal(exportRecord{ID: r.ID, Data: r.Data, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()})
			if err != nil {
				return fmt.Errorf("export %s: encode record %s: %w", userID, r.ID, err)
			}
			if n > 0 {
				raw.WriteByte(',')
			}
			raw.Write(b)
			n++
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	raw.WriteString("]}")

	var zipped bytes.Buffer
	zw, err := gzip.NewWriterLevel(&zipped, gzip.DefaultCompression)
	if err != nil {
		return fmt.Errorf("export %s: %w", userID, err)
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return fmt.Errorf("export %s: compress: %w", userID, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("export %s: compress: %w", userID, err)
	}
	// A retried job overwrites an earlier attempt's file.
	if _, err := w.pool.Exec(ctx, `INSERT INTO scalelab_exports (job_id, user_id, encoding, body, records, raw_bytes)
VALUES ($1, $2, 'gzip', $3, $4, $5)
ON CONFLICT (job_id) DO UPDATE SET body = excluded.body, records = excluded.records, raw_bytes = excluded.raw_bytes, created_at = now()`,
		job.ID, userID, zipped.Bytes(), n, int64(raw.Len())); err != nil {
		return fmt.Errorf("export %s: store file: %w", userID, err)
	}
	return nil
}
