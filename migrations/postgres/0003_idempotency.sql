-- Idempotency keys: the first response to a creating POST, per user and key.
-- Same file name and meaning as migrations/sqlite/0003_idempotency.sql.

CREATE TABLE idempotency_keys (
    user_id      UUID NOT NULL,
    key          TEXT NOT NULL,
    -- "METHOD /route/template" the key was first used with.
    route        TEXT NOT NULL,
    -- SHA-256 of the canonical request; the same key with another body is refused.
    fingerprint  TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('in_progress', 'completed')),
    status       INTEGER,
    response     TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    -- While in progress: until when the claim holds (a crashed request frees it).
    locked_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
