-- +goose Up
-- Safe retries (issue 16): a write's deadline, checked inside the write's
-- own transaction just before it commits, so that a write whose caller
-- already gave up (and answered 503) cannot commit later, when a paused
-- primary resumes and finds the statement still in its socket buffer.
-- SQLSTATE SL408 is the store's "deadline passed, nothing applied".
-- +goose StatementBegin
CREATE FUNCTION scalelab_write_deadline(deadline timestamptz) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF clock_timestamp() > deadline THEN
        RAISE EXCEPTION 'write deadline % passed: rolled back', deadline USING ERRCODE = 'SL408';
    END IF;
END
$$;
-- +goose StatementEnd

-- The answers of writes sent with an Idempotency-Key, kept for a day. id
-- is a hash of who sent the request (its credentials), its method, path
-- and key; fingerprint a hash of the request. status is null while the
-- first request with the key runs (until locked_until).
CREATE TABLE idempotency_keys (
    id           text PRIMARY KEY,
    fingerprint  text NOT NULL,
    status       integer,
    header       jsonb,
    body         bytea,
    locked_until timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP FUNCTION scalelab_write_deadline(timestamptz);
