-- Processing outcomes for the analytics: live items by the engine of their current
-- machine text, and live items whose processing failed by failure code. Kept by
-- triggers like the other rollups; rebuilt by `alta admin recount`. Same file name and
-- meaning as migrations/sqlite/0026_processing_rollups.sql.

CREATE TABLE rollup_engines (
    project_id UUID NOT NULL,
    kind       TEXT NOT NULL,
    engine     TEXT NOT NULL,
    items      BIGINT NOT NULL,
    PRIMARY KEY (project_id, kind, engine)
);

CREATE TABLE rollup_failures (
    project_id UUID NOT NULL,
    kind       TEXT NOT NULL,
    -- '' when the item has none.
    code       TEXT NOT NULL,
    items      BIGINT NOT NULL,
    PRIMARY KEY (project_id, kind, code)
);

CREATE FUNCTION rollup_engines_add(p UUID, k TEXT, e TEXT, n BIGINT)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO rollup_engines (project_id, kind, engine, items) VALUES (p, k, e, n)
    ON CONFLICT (project_id, kind, engine) DO UPDATE SET
        items = rollup_engines.items + EXCLUDED.items
$$;

-- The engine of an item's newest machine text other than `skip_id`.
CREATE FUNCTION rollup_latest_engine(item UUID, skip_id UUID) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT COALESCE(engine, '') FROM item_texts
    WHERE item_id = item AND source = 'machine' AND id <> skip_id
    ORDER BY revision DESC LIMIT 1
$$;

-- A new machine text: its item moves from the engine of the one before (if any) to
-- this one's.
CREATE FUNCTION rollup_engines_text() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    it items%ROWTYPE;
    previous TEXT;
BEGIN
    SELECT * INTO it FROM items WHERE id = NEW.item_id AND deleted_at IS NULL;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    previous := rollup_latest_engine(NEW.item_id, NEW.id);
    IF previous IS NOT NULL THEN
        PERFORM rollup_engines_add(it.project_id, it.kind, previous, -1);
    END IF;
    PERFORM rollup_engines_add(it.project_id, it.kind, COALESCE(NEW.engine, ''), 1);
    RETURN NULL;
END
$$;

CREATE TRIGGER item_texts_engines AFTER INSERT ON item_texts
    FOR EACH ROW WHEN (NEW.source = 'machine') EXECUTE FUNCTION rollup_engines_text();

CREATE FUNCTION rollup_processing_item() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    latest TEXT;
BEGIN
    -- Failures follow the item's state, code and life.
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL AND OLD.status = 'processing_failed' THEN
        UPDATE rollup_failures SET items = items - 1
        WHERE project_id = OLD.project_id AND kind = OLD.kind
            AND code = COALESCE(OLD.processing_error_code, '');
    END IF;
    IF NEW.deleted_at IS NULL AND NEW.status = 'processing_failed' THEN
        INSERT INTO rollup_failures (project_id, kind, code, items)
        VALUES (NEW.project_id, NEW.kind, COALESCE(NEW.processing_error_code, ''), 1)
        ON CONFLICT (project_id, kind, code) DO UPDATE SET
            items = rollup_failures.items + 1;
    END IF;
    -- A deleted item (or one back) takes its engine out of (into) the figures.
    IF TG_OP = 'UPDATE' AND (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) THEN
        latest := rollup_latest_engine(NEW.id, '00000000-0000-0000-0000-000000000000');
        IF latest IS NOT NULL THEN
            PERFORM rollup_engines_add(NEW.project_id, NEW.kind, latest,
                CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER items_processing_insert AFTER INSERT ON items
    FOR EACH ROW WHEN (NEW.status = 'processing_failed')
    EXECUTE FUNCTION rollup_processing_item();
CREATE TRIGGER items_processing_update AFTER UPDATE OF status, processing_error_code,
    deleted_at ON items
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR OLD.processing_error_code IS DISTINCT FROM NEW.processing_error_code
        OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION rollup_processing_item();

-- What exists already.
INSERT INTO rollup_failures (project_id, kind, code, items)
SELECT project_id, kind, COALESCE(processing_error_code, ''), COUNT(*)
FROM items WHERE deleted_at IS NULL AND status = 'processing_failed'
GROUP BY project_id, kind, COALESCE(processing_error_code, '');

INSERT INTO rollup_engines (project_id, kind, engine, items)
SELECT i.project_id, i.kind, rollup_latest_engine(i.id, '00000000-0000-0000-0000-000000000000') AS engine,
    COUNT(*)
FROM items i
WHERE i.deleted_at IS NULL
    AND EXISTS (SELECT 1 FROM item_texts t WHERE t.item_id = i.id AND t.source = 'machine')
GROUP BY i.project_id, i.kind, engine;
