-- The rollup helpers that write or read a table, in PL/pgSQL instead of SQL: same names,
-- arguments and results. PostgreSQL 15 cannot inline a SQL function whose body has a
-- `FROM` or is an `INSERT`, and it plans such a body again at every call; PL/pgSQL keeps
-- each statement's plan for the life of the connection. A processing outcome's
-- `item_texts_engines` trigger calls two of them: its one statement took 0.15 ms less,
-- about a fifth of it (pgbench `-M prepared`, one client, the outcome's statement on a
-- benchmark's database, each transaction rolled back: 1.05-1.06 ms against 1.18-1.25
-- ms, of which 0.43 ms is the transaction around it).
-- The helpers that only compute a value (`rollup_hour`, `rollup_audio_ms`,
-- `rollup_verdict_*`) stay SQL: those are inlined into the statement that calls them.
-- Same file name as migrations/sqlite/0032_rollup_helpers_plpgsql.sql.

CREATE OR REPLACE FUNCTION rollup_hours_add(p UUID, e TEXT, h TIMESTAMPTZ, n BIGINT, ms BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms) VALUES (p, e, h, n, ms)
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = rollup_hours.items + EXCLUDED.items,
        audio_ms = rollup_hours.audio_ms + EXCLUDED.audio_ms;
END
$$;

CREATE OR REPLACE FUNCTION rollup_engines_add(p UUID, k TEXT, e TEXT, n BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_engines (project_id, kind, engine, items) VALUES (p, k, e, n)
    ON CONFLICT (project_id, kind, engine) DO UPDATE SET
        items = rollup_engines.items + EXCLUDED.items;
END
$$;

-- The engine of an item's newest machine text other than `skip_id` ('' for a text
-- without one), NULL when it has none.
CREATE OR REPLACE FUNCTION rollup_latest_engine(item UUID, skip_id UUID) RETURNS TEXT
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT COALESCE(engine, '') FROM item_texts
        WHERE item_id = item AND source = 'machine' AND id <> skip_id
        ORDER BY revision DESC LIMIT 1
    );
END
$$;

CREATE OR REPLACE FUNCTION rollup_labels_add(p UUID, f TEXT, v TEXT, h TIMESTAMPTZ, n BIGINT)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_labels (project_id, field, value, hour, items) VALUES (p, f, v, h, n)
    ON CONFLICT (project_id, field, value, hour) DO UPDATE SET
        items = rollup_labels.items + EXCLUDED.items;
END
$$;
