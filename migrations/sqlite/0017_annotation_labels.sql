-- The label and multi_label values of each item's current annotation, one row each, so
-- that lists filtered by label read an index instead of every annotation. Same file name
-- and meaning as migrations/postgres/0017_annotation_labels.sql.

CREATE TABLE annotation_labels (
    item_id    BLOB NOT NULL REFERENCES items (id),
    project_id BLOB NOT NULL REFERENCES projects (id),
    field      TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (item_id, field, value)
);
CREATE INDEX annotation_labels_lookup_idx ON annotation_labels (project_id, field, value, item_id);
