-- Password reset links: single use, short-lived, only their SHA-256 stored (like
-- email_verification_tokens, whose store functions serve both tables). Same file name and
-- meaning as migrations/postgres/0010_password_resets.sql (SQLite types as in 0001).

CREATE TABLE password_reset_tokens (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id),
    token_hash  TEXT NOT NULL UNIQUE,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    used_at     TEXT
);
CREATE INDEX password_reset_tokens_user_idx ON password_reset_tokens (user_id);
