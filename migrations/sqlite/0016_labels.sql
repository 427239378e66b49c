-- Labelling: a versioned label schema per project, and each item's annotation as a
-- list of revisions (the newest is current). Same file name and meaning as
-- migrations/postgres/0016_labels.sql.

CREATE TABLE label_schemas (
    project_id BLOB NOT NULL REFERENCES projects (id),
    -- 1, 2, 3, ...: every change is a new version; earlier ones stay readable.
    version    INTEGER NOT NULL,
    -- The fields, normalised (defaults filled in), as the API shows them.
    fields     TEXT NOT NULL,
    created_by BLOB NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (project_id, version)
);

CREATE TABLE annotation_revisions (
    item_id        BLOB NOT NULL REFERENCES items (id),
    -- 1, 2, 3, ...: the newest is the item's annotation.
    revision       INTEGER NOT NULL,
    project_id     BLOB NOT NULL REFERENCES projects (id),
    -- The schema version the values were checked against.
    schema_version INTEGER NOT NULL,
    -- {field name: value}.
    label_values   TEXT NOT NULL,
    -- The text revision that span offsets count in (documents).
    text_revision  INTEGER,
    author_id      BLOB NOT NULL REFERENCES users (id),
    created_at     TEXT NOT NULL,
    PRIMARY KEY (item_id, revision)
);
-- A project's annotations, for "which annotations use this field or option?".
CREATE INDEX annotation_revisions_project_idx ON annotation_revisions (project_id, item_id);
