-- Sessions and refresh tokens. A session is one sign-in (a refresh-token family): every
-- refresh rotates its token, and presenting a rotated token again revokes the session
-- (RFC 9700 reuse detection). Access tokens name their session (`sid`), so revoking it
-- refuses them at once. Same file name and meaning as migrations/sqlite/0009_sessions.sql.

CREATE TABLE sessions (
    id                  UUID PRIMARY KEY,
    user_id             UUID NOT NULL REFERENCES users (id),
    -- How the session began: password, passkey or google.
    method              TEXT NOT NULL,
    user_agent          TEXT,
    ip                  TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    last_used_at        TIMESTAMPTZ NOT NULL,
    -- Unused for this long, or alive past the absolute limit, the session ends.
    idle_expires_at     TIMESTAMPTZ NOT NULL,
    absolute_expires_at TIMESTAMPTZ NOT NULL,
    revoked_at          TIMESTAMPTZ,
    -- logout, logout_all, revoked, reuse_detected, password_changed, password_reset
    revoked_reason      TEXT
);
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at);

CREATE TABLE refresh_tokens (
    -- SHA-256 of the opaque token; the token itself is never stored.
    token_hash  TEXT PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES sessions (id),
    created_at  TIMESTAMPTZ NOT NULL,
    -- Set when the token was exchanged for the next one.
    rotated_at  TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);
