-- Data items: documents and voice recordings, their blob and their lifecycle.
-- Same file name and meaning as migrations/sqlite/0004_items.sql.

CREATE TABLE items (
    id             UUID PRIMARY KEY,
    project_id     UUID NOT NULL REFERENCES projects (id),
    kind           TEXT NOT NULL CHECK (kind IN ('document', 'audio')),
    contributor_id UUID NOT NULL REFERENCES users (id),
    -- The item state machine (actors/src/items/state.rs) owns transitions.
    status         TEXT NOT NULL,
    title          TEXT,
    language       TEXT,
    -- The client's own id, unique per project.
    external_id    TEXT,
    metadata       JSONB NOT NULL,
    -- The client's file name, sanitised, for Content-Disposition only (never a path).
    file_name      TEXT NOT NULL,
    -- Decided from the content (magic bytes), never from the client's claim.
    detected_type  TEXT NOT NULL,
    content_type   TEXT NOT NULL,
    size_bytes     BIGINT NOT NULL,
    sha256         TEXT NOT NULL,
    blob_key       TEXT NOT NULL,
    audio          JSONB,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    deleted_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX items_project_sha256_live_key ON items (project_id, sha256) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX items_project_external_id_live_key ON items (project_id, external_id)
    WHERE deleted_at IS NULL AND external_id IS NOT NULL;
CREATE INDEX items_project_kind_idx ON items (project_id, kind, id);
CREATE INDEX items_contributor_idx ON items (contributor_id, id);

-- Bytes stored per project, kept in the same transaction as each item change.
ALTER TABLE projects ADD COLUMN storage_bytes BIGINT NOT NULL DEFAULT 0;
