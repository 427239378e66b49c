-- Who contributed when: live uploads per project, contributor and UTC hour, so that the
-- series can count the contributors active in each bucket and in the whole period
-- without reading items. Kept by triggers like the other rollups; rebuilt by
-- `alta admin recount`. Same file name and meaning as
-- migrations/sqlite/0025_contributor_hours.sql.

CREATE TABLE rollup_contributor_hours (
    project_id     UUID NOT NULL,
    contributor_id UUID NOT NULL,
    hour           TIMESTAMPTZ NOT NULL,
    uploads        BIGINT NOT NULL,
    PRIMARY KEY (project_id, hour, contributor_id)
);
-- The platform's series read every project's hours in a period.
CREATE INDEX rollup_contributor_hours_hour_idx ON rollup_contributor_hours (hour);

CREATE FUNCTION rollup_contributor_hours_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_contributor_hours (project_id, contributor_id, hour, uploads)
    VALUES (NEW.project_id, NEW.contributor_id, rollup_hour(NEW.created_at),
        CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END)
    ON CONFLICT (project_id, hour, contributor_id) DO UPDATE SET
        uploads = rollup_contributor_hours.uploads + EXCLUDED.uploads;
    RETURN NULL;
END
$$;

-- An upload counts while its item lives: in at insert, out on delete, back on restore.
CREATE TRIGGER items_contributor_hours_insert AFTER INSERT ON items
    FOR EACH ROW WHEN (NEW.deleted_at IS NULL)
    EXECUTE FUNCTION rollup_contributor_hours_change();
CREATE TRIGGER items_contributor_hours_update AFTER UPDATE OF deleted_at ON items
    FOR EACH ROW WHEN ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
    EXECUTE FUNCTION rollup_contributor_hours_change();

-- What exists already.
INSERT INTO rollup_contributor_hours (project_id, contributor_id, hour, uploads)
SELECT project_id, contributor_id, rollup_hour(created_at), COUNT(*)
FROM items WHERE deleted_at IS NULL
GROUP BY project_id, contributor_id, rollup_hour(created_at);
