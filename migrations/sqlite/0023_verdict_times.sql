-- Time from a round's submission to its verdict (the deciding decision), counted per
-- project, verdict and bucket, so that the summary's median and 90th percentile need no
-- scan. A bucket is the first of these upper bounds, in seconds, that the time does not
-- exceed: 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 345600, 604800, 1209600, 2592000; bucket 14 is anything longer
-- (domain::verdict_times keeps the same list; SQLite has no functions, so the bucket is
-- written out where it is needed). Live items only, as every rollup; kept by triggers
-- like those of 0019. Same file name and meaning as migrations/postgres/0023_verdict_times.sql.

CREATE TABLE rollup_verdict_times (
    project_id BLOB NOT NULL,
    verdict    TEXT NOT NULL,
    bucket     INTEGER NOT NULL,
    items      INTEGER NOT NULL,
    PRIMARY KEY (project_id, verdict, bucket)
);

CREATE TRIGGER review_decisions_verdict_times AFTER INSERT ON review_decisions
    WHEN NEW.outcome IN ('approved', 'changes_requested', 'rejected')
BEGIN
    INSERT INTO rollup_verdict_times (project_id, verdict, bucket, items)
    SELECT NEW.project_id, NEW.outcome,
        CASE WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 60 THEN 0 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 300 THEN 1 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 900 THEN 2 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 1800 THEN 3 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 3600 THEN 4 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 7200 THEN 5 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 14400 THEN 6 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 28800 THEN 7 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 86400 THEN 8 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 172800 THEN 9 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 345600 THEN 10 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 604800 THEN 11 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 1209600 THEN 12 WHEN ((julianday(NEW.created_at) - julianday(s.submitted_at)) * 86400.0) <= 2592000 THEN 13 ELSE 14 END, 1
    FROM review_submissions s JOIN items i ON i.id = s.item_id
    WHERE s.item_id = NEW.item_id AND s.round = NEW.round AND i.deleted_at IS NULL
    ON CONFLICT (project_id, verdict, bucket) DO UPDATE SET items = items + 1;
END;

-- An item deleted (or back) takes its verdicts out of (into) the figures.
CREATE TRIGGER items_verdict_times AFTER UPDATE OF deleted_at ON items
    WHEN (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO rollup_verdict_times (project_id, verdict, bucket, items)
    SELECT d.project_id, d.outcome,
        CASE WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 60 THEN 0 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 300 THEN 1 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 900 THEN 2 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 1800 THEN 3 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 3600 THEN 4 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 7200 THEN 5 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 14400 THEN 6 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 28800 THEN 7 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 86400 THEN 8 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 172800 THEN 9 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 345600 THEN 10 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 604800 THEN 11 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 1209600 THEN 12 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 2592000 THEN 13 ELSE 14 END,
        CASE WHEN NEW.deleted_at IS NULL THEN COUNT(*) ELSE -COUNT(*) END
    FROM review_decisions d
    JOIN review_submissions s ON s.item_id = d.item_id AND s.round = d.round
    WHERE d.item_id = NEW.id AND d.outcome IN ('approved', 'changes_requested', 'rejected')
    GROUP BY 1, 2, 3
    ON CONFLICT (project_id, verdict, bucket) DO UPDATE SET items = items + excluded.items;
END;

-- What exists already.
INSERT INTO rollup_verdict_times (project_id, verdict, bucket, items)
SELECT d.project_id, d.outcome,
    CASE WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 60 THEN 0 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 300 THEN 1 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 900 THEN 2 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 1800 THEN 3 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 3600 THEN 4 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 7200 THEN 5 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 14400 THEN 6 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 28800 THEN 7 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 86400 THEN 8 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 172800 THEN 9 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 345600 THEN 10 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 604800 THEN 11 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 1209600 THEN 12 WHEN ((julianday(d.created_at) - julianday(s.submitted_at)) * 86400.0) <= 2592000 THEN 13 ELSE 14 END,
    COUNT(*)
FROM review_decisions d
JOIN review_submissions s ON s.item_id = d.item_id AND s.round = d.round
JOIN items i ON i.id = d.item_id
WHERE i.deleted_at IS NULL AND d.outcome IN ('approved', 'changes_requested', 'rejected')
GROUP BY 1, 2, 3;
