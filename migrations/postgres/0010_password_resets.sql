-- Password reset links: single use, short-lived, only their SHA-256 stored (like
-- email_verification_tokens, whose store functions serve both tables). Same file name and
-- meaning as migrations/sqlite/0010_password_resets.sql.

CREATE TABLE password_reset_tokens (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id),
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX password_reset_tokens_user_idx ON password_reset_tokens (user_id);
