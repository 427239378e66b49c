-- Processing outcomes for the analytics: live items by the engine of their current
-- machine text, and live items whose processing failed by failure code. Kept by
-- triggers like the other rollups; rebuilt by `alta admin recount`. Same file name and
-- meaning as migrations/postgres/0026_processing_rollups.sql.

CREATE TABLE rollup_engines (
    project_id BLOB NOT NULL,
    kind       TEXT NOT NULL,
    engine     TEXT NOT NULL,
    items      INTEGER NOT NULL,
    PRIMARY KEY (project_id, kind, engine)
);

CREATE TABLE rollup_failures (
    project_id BLOB NOT NULL,
    kind       TEXT NOT NULL,
    -- '' when the item has none.
    code       TEXT NOT NULL,
    items      INTEGER NOT NULL,
    PRIMARY KEY (project_id, kind, code)
);

-- A new machine text: its item moves from the engine of the one before (if any) to
-- this one's.
CREATE TRIGGER item_texts_engines AFTER INSERT ON item_texts
WHEN NEW.source = 'machine'
BEGIN
    INSERT INTO rollup_engines (project_id, kind, engine, items)
    SELECT i.project_id, i.kind, COALESCE(t.engine, ''), -1
    FROM items i JOIN item_texts t ON t.id = (
        SELECT id FROM item_texts WHERE item_id = NEW.item_id AND source = 'machine'
            AND id <> NEW.id ORDER BY revision DESC LIMIT 1)
    WHERE i.id = NEW.item_id AND i.deleted_at IS NULL
    ON CONFLICT (project_id, kind, engine) DO UPDATE SET items = items + excluded.items;
    INSERT INTO rollup_engines (project_id, kind, engine, items)
    SELECT project_id, kind, COALESCE(NEW.engine, ''), 1
    FROM items WHERE id = NEW.item_id AND deleted_at IS NULL
    ON CONFLICT (project_id, kind, engine) DO UPDATE SET items = items + excluded.items;
END;

-- Failures follow the item's state, code and life.
CREATE TRIGGER items_processing_insert AFTER INSERT ON items
WHEN NEW.status = 'processing_failed' AND NEW.deleted_at IS NULL
BEGIN
    INSERT INTO rollup_failures (project_id, kind, code, items)
    VALUES (NEW.project_id, NEW.kind, COALESCE(NEW.processing_error_code, ''), 1)
    ON CONFLICT (project_id, kind, code) DO UPDATE SET items = items + 1;
END;

CREATE TRIGGER items_processing_update AFTER UPDATE OF status, processing_error_code,
    deleted_at ON items
WHEN OLD.status IS NOT NEW.status
    OR OLD.processing_error_code IS NOT NEW.processing_error_code
    OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN
    UPDATE rollup_failures SET items = items - 1
    WHERE OLD.deleted_at IS NULL AND OLD.status = 'processing_failed'
        AND project_id = OLD.project_id AND kind = OLD.kind
        AND code = COALESCE(OLD.processing_error_code, '');
    INSERT INTO rollup_failures (project_id, kind, code, items)
    SELECT NEW.project_id, NEW.kind, COALESCE(NEW.processing_error_code, ''), 1
    WHERE NEW.deleted_at IS NULL AND NEW.status = 'processing_failed'
    ON CONFLICT (project_id, kind, code) DO UPDATE SET items = items + 1;
    -- A deleted item (or one back) takes its engine out of (into) the figures.
    INSERT INTO rollup_engines (project_id, kind, engine, items)
    SELECT NEW.project_id, NEW.kind, COALESCE(t.engine, ''),
        CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END
    FROM item_texts t
    WHERE (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
        AND t.id = (SELECT id FROM item_texts WHERE item_id = NEW.id AND source = 'machine'
            ORDER BY revision DESC LIMIT 1)
    ON CONFLICT (project_id, kind, engine) DO UPDATE SET items = items + excluded.items;
END;

-- What exists already.
INSERT INTO rollup_failures (project_id, kind, code, items)
SELECT project_id, kind, COALESCE(processing_error_code, ''), COUNT(*)
FROM items WHERE deleted_at IS NULL AND status = 'processing_failed'
GROUP BY project_id, kind, COALESCE(processing_error_code, '');

INSERT INTO rollup_engines (project_id, kind, engine, items)
SELECT i.project_id, i.kind, COALESCE(t.engine, ''), COUNT(*)
FROM items i JOIN item_texts t ON t.id = (
    SELECT id FROM item_texts WHERE item_id = i.id AND source = 'machine'
    ORDER BY revision DESC LIMIT 1)
WHERE i.deleted_at IS NULL
GROUP BY i.project_id, i.kind, COALESCE(t.engine, '');
