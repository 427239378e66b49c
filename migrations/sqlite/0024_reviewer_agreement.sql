-- Reviewer agreement: how often a reviewer's vote matched its round's verdict (an
-- approval an `approved` item, a rejection a `rejected` or `changes_requested` one).
-- Kept on the decision rollup's rows: `settled` counts their decisions whose round has
-- a verdict, `agreed` those of them that matched it. Same file name and meaning as
-- migrations/postgres/0024_reviewer_agreement.sql.

ALTER TABLE rollup_decisions ADD COLUMN agreed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollup_decisions ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;

-- A round's verdict settles every decision of the round (its own too). An upsert, so it
-- does not depend on the order in which the decision's triggers run.
CREATE TRIGGER review_decisions_agreement AFTER INSERT ON review_decisions
WHEN NEW.outcome IN ('approved', 'changes_requested', 'rejected')
BEGIN
    INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
        decisions, agreed, settled)
    SELECT d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, ''),
        0,
        SUM(CASE WHEN (d.decision = 'approve') = (NEW.outcome = 'approved') THEN 1 ELSE 0 END),
        COUNT(*)
    FROM review_decisions d JOIN items i ON i.id = d.item_id
    WHERE d.item_id = NEW.item_id AND d.round = NEW.round AND i.deleted_at IS NULL
    GROUP BY d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, '')
    ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
        agreed = agreed + excluded.agreed, settled = settled + excluded.settled;
END;

-- An item deleted (or back) takes its settled decisions out of (into) the figures.
CREATE TRIGGER items_agreement AFTER UPDATE OF deleted_at ON items
WHEN (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
BEGIN
    INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
        decisions, agreed, settled)
    SELECT d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, ''),
        0,
        SUM(CASE WHEN (d.decision = 'approve') = (v.outcome = 'approved') THEN 1 ELSE 0 END)
            * CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END,
        COUNT(*) * CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE -1 END
    FROM review_decisions d
    JOIN review_decisions v ON v.item_id = d.item_id AND v.round = d.round
        AND v.outcome IN ('approved', 'changes_requested', 'rejected')
    WHERE d.item_id = NEW.id
    GROUP BY d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, '')
    ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
        agreed = agreed + excluded.agreed, settled = settled + excluded.settled;
END;

-- What exists already.
UPDATE rollup_decisions SET agreed = c.agreed, settled = c.settled
FROM (
    SELECT d.project_id, d.reviewer_id, d.decision, d.outcome,
        COALESCE(d.reason_code, '') AS reason_code,
        SUM(CASE WHEN (d.decision = 'approve') = (v.outcome = 'approved') THEN 1 ELSE 0 END)
            AS agreed,
        COUNT(*) AS settled
    FROM review_decisions d
    JOIN items i ON i.id = d.item_id
    JOIN review_decisions v ON v.item_id = d.item_id AND v.round = d.round
        AND v.outcome IN ('approved', 'changes_requested', 'rejected')
    WHERE i.deleted_at IS NULL
    GROUP BY d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, '')
) AS c
WHERE rollup_decisions.project_id = c.project_id
    AND rollup_decisions.reviewer_id = c.reviewer_id
    AND rollup_decisions.decision = c.decision AND rollup_decisions.outcome = c.outcome
    AND rollup_decisions.reason_code = c.reason_code;
