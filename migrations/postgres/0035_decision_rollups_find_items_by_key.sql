-- The rollups of new review decisions (0030's statement-level trigger) find each
-- decision's item, submission and round by their keys, one decision at a time. Written
-- as joins of the inserted decisions to `items`, `review_submissions` and
-- `review_decisions`, their plans on young tables (a new database, or one growing faster
-- than autovacuum analyses it) read `items` whole, through the partial index whose
-- predicate is `deleted_at IS NULL` (`items_export_idx`), and PL/pgSQL keeps a plan for
-- the connection: each group of decisions then read every live item of the database.
-- Each lookup is now a lateral subquery that PostgreSQL cannot merge into the join
-- (`OFFSET 0`), so it is planned alone, by its key; an item's life is checked on the row
-- it returns (as 0033 does for the row triggers). The figures are the same.
-- Same file name as migrations/sqlite/0035_decision_rollups_find_items_by_key.sql.

CREATE OR REPLACE FUNCTION rollup_decisions_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
        decisions)
    SELECT a.project_id, a.reviewer_id, a.decision, a.outcome, COALESCE(a.reason_code, ''),
        COUNT(*)
    FROM added a
    JOIN LATERAL (SELECT i.deleted_at FROM items i WHERE i.id = a.item_id OFFSET 0) i
        ON i.deleted_at IS NULL
    GROUP BY a.project_id, a.reviewer_id, a.decision, a.outcome, COALESCE(a.reason_code, '')
    ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
        decisions = rollup_decisions.decisions + EXCLUDED.decisions;

    IF NOT EXISTS (SELECT 1 FROM added
                   WHERE outcome IN ('approved', 'changes_requested', 'rejected')) THEN
        RETURN NULL;
    END IF;

    -- Each verdict in its hour (approvals with their audio).
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    SELECT a.project_id, a.outcome, rollup_hour(a.created_at), COUNT(*),
        SUM(CASE WHEN a.outcome = 'approved' THEN rollup_audio_ms(i.audio) ELSE 0 END)
    FROM added a
    JOIN LATERAL (SELECT i.deleted_at, i.audio FROM items i WHERE i.id = a.item_id
                  OFFSET 0) i ON i.deleted_at IS NULL
    WHERE a.outcome IN ('approved', 'changes_requested', 'rejected')
    GROUP BY a.project_id, a.outcome, rollup_hour(a.created_at)
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = rollup_hours.items + EXCLUDED.items,
        audio_ms = rollup_hours.audio_ms + EXCLUDED.audio_ms;

    -- Each verdict's time from its round's submission.
    INSERT INTO rollup_verdict_times (project_id, verdict, bucket, items)
    SELECT a.project_id, a.outcome,
        rollup_verdict_bucket(rollup_verdict_seconds(a.created_at, s.submitted_at)), COUNT(*)
    FROM added a
    JOIN LATERAL (SELECT s.submitted_at FROM review_submissions s
                  WHERE s.item_id = a.item_id AND s.round = a.round OFFSET 0) s ON true
    JOIN LATERAL (SELECT i.deleted_at FROM items i WHERE i.id = a.item_id OFFSET 0) i
        ON i.deleted_at IS NULL
    WHERE a.outcome IN ('approved', 'changes_requested', 'rejected')
    GROUP BY a.project_id, a.outcome,
        rollup_verdict_bucket(rollup_verdict_seconds(a.created_at, s.submitted_at))
    ON CONFLICT (project_id, verdict, bucket) DO UPDATE SET
        items = rollup_verdict_times.items + EXCLUDED.items;

    -- A verdict settles every decision of its round (its own too, and those inserted
    -- beside it): one round has one verdict, so no decision is settled twice.
    INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
        decisions, agreed, settled)
    SELECT d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, ''),
        0, SUM(CASE WHEN (d.decision = 'approve') = (v.outcome = 'approved')
            THEN 1 ELSE 0 END), COUNT(*)
    FROM added v
    JOIN LATERAL (SELECT d.project_id, d.reviewer_id, d.decision, d.outcome, d.reason_code
                  FROM review_decisions d
                  WHERE d.item_id = v.item_id AND d.round = v.round OFFSET 0) d ON true
    JOIN LATERAL (SELECT i.deleted_at FROM items i WHERE i.id = v.item_id OFFSET 0) i
        ON i.deleted_at IS NULL
    WHERE v.outcome IN ('approved', 'changes_requested', 'rejected')
    GROUP BY d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, '')
    ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
        agreed = rollup_decisions.agreed + EXCLUDED.agreed,
        settled = rollup_decisions.settled + EXCLUDED.settled;
    RETURN NULL;
END
$$;
