-- The label distribution for the analytics: live items per project, field and value of
-- their current annotation (label and multi_label fields, as `annotation_labels` holds
-- them), and the UTC hour of the item's upload, so that a period's items can be
-- counted too. Kept by triggers like the other rollups; rebuilt by `alta admin recount`.
-- Same file name and meaning as migrations/sqlite/0027_label_rollup.sql.

CREATE TABLE rollup_labels (
    project_id UUID NOT NULL,
    field      TEXT NOT NULL,
    value      TEXT NOT NULL,
    -- The item's upload, to the hour.
    hour       TIMESTAMPTZ NOT NULL,
    items      BIGINT NOT NULL,
    PRIMARY KEY (project_id, field, value, hour)
);

CREATE FUNCTION rollup_labels_add(p UUID, f TEXT, v TEXT, h TIMESTAMPTZ, n BIGINT)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO rollup_labels (project_id, field, value, hour, items) VALUES (p, f, v, h, n)
    ON CONFLICT (project_id, field, value, hour) DO UPDATE SET
        items = rollup_labels.items + EXCLUDED.items
$$;

-- A label row comes or goes with an annotation revision (of a live item).
CREATE FUNCTION rollup_labels_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM rollup_labels_add(NEW.project_id, NEW.field, NEW.value,
            rollup_hour(created_at), 1)
        FROM items WHERE id = NEW.item_id AND deleted_at IS NULL;
    ELSE
        PERFORM rollup_labels_add(OLD.project_id, OLD.field, OLD.value,
            rollup_hour(created_at), -1)
        FROM items WHERE id = OLD.item_id AND deleted_at IS NULL;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER annotation_labels_rollup AFTER INSERT OR DELETE ON annotation_labels
    FOR EACH ROW EXECUTE FUNCTION rollup_labels_row();

-- An item deleted (or back) takes its labels out of (into) the figures.
CREATE FUNCTION rollup_labels_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rollup_labels_add(project_id, field, value, rollup_hour(NEW.created_at),
        CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END)
    FROM annotation_labels WHERE item_id = NEW.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER items_labels AFTER UPDATE OF deleted_at ON items
    FOR EACH ROW WHEN ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
    EXECUTE FUNCTION rollup_labels_item();

-- What exists already.
INSERT INTO rollup_labels (project_id, field, value, hour, items)
SELECT l.project_id, l.field, l.value, rollup_hour(i.created_at), COUNT(*)
FROM annotation_labels l JOIN items i ON i.id = l.item_id
WHERE i.deleted_at IS NULL
GROUP BY l.project_id, l.field, l.value, rollup_hour(i.created_at);
