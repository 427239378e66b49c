-- The rollups of new items and review decisions, written once per statement instead of
-- once per row. A group of the project's actor inserts its uploads' items, and its
-- decisions, in one statement each (the kept writes); the row triggers of 0019, 0023,
-- 0024 and 0025 then upserted the same rollup rows once per row, each time a new version
-- of a rollup row the group had just written. Statement-level triggers over the inserted
-- rows (transition tables) add up the same figures and write each rollup row once.
-- - New items: live items by contributor, kind and state; the upload in its hour; the
--   contributor's hour. (An item inserted already failed still goes through the row
--   trigger of 0026, which only such an item fires.)
-- - New decisions: the decisions by reviewer, decision, outcome and reason; for the
--   verdicts among them, the verdict's hour, its time from submission, and the settling
--   of every decision of its round (reviewer agreement).
-- Live items only, as before. Updates keep their row triggers (an update trigger with
-- transition tables could not be limited to the columns the rollups read). Same file
-- name as migrations/sqlite/0030_rollups_per_statement.sql (SQLite has no
-- statement-level triggers and keeps its row triggers).

DROP TRIGGER items_rollup_insert ON items;
DROP TRIGGER items_contributor_hours_insert ON items;

CREATE FUNCTION rollup_items_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_items (project_id, contributor_id, kind, status, items, bytes,
        audio_ms, reworked, rounds)
    SELECT a.project_id, a.contributor_id, a.kind, a.status, COUNT(*), SUM(a.size_bytes),
        SUM(rollup_audio_ms(a.audio)), SUM((a.review_round > 0)::int), SUM(a.review_round)
    FROM added a WHERE a.deleted_at IS NULL
    GROUP BY a.project_id, a.contributor_id, a.kind, a.status
    ON CONFLICT (project_id, contributor_id, kind, status) DO UPDATE SET
        items = rollup_items.items + EXCLUDED.items,
        bytes = rollup_items.bytes + EXCLUDED.bytes,
        audio_ms = rollup_items.audio_ms + EXCLUDED.audio_ms,
        reworked = rollup_items.reworked + EXCLUDED.reworked,
        rounds = rollup_items.rounds + EXCLUDED.rounds;

    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    SELECT a.project_id, 'upload', rollup_hour(a.created_at), COUNT(*),
        SUM(rollup_audio_ms(a.audio))
    FROM added a WHERE a.deleted_at IS NULL
    GROUP BY a.project_id, rollup_hour(a.created_at)
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = rollup_hours.items + EXCLUDED.items,
        audio_ms = rollup_hours.audio_ms + EXCLUDED.audio_ms;

    INSERT INTO rollup_contributor_hours (project_id, contributor_id, hour, uploads)
    SELECT a.project_id, a.contributor_id, rollup_hour(a.created_at), COUNT(*)
    FROM added a WHERE a.deleted_at IS NULL
    GROUP BY a.project_id, a.contributor_id, rollup_hour(a.created_at)
    ON CONFLICT (project_id, hour, contributor_id) DO UPDATE SET
        uploads = rollup_contributor_hours.uploads + EXCLUDED.uploads;
    RETURN NULL;
END
$$;

-- Named as 0019's row trigger was, so what drops it (a benchmark without the rollups)
-- still does.
CREATE TRIGGER items_rollup_insert AFTER INSERT ON items
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION rollup_items_added();

DROP TRIGGER review_decisions_rollup ON review_decisions;
DROP TRIGGER review_decisions_verdict_times ON review_decisions;
DROP TRIGGER review_decisions_agreement ON review_decisions;
DROP FUNCTION rollup_decisions_insert();
DROP FUNCTION rollup_verdict_times_decision();
DROP FUNCTION rollup_agreement_verdict();

CREATE FUNCTION rollup_decisions_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
        decisions)
    SELECT a.project_id, a.reviewer_id, a.decision, a.outcome, COALESCE(a.reason_code, ''),
        COUNT(*)
    FROM added a JOIN items i ON i.id = a.item_id AND i.deleted_at IS NULL
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
    FROM added a JOIN items i ON i.id = a.item_id AND i.deleted_at IS NULL
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
    JOIN review_submissions s ON s.item_id = a.item_id AND s.round = a.round
    JOIN items i ON i.id = a.item_id AND i.deleted_at IS NULL
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
    JOIN review_decisions d ON d.item_id = v.item_id AND d.round = v.round
    JOIN items i ON i.id = v.item_id AND i.deleted_at IS NULL
    WHERE v.outcome IN ('approved', 'changes_requested', 'rejected')
    GROUP BY d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, '')
    ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
        agreed = rollup_decisions.agreed + EXCLUDED.agreed,
        settled = rollup_decisions.settled + EXCLUDED.settled;
    RETURN NULL;
END
$$;

-- Named as 0019's row trigger was (see above).
CREATE TRIGGER review_decisions_rollup AFTER INSERT ON review_decisions
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION rollup_decisions_added();
