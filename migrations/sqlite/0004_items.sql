-- Data items: documents and voice recordings, their blob and their lifecycle.
-- Same file name and meaning as migrations/postgres/0004_items.sql (SQLite types as in 0001).

CREATE TABLE items (
    id             BLOB PRIMARY KEY,
    project_id     BLOB NOT NULL REFERENCES projects (id),
    kind           TEXT NOT NULL CHECK (kind IN ('document', 'audio')),
    contributor_id BLOB NOT NULL REFERENCES users (id),
    -- The item state machine (actors/src/items/state.rs) owns transitions.
    status         TEXT NOT NULL,
    title          TEXT,
    language       TEXT,
    -- The client's own id, unique per project.
    external_id    TEXT,
    metadata       TEXT NOT NULL,
    -- The client's file name, sanitised, for Content-Disposition only (never a path).
    file_name      TEXT NOT NULL,
    -- Decided from the content (magic bytes), never from the client's claim.
    detected_type  TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL,
    sha256         TEXT NOT NULL,
    blob_key       TEXT NOT NULL,
    audio          TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    deleted_at     TEXT
);
CREATE UNIQUE INDEX items_project_sha256_live_key ON items (project_id, sha256) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX items_project_external_id_live_key ON items (project_id, external_id)
    WHERE deleted_at IS NULL AND external_id IS NOT NULL;
CREATE INDEX items_project_kind_idx ON items (project_id, kind, id);
CREATE INDEX items_contributor_idx ON items (contributor_id, id);

-- Bytes stored per project, kept in the same transaction as each item change.
ALTER TABLE projects ADD COLUMN storage_bytes INTEGER NOT NULL DEFAULT 0;
