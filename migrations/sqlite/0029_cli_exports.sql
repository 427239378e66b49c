-- An export written by `alta export` on the server is recorded too (so a later export
-- can take only what was decided since it): it has no author among the users and no
-- artifact in the blob store (its file is where the command wrote it). SQLite cannot
-- drop a NOT NULL in place: the table is made again with the same rows and indexes.
-- Same file name as migrations/postgres/0029_cli_exports.sql.

CREATE TABLE exports_new (
    id            BLOB PRIMARY KEY,
    project_id    BLOB NOT NULL REFERENCES projects (id),
    -- None: written by `alta export`.
    created_by    BLOB REFERENCES users (id),
    format        TEXT NOT NULL,
    spec          TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('queued', 'running', 'finished', 'failed')),
    snapshot_at   TEXT NOT NULL,
    items_done    INTEGER NOT NULL DEFAULT 0,
    items_total   INTEGER,
    bytes         INTEGER NOT NULL DEFAULT 0,
    blob_key      TEXT,
    file_name     TEXT,
    content_type  TEXT,
    sha256        TEXT,
    error         TEXT,
    job_id        BLOB,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    expires_at    TEXT
);
INSERT INTO exports_new SELECT * FROM exports;
DROP TABLE exports;
ALTER TABLE exports_new RENAME TO exports;
CREATE INDEX exports_project_idx ON exports (project_id, id);
CREATE INDEX exports_expiry_idx ON exports (expires_at) WHERE expires_at IS NOT NULL;
