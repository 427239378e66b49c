-- Machine suggestions for an item's annotation, kept apart from the human values: one
-- per item and source (a pipeline's model, say), replaced when the source posts again.
-- A contributor accepts them into values. Suggestions drawn from a transcription's word
-- timings are not stored: they are read from the text. Same file name and meaning as
-- migrations/sqlite/0018_annotation_suggestions.sql.

CREATE TABLE annotation_suggestions (
    item_id        UUID NOT NULL REFERENCES items (id),
    source         TEXT NOT NULL,
    project_id     UUID NOT NULL REFERENCES projects (id),
    -- The schema version the values were checked against.
    schema_version INTEGER NOT NULL,
    -- {field name: value}, as in annotation_revisions.
    label_values   JSONB NOT NULL,
    -- The source's confidence, 0 to 1.
    score          DOUBLE PRECISION,
    -- The text revision that span offsets count in (documents).
    text_revision  INTEGER,
    author_id      UUID NOT NULL REFERENCES users (id),
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (item_id, source)
);
