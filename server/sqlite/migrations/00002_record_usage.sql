-- +goose Up
-- Per-user record quotas (issue 9): the user's record count and bytes of
-- record data, kept on the user row and updated in the transaction of every
-- record write, so a quota check costs no scan.
ALTER TABLE users ADD COLUMN records_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN records_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE users SET
    records_count = (SELECT count(*) FROM records WHERE records.user_id = users.id),
    records_bytes = (SELECT coalesce(sum(length(CAST(data AS BLOB))), 0) FROM records WHERE records.user_id = users.id);

-- +goose Down
ALTER TABLE users DROP COLUMN records_bytes;
ALTER TABLE users DROP COLUMN records_count;
