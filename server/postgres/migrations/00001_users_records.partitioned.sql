-- +goose Up
-- The partitioned layout (Options.Partitions, the server's --partitions N;
-- docs/schema.md): what 00001_users_records.sql creates, with users
-- hash-partitioned by id and records by user_id into the same N
-- partitions, so user k's row and records sit in partitions of the same
-- number. It replaces that migration when Open creates the schema of an
-- empty database with Partitions > 0; every later migration is shared.
--
-- A unique index on a partitioned table must contain the partition key, so
-- email_key and username_key cannot be unique on users any more: the
-- lookup tables user_emails and user_usernames hold them instead, written
-- in the same statement as the user (CreateUser) or the same transaction
-- (UpdateUser), and their primary keys decide uniqueness across all
-- partitions, concurrent sign-ups included. Their foreign keys remove a
-- user's rows with the user, whichever statement deletes it.
CREATE TABLE users (
    id            uuid        NOT NULL,
    email         text        NOT NULL,
    email_key     text        COLLATE "C" NOT NULL,
    username      text        NOT NULL,
    username_key  text        COLLATE "C" NOT NULL,
    password_hash text        NOT NULL,
    name          text        NOT NULL DEFAULT '',
    avatar        text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint      NOT NULL DEFAULT 1,
    CONSTRAINT users_pkey PRIMARY KEY (id)
) PARTITION BY HASH (id);

CREATE TABLE user_emails (
    email_key text COLLATE "C" NOT NULL CONSTRAINT user_emails_pkey PRIMARY KEY,
    user_id   uuid NOT NULL CONSTRAINT user_emails_user_id_fkey REFERENCES users (id) ON DELETE CASCADE
);
-- The cascade from users finds a user's row by user_id.
CREATE INDEX user_emails_user_id ON user_emails (user_id);

CREATE TABLE user_usernames (
    username_key text COLLATE "C" NOT NULL CONSTRAINT user_usernames_pkey PRIMARY KEY,
    user_id      uuid NOT NULL CONSTRAINT user_usernames_user_id_fkey REFERENCES users (id) ON DELETE CASCADE
);
CREATE INDEX user_usernames_user_id ON user_usernames (user_id);

-- The primary key must contain user_id, the partition key; (user_id, id)
-- also serves keyset pagination newest first (a backward scan) and the
-- cascade from users, so records needs no other index. Record ids are
-- UUIDv7 made by the server, never taken from a request: unique per user
-- is unique.
CREATE TABLE records (
    id         uuid        NOT NULL,
    user_id    uuid        NOT NULL CONSTRAINT records_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    data       json        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT records_pkey PRIMARY KEY (user_id, id)
) PARTITION BY HASH (user_id);

-- The number of partitions comes from the migration's connection (Open
-- sets scalelab.partitions on it), as SQL files take no parameters.
-- +goose StatementBegin
DO $$
DECLARE
    n int := nullif(current_setting('scalelab.partitions', true), '')::int;
BEGIN
    IF n IS NULL OR n < 2 OR n > 1024 THEN
        RAISE EXCEPTION 'scalelab.partitions is %, want 2 to 1024 (set by postgres.Open from Options.Partitions)', coalesce(n::text, 'not set');
    END IF;
    FOR i IN 0 .. n - 1 LOOP
        EXECUTE format('CREATE TABLE users_p%s PARTITION OF users FOR VALUES WITH (MODULUS %s, REMAINDER %s)', i, n, i);
        EXECUTE format('CREATE TABLE records_p%s PARTITION OF records FOR VALUES WITH (MODULUS %s, REMAINDER %s)', i, n, i);
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP TABLE records;
DROP TABLE user_usernames;
DROP TABLE user_emails;
DROP TABLE users;
