-- +goose Up
-- The answers of writes sent with an Idempotency-Key, kept for a day (see
-- server.IdempotencyStore). Times are Unix milliseconds.
CREATE TABLE idempotency_keys (
    id           TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    status       INTEGER,
    header       TEXT,
    body         BLOB,
    locked_until INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
