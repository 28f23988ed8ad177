-- +goose Up
-- email_key and username_key hold server.FoldKey of email and username; their
-- unique constraints decide case-insensitive uniqueness, also under
-- concurrent sign-ups, and the store maps a violation to the field by the
-- constraint's name. COLLATE "C": byte comparison, the same in every
-- database whatever its locale, and the cheapest.
CREATE TABLE users (
    id            uuid        NOT NULL CONSTRAINT users_pkey PRIMARY KEY,
    email         text        NOT NULL,
    email_key     text        COLLATE "C" NOT NULL CONSTRAINT users_email_key UNIQUE,
    username      text        NOT NULL,
    username_key  text        COLLATE "C" NOT NULL CONSTRAINT users_username_key UNIQUE,
    password_hash text        NOT NULL,
    name          text        NOT NULL DEFAULT '',
    avatar        text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    version       bigint      NOT NULL DEFAULT 1
);

-- data is json, not jsonb: json keeps the text the client sent (compacted by
-- the server) byte for byte, as SQLite does, so both stores return the same
-- bytes and ETags; jsonb would reorder keys, drop duplicate keys, respace
-- the output and reject \u0000. The server never queries inside data; phase
-- 4's analytics can cast to jsonb where they need to.
CREATE TABLE records (
    id         uuid        NOT NULL CONSTRAINT records_pkey PRIMARY KEY,
    user_id    uuid        NOT NULL CONSTRAINT records_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
    data       json        NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- Keyset pagination (newest first) and the cascade from users.
CREATE INDEX records_user_id_id ON records (user_id, id DESC);

-- +goose Down
DROP TABLE records;
DROP TABLE users;
