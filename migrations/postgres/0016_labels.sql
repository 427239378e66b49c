-- Labelling: a versioned label schema per project, and each item's annotation as a
-- list of revisions (the newest is current). Same file name and meaning as
-- migrations/sqlite/0016_labels.sql.

CREATE TABLE label_schemas (
    project_id UUID NOT NULL REFERENCES projects (id),
    -- 1, 2, 3, ...: every change is a new version; earlier ones stay readable.
    version    INTEGER NOT NULL,
    -- The fields, normalised (defaults filled in), as the API shows them.
    fields     JSONB NOT NULL,
    created_by UUID NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (project_id, version)
);

CREATE TABLE annotation_revisions (
    item_id        UUID NOT NULL REFERENCES items (id),
    -- 1, 2, 3, ...: the newest is the item's annotation.
    revision       INTEGER NOT NULL,
    project_id     UUID NOT NULL REFERENCES projects (id),
    -- The schema version the values were checked against.
    schema_version INTEGER NOT NULL,
    -- {field name: value}.
    label_values   JSONB NOT NULL,
    -- The text revision that span offsets count in (documents).
    text_revision  INTEGER,
    author_id      UUID NOT NULL REFERENCES users (id),
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (item_id, revision)
);
-- A project's annotations, for "which annotations use this field or option?".
CREATE INDEX annotation_revisions_project_idx ON annotation_revisions (project_id, item_id);
