-- Personal access tokens for scripts and data pipelines: the secret is shown once and
-- stored as its SHA-256; `scopes` is `read` or `read write`. Same file name and meaning as
-- migrations/postgres/0011_api_tokens.sql (SQLite types as in 0001).

CREATE TABLE api_tokens (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id),
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    -- The first characters of the secret, so its owner can tell tokens apart.
    prefix       TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, created_at);
