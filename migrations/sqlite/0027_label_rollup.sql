-- The label distribution for the analytics: live items per project, field and value of
-- their current annotation (label and multi_label fields, as `annotation_labels` holds
-- them), and the UTC hour of the item's upload, so that a period's items can be
-- counted too. Kept by triggers like the other rollups; rebuilt by `alta admin recount`.
-- Same file name and meaning as migrations/postgres/0027_label_rollup.sql.

CREATE TABLE rollup_labels (
    project_id BLOB NOT NULL,
    field      TEXT NOT NULL,
    value      TEXT NOT NULL,
    -- The item's upload, to the hour.
    hour       TEXT NOT NULL,
    items      INTEGER NOT NULL,
    PRIMARY KEY (project_id, field, value, hour)
);

-- A label row comes or goes with an annotation revision (of a live item).
CREATE TRIGGER annotation_labels_rollup_insert AFTER INSERT ON annotation_labels
BEGIN
    INSERT INTO rollup_labels (project_id, field, value, hour, items)
    SELECT NEW.project_id, NEW.field, NEW.value, strftime('%Y-%m-%dT%H:00:00+00:00', created_at), 1
    FROM items WHERE id = NEW.item_id AND deleted_at IS NULL
    ON CONFLICT (project_id, field, value, hour) DO UPDATE SET items = items + excluded.items;
END;

CREATE TRIGGER annotation_labels_rollup_delete AFTER DELETE ON annotation_labels
BEGIN
    INSERT INTO rollup_labels (project_id, field, value, hour, items)
    SELECT OLD.project_id, OLD.field, OLD.value, strftime('%Y-%m-%dT%H:00:00+00:00', created_at), -1
    FROM items WHERE id = OLD.item_id AND deleted_at IS NULL
    ON CONFLICT (project_id, field, value, hour) DO UPDATE SET items = items + excluded.items;
END;

-- An item deleted (or back) takes its labels out of (into) the figures.
CREATE TRIGGER items_labels AFTER UPDATE OF deleted_at ON items
WHEN (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO rollup_labels (project_id, field, value, hour, items)
    SELECT project_id, field, value, strftime('%Y-%m-%dT%H:00:00+00:00', NEW.created_at),
        CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END
    FROM annotation_labels WHERE item_id = NEW.id
    ON CONFLICT (project_id, field, value, hour) DO UPDATE SET items = items + excluded.items;
END;

-- What exists already.
INSERT INTO rollup_labels (project_id, field, value, hour, items)
SELECT l.project_id, l.field, l.value, strftime('%Y-%m-%dT%H:00:00+00:00', i.created_at), COUNT(*)
FROM annotation_labels l JOIN items i ON i.id = l.item_id
WHERE i.deleted_at IS NULL
GROUP BY l.project_id, l.field, l.value, strftime('%Y-%m-%dT%H:00:00+00:00', i.created_at);
