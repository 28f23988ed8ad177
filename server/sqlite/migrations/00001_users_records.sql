-- +goose Up
-- Times are Unix microseconds (UTC): exact, compact and quick to compare.
-- email_key and username_key hold server.FoldKey of email and username; their
-- unique indexes decide case-insensitive uniqueness, also under concurrent
-- sign-ups. WITHOUT ROWID clusters users by id, so a lookup by id is one
-- B-tree search.
CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    email         TEXT    NOT NULL,
    email_key     TEXT    NOT NULL UNIQUE,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    name          TEXT    NOT NULL DEFAULT '',
    avatar        TEXT    NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1
) STRICT, WITHOUT ROWID;

-- data is the JSON the client sent, compacted, byte for byte.
CREATE TABLE records (
    id         TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    data       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

-- Keyset pagination (newest first) and the cascade from users.
CREATE INDEX records_user_id_id ON records (user_id, id DESC);

-- +goose Down
DROP TABLE records;
DROP TABLE users;
