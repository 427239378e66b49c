-- Time from a round's submission to its verdict (the deciding decision), counted per
-- project, verdict and bucket, so that the summary's median and 90th percentile need no
-- scan. A bucket is the first of these upper bounds, in seconds, that the time does not
-- exceed: 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 345600, 604800,
-- 1209600, 2592000; bucket 14 is anything longer (domain::verdict_times keeps the same
-- list). Live items only, as every rollup; kept by triggers like those of 0019.
-- Same file name and meaning as migrations/sqlite/0023_verdict_times.sql.

CREATE TABLE rollup_verdict_times (
    project_id UUID NOT NULL,
    verdict    TEXT NOT NULL,
    bucket     INTEGER NOT NULL,
    items      BIGINT NOT NULL,
    PRIMARY KEY (project_id, verdict, bucket)
);

CREATE FUNCTION rollup_verdict_bucket(seconds float8) RETURNS INTEGER LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN seconds <= 60 THEN 0 WHEN seconds <= 300 THEN 1 WHEN seconds <= 900 THEN 2
        WHEN seconds <= 1800 THEN 3 WHEN seconds <= 3600 THEN 4 WHEN seconds <= 7200 THEN 5
        WHEN seconds <= 14400 THEN 6 WHEN seconds <= 28800 THEN 7 WHEN seconds <= 86400 THEN 8
        WHEN seconds <= 172800 THEN 9 WHEN seconds <= 345600 THEN 10
        WHEN seconds <= 604800 THEN 11 WHEN seconds <= 1209600 THEN 12
        WHEN seconds <= 2592000 THEN 13 ELSE 14 END
$$;

CREATE FUNCTION rollup_verdict_seconds(decided TIMESTAMPTZ, submitted TIMESTAMPTZ)
RETURNS float8 LANGUAGE sql IMMUTABLE AS $$
    SELECT EXTRACT(EPOCH FROM decided - submitted)::float8
$$;

CREATE FUNCTION rollup_verdict_times_decision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.outcome IN ('approved', 'changes_requested', 'rejected') THEN
        INSERT INTO rollup_verdict_times (project_id, verdict, bucket, items)
        SELECT NEW.project_id, NEW.outcome,
            rollup_verdict_bucket(rollup_verdict_seconds(NEW.created_at, s.submitted_at)), 1
        FROM review_submissions s JOIN items i ON i.id = s.item_id
        WHERE s.item_id = NEW.item_id AND s.round = NEW.round AND i.deleted_at IS NULL
        ON CONFLICT (project_id, verdict, bucket) DO UPDATE SET
            items = rollup_verdict_times.items + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER review_decisions_verdict_times AFTER INSERT ON review_decisions
    FOR EACH ROW EXECUTE FUNCTION rollup_verdict_times_decision();

-- An item deleted (or back) takes its verdicts out of (into) the figures.
CREATE FUNCTION rollup_verdict_times_item() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_verdict_times (project_id, verdict, bucket, items)
    SELECT d.project_id, d.outcome,
        rollup_verdict_bucket(rollup_verdict_seconds(d.created_at, s.submitted_at)),
        CASE WHEN NEW.deleted_at IS NULL THEN COUNT(*) ELSE -COUNT(*) END
    FROM review_decisions d
    JOIN review_submissions s ON s.item_id = d.item_id AND s.round = d.round
    WHERE d.item_id = NEW.id AND d.outcome IN ('approved', 'changes_requested', 'rejected')
    GROUP BY d.project_id, d.outcome,
        rollup_verdict_bucket(rollup_verdict_seconds(d.created_at, s.submitted_at))
    ON CONFLICT (project_id, verdict, bucket) DO UPDATE SET
        items = rollup_verdict_times.items + EXCLUDED.items;
    RETURN NULL;
END
$$;

CREATE TRIGGER items_verdict_times AFTER UPDATE OF deleted_at ON items
    FOR EACH ROW WHEN ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
    EXECUTE FUNCTION rollup_verdict_times_item();

-- What exists already.
INSERT INTO rollup_verdict_times (project_id, verdict, bucket, items)
SELECT d.project_id, d.outcome,
    rollup_verdict_bucket(rollup_verdict_seconds(d.created_at, s.submitted_at)), COUNT(*)
FROM review_decisions d
JOIN review_submissions s ON s.item_id = d.item_id AND s.round = d.round
JOIN items i ON i.id = d.item_id
WHERE i.deleted_at IS NULL AND d.outcome IN ('approved', 'changes_requested', 'rejected')
GROUP BY d.project_id, d.outcome,
    rollup_verdict_bucket(rollup_verdict_seconds(d.created_at, s.submitted_at));
