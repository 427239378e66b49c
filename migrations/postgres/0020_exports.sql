-- Dataset exports: what was asked (the checked request as JSON), where the run is, and
-- the finished artifact's blob. The work itself is an `export` job. Same file name and
-- meaning as migrations/sqlite/0020_exports.sql.

CREATE TABLE exports (
    id            UUID PRIMARY KEY,
    project_id    UUID NOT NULL REFERENCES projects (id),
    created_by    UUID NOT NULL REFERENCES users (id),
    format        TEXT NOT NULL,
    -- The checked request: format, filter, include_files, split.
    spec          JSONB NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'failed')),
    -- Items are those created and decided (if at all) by this time: an incremental
    -- export takes items decided after its predecessor's snapshot.
    snapshot_at   TIMESTAMPTZ NOT NULL,
    items_done    BIGINT NOT NULL DEFAULT 0,
    items_total   BIGINT,
    bytes         BIGINT NOT NULL DEFAULT 0,
    -- The artifact, once finished.
    blob_key      TEXT,
    file_name     TEXT,
    content_type  TEXT,
    sha256        TEXT,
    error         TEXT,
    job_id        UUID,
    created_at    TIMESTAMPTZ NOT NULL,
    started_at    TIMESTAMPTZ,
    finished_at   TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ
);
CREATE INDEX exports_project_idx ON exports (project_id, id);
CREATE INDEX exports_expiry_idx ON exports (expires_at) WHERE expires_at IS NOT NULL;

-- The export scan walks a project's live items of some states in id order.
CREATE INDEX items_export_idx ON items (project_id, status, id) WHERE deleted_at IS NULL;
