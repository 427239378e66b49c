-- Resumable (tus 1.0) uploads in progress. The bytes received so far live in
-- $DATA_DIR/blobs/.resumable/<id>; upload_offset is the committed length of that file.
-- Same file name and meaning as migrations/sqlite/0005_resumable_uploads.sql.

CREATE TABLE resumable_uploads (
    id              UUID PRIMARY KEY,
    user_id         UUID NOT NULL REFERENCES users (id),
    project_id      UUID NOT NULL REFERENCES projects (id),
    kind            TEXT NOT NULL CHECK (kind IN ('document', 'audio')),
    upload_length   BIGINT NOT NULL CHECK (upload_length > 0),
    upload_offset   BIGINT NOT NULL DEFAULT 0,
    -- The Upload-Metadata header as received, echoed on HEAD.
    raw_metadata    TEXT NOT NULL,
    -- The parsed fields (file name, declared type, title, language, external id, metadata).
    fields          JSONB NOT NULL,
    -- receiving | completed | failed
    state           TEXT NOT NULL,
    item_id         UUID,
    error_code      TEXT,
    error_detail    TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX resumable_uploads_expires_idx ON resumable_uploads (expires_at);
CREATE INDEX resumable_uploads_user_idx ON resumable_uploads (user_id, state);
