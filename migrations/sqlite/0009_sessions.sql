-- Sessions and refresh tokens. A session is one sign-in (a refresh-token family): every
-- refresh rotates its token, and presenting a rotated token again revokes the session
-- (RFC 9700 reuse detection). Access tokens name their session (`sid`), so revoking it
-- refuses them at once. Same file name and meaning as migrations/postgres/0009_sessions.sql (SQLite types as in 0001).

CREATE TABLE sessions (
    id                  BLOB PRIMARY KEY,
    user_id             BLOB NOT NULL REFERENCES users (id),
    -- How the session began: password, passkey or google.
    method              TEXT NOT NULL,
    user_agent          TEXT,
    ip                  TEXT,
    created_at          TEXT NOT NULL,
    last_used_at        TEXT NOT NULL,
    -- Unused for this long, or alive past the absolute limit, the session ends.
    idle_expires_at     TEXT NOT NULL,
    absolute_expires_at TEXT NOT NULL,
    revoked_at          TEXT,
    -- logout, logout_all, revoked, reuse_detected, password_changed, password_reset
    revoked_reason      TEXT
);
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash  TEXT PRIMARY KEY,
    session_id  BLOB NOT NULL REFERENCES sessions (id),
    created_at  TEXT NOT NULL,
    -- Set when the token was exchanged for the next one.
    rotated_at  TEXT
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
