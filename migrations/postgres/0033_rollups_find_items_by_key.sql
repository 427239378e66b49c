-- The rollup triggers that look up one item find it by its key alone, and then check
-- that it is live. Written as `WHERE id = … AND deleted_at IS NULL`, the lookup let the
-- planner choose a partial index whose predicate is `deleted_at IS NULL`
-- (`items_export_idx`, on project, status and id) and read every live item's entry to
-- find one: on a table without statistics yet (a new database, or one that grew faster
-- than autovacuum analysed it), PostgreSQL 15 does so, and PL/pgSQL keeps that plan for
-- the connection. Seen in a benchmark's processing outcomes: the engine rollup's lookup
-- went through that index in more than half of its calls, so each outcome read more the
-- more items there were.
-- Same file name as migrations/sqlite/0033_rollups_find_items_by_key.sql.

CREATE OR REPLACE FUNCTION rollup_engines_text() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    it items%ROWTYPE;
    previous TEXT;
BEGIN
    SELECT * INTO it FROM items WHERE id = NEW.item_id;
    IF NOT FOUND OR it.deleted_at IS NOT NULL THEN
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

CREATE OR REPLACE FUNCTION rollup_submissions_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    live BOOLEAN;
BEGIN
    SELECT deleted_at IS NULL INTO live FROM items WHERE id = NEW.item_id;
    IF live THEN
        PERFORM rollup_hours_add(NEW.project_id, 'submission', rollup_hour(NEW.submitted_at),
            1, 0);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION rollup_labels_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    born TIMESTAMPTZ;
    live BOOLEAN;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT created_at, deleted_at IS NULL INTO born, live FROM items WHERE id = NEW.item_id;
        IF live THEN
            PERFORM rollup_labels_add(NEW.project_id, NEW.field, NEW.value, rollup_hour(born), 1);
        END IF;
    ELSE
        SELECT created_at, deleted_at IS NULL INTO born, live FROM items WHERE id = OLD.item_id;
        IF live THEN
            PERFORM rollup_labels_add(OLD.project_id, OLD.field, OLD.value, rollup_hour(born),
                -1);
        END IF;
    END IF;
    RETURN NULL;
END
$$;
