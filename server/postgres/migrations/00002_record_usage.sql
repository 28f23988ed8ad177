-- +goose Up
-- Per-user record quotas (issue 9): the user's record count and bytes of
-- record data, kept on the user row and updated in the transaction of every
-- record write (which locks the user row first, so concurrent writes of one
-- user are serialized and cannot pass the quota together).
ALTER TABLE users
    ADD COLUMN records_count bigint NOT NULL DEFAULT 0,
    ADD COLUMN records_bytes bigint NOT NULL DEFAULT 0;
UPDATE users u SET records_count = r.n, records_bytes = r.bytes
FROM (SELECT user_id, count(*) AS n, sum(octet_length(data::text)) AS bytes FROM records GROUP BY user_id) r
WHERE r.user_id = u.id;

-- +goose Down
ALTER TABLE users DROP COLUMN records_bytes, DROP COLUMN records_count;
