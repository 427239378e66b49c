-- Resumable (tus 1.0) uploads in progress. The bytes received so far live in
-- $DATA_DIR/blobs/.resumable/<id>; upload_offset is the committed length of that file.
-- Same file name and meaning as migrations/postgres/0005_resumable_uploads.sql.

CREATE TABLE resumable_uploads (
    id              BLOB PRIMARY KEY,
    user_id         BLOB NOT NULL REFERENCES users (id),
    project_id      BLOB NOT NULL REFERENCES projects (id),
    kind            TEXT NOT NULL CHECK (kind IN ('document', 'audio')),
    upload_length   INTEGER NOT NULL CHECK (upload_length > 0),
    upload_offset   INTEGER NOT NULL DEFAULT 0,
    -- The Upload-Metadata header as received, echoed on HEAD.
    raw_metadata    TEXT NOT NULL,
    -- The parsed fields (file name, declared type, title, language, external id, metadata).
    fields          TEXT NOT NULL,
    -- receiving | completed | failed
    state           TEXT NOT NULL,
    item_id         BLOB,
    error_code      TEXT,
    error_detail    TEXT,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    expires_at      TEXT NOT NULL
);
CREATE INDEX resumable_uploads_expires_idx ON resumable_uploads (expires_at);
CREATE INDEX resumable_uploads_user_idx ON resumable_uploads (user_id, state);
