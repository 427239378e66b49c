-- Idempotency keys: the first response to a creating POST, per user and key.
-- Same file name and meaning as migrations/postgres/0003_idempotency.sql (SQLite types as in 0001).

CREATE TABLE idempotency_keys (
    user_id      BLOB NOT NULL,
    key          TEXT NOT NULL,
    -- "METHOD /route/template" the key was first used with.
    route        TEXT NOT NULL,
    -- SHA-256 of the canonical request; the same key with another body is refused.
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
    status       INTEGER,
    response     TEXT,
    created_at   TEXT NOT NULL,
    -- While in progress: until when the claim holds (a crashed request frees it).
    locked_until TEXT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
