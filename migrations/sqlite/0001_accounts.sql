-- Accounts, verification tokens, the durable job queue and the audit log.
-- Same file name and meaning as migrations/postgres/0001_accounts.sql.
-- SQLite types: UUID as 16-byte BLOB, timestamps as RFC 3339 TEXT (UTC), JSON as TEXT.

CREATE TABLE users (
    id                BLOB PRIMARY KEY,
    email             TEXT NOT NULL,
    full_name         TEXT,
    password_hash     TEXT,
    role              TEXT NOT NULL CHECK (role IN ('super_admin', 'user')),
    email_verified    BOOLEAN NOT NULL DEFAULT 0,
    email_verified_at TEXT,
    last_login_at     TEXT,
    disabled_at       TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    deleted_at        TEXT
);
-- One live account per (normalised) email; a soft-deleted account frees its address.
CREATE UNIQUE INDEX users_email_live_key ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE email_verification_tokens (
    id         BLOB PRIMARY KEY,
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    expires_at TEXT NOT NULL,
    used_at    TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX email_verification_tokens_user_idx ON email_verification_tokens (user_id);

CREATE TABLE jobs (
    id           BLOB PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    run_at       TEXT NOT NULL,
    lease_until  TEXT,
    locked_by    TEXT,
    last_error   TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    finished_at  TEXT
);
CREATE INDEX jobs_claim_idx ON jobs (kind, state, run_at);

CREATE TABLE audit_log (
    id          BLOB PRIMARY KEY,
    actor_id    BLOB,
    action      TEXT NOT NULL,
    target_type TEXT NOT NULL,
    target_id   TEXT,
    project_id  BLOB,
    request_id  TEXT,
    ip          TEXT,
    user_agent  TEXT,
    details     TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE INDEX audit_log_actor_idx ON audit_log (actor_id, at);
