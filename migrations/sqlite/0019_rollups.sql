-- Analytics rollups: figures the analytics endpoints read instead of scanning items,
-- kept exact by triggers in the transaction of every change to an item or a review
-- decision (a change that does not commit changes no figure; no code path can forget
-- one). `alta admin recount` rebuilds them from the base tables. Deleted items are in
-- no figure; deleted projects are left out when read. Same file name and meaning as
-- migrations/postgres/0019_rollups.sql.

-- Live items per project, contributor, kind and state.
CREATE TABLE rollup_items (
    project_id     BLOB NOT NULL,
    contributor_id BLOB NOT NULL,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    items          INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    -- Recorded length of the audio (analysis at upload), milliseconds.
    audio_ms       INTEGER NOT NULL,
    -- Of the items, those sent back for changes at least once (review_round > 0).
    reworked       INTEGER NOT NULL,
    -- Rework rounds used, summed.
    rounds         INTEGER NOT NULL,
    PRIMARY KEY (project_id, contributor_id, kind, status)
);
CREATE INDEX rollup_items_contributor_idx ON rollup_items (contributor_id);

-- Review decisions on live items per project, reviewer, decision, outcome and reason.
CREATE TABLE rollup_decisions (
    project_id  BLOB NOT NULL,
    reviewer_id BLOB NOT NULL,
    decision    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    -- '' when the decision gave none.
    reason_code TEXT NOT NULL,
    decisions   INTEGER NOT NULL,
    PRIMARY KEY (project_id, reviewer_id, decision, outcome, reason_code)
);
CREATE INDEX rollup_decisions_reviewer_idx ON rollup_decisions (reviewer_id);

-- Each round's submission for review (the items row keeps only the current round's).
CREATE TABLE review_submissions (
    item_id      BLOB NOT NULL REFERENCES items (id),
    round        INTEGER NOT NULL,
    project_id   BLOB NOT NULL REFERENCES projects (id),
    submitted_at TEXT NOT NULL,
    PRIMARY KEY (item_id, round)
);

-- Events of live items per project and UTC hour, for series: `upload` (at upload),
-- `submission`, and the verdicts `approved`, `changes_requested`, `rejected` (at the
-- deciding decision). audio_ms: the items' recorded audio (uploads and approvals).
-- Hours are TEXT in the form sqlx writes a DateTime<Utc> (`…T17:00:00+00:00`).
CREATE TABLE rollup_hours (
    project_id BLOB NOT NULL,
    event      TEXT NOT NULL,
    hour       TEXT NOT NULL,
    items      INTEGER NOT NULL,
    audio_ms   INTEGER NOT NULL,
    PRIMARY KEY (project_id, event, hour)
);

CREATE TRIGGER items_rollup_insert AFTER INSERT ON items WHEN NEW.deleted_at IS NULL
BEGIN
    INSERT INTO rollup_items (project_id, contributor_id, kind, status, items, bytes,
        audio_ms, reworked, rounds)
    VALUES (NEW.project_id, NEW.contributor_id, NEW.kind, NEW.status, 1, NEW.size_bytes,
        CAST(ROUND(COALESCE(json_extract(NEW.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER),
        NEW.review_round > 0, NEW.review_round)
    ON CONFLICT (project_id, contributor_id, kind, status) DO UPDATE SET
        items = items + 1, bytes = bytes + excluded.bytes,
        audio_ms = audio_ms + excluded.audio_ms, reworked = reworked + excluded.reworked,
        rounds = rounds + excluded.rounds;
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    VALUES (NEW.project_id, 'upload', strftime('%Y-%m-%dT%H:00:00+00:00', NEW.created_at), 1, CAST(ROUND(COALESCE(json_extract(NEW.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER))
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = items + excluded.items, audio_ms = audio_ms + excluded.audio_ms;
END;

CREATE TRIGGER items_rollup_update AFTER UPDATE OF status, deleted_at, size_bytes, audio,
    review_round ON items
    WHEN OLD.status IS NOT NEW.status OR OLD.deleted_at IS NOT NEW.deleted_at
        OR OLD.size_bytes IS NOT NEW.size_bytes OR OLD.audio IS NOT NEW.audio
        OR OLD.review_round IS NOT NEW.review_round
BEGIN
    UPDATE rollup_items SET items = items - 1, bytes = bytes - OLD.size_bytes,
        audio_ms = audio_ms
            - CAST(ROUND(COALESCE(json_extract(OLD.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER),
        reworked = reworked - (OLD.review_round > 0), rounds = rounds - OLD.review_round
    WHERE OLD.deleted_at IS NULL AND project_id = OLD.project_id
        AND contributor_id = OLD.contributor_id AND kind = OLD.kind AND status = OLD.status;
    INSERT INTO rollup_items (project_id, contributor_id, kind, status, items, bytes,
        audio_ms, reworked, rounds)
    SELECT NEW.project_id, NEW.contributor_id, NEW.kind, NEW.status, 1, NEW.size_bytes,
        CAST(ROUND(COALESCE(json_extract(NEW.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER),
        NEW.review_round > 0, NEW.review_round
    WHERE NEW.deleted_at IS NULL
    ON CONFLICT (project_id, contributor_id, kind, status) DO UPDATE SET
        items = items + 1, bytes = bytes + excluded.bytes,
        audio_ms = audio_ms + excluded.audio_ms, reworked = reworked + excluded.reworked,
        rounds = rounds + excluded.rounds;
    -- An item deleted (or back) takes its review decisions out of (into) the figures.
    INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
        decisions)
    SELECT project_id, reviewer_id, decision, outcome, COALESCE(reason_code, ''),
        CASE WHEN NEW.deleted_at IS NULL THEN COUNT(*) ELSE -COUNT(*) END
    FROM review_decisions
    WHERE item_id = NEW.id AND ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
    GROUP BY project_id, reviewer_id, decision, outcome, COALESCE(reason_code, '')
    ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
        decisions = decisions + excluded.decisions;
    -- Its upload, submissions and verdicts in the series, when it is deleted or comes
    -- back; an audio change moves its upload's audio.
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    SELECT OLD.project_id, 'upload', strftime('%Y-%m-%dT%H:00:00+00:00', OLD.created_at), -1, -CAST(ROUND(COALESCE(json_extract(OLD.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER)
    WHERE OLD.deleted_at IS NULL AND (NEW.deleted_at IS NOT NULL OR OLD.audio IS NOT NEW.audio)
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = items + excluded.items, audio_ms = audio_ms + excluded.audio_ms;
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    SELECT NEW.project_id, 'upload', strftime('%Y-%m-%dT%H:00:00+00:00', NEW.created_at), 1, CAST(ROUND(COALESCE(json_extract(NEW.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER)
    WHERE NEW.deleted_at IS NULL AND (OLD.deleted_at IS NOT NULL OR OLD.audio IS NOT NEW.audio)
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = items + excluded.items, audio_ms = audio_ms + excluded.audio_ms;
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    SELECT project_id, 'submission', strftime('%Y-%m-%dT%H:00:00+00:00', submitted_at),
        CASE WHEN NEW.deleted_at IS NULL THEN COUNT(*) ELSE -COUNT(*) END, 0
    FROM review_submissions
    WHERE item_id = NEW.id AND ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
    GROUP BY project_id, strftime('%Y-%m-%dT%H:00:00+00:00', submitted_at)
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = items + excluded.items, audio_ms = audio_ms + excluded.audio_ms;
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    SELECT project_id, outcome, strftime('%Y-%m-%dT%H:00:00+00:00', created_at),
        CASE WHEN NEW.deleted_at IS NULL THEN COUNT(*) ELSE -COUNT(*) END,
        CASE WHEN outcome <> 'approved' THEN 0
             WHEN NEW.deleted_at IS NULL THEN COUNT(*) * CAST(ROUND(COALESCE(json_extract(NEW.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER)
             ELSE -COUNT(*) * CAST(ROUND(COALESCE(json_extract(NEW.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER) END
    FROM review_decisions
    WHERE item_id = NEW.id AND ((OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL))
        AND outcome IN ('approved', 'changes_requested', 'rejected')
    GROUP BY project_id, outcome, strftime('%Y-%m-%dT%H:00:00+00:00', created_at)
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = items + excluded.items, audio_ms = audio_ms + excluded.audio_ms;
END;

CREATE TRIGGER review_decisions_rollup AFTER INSERT ON review_decisions
BEGIN
    INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
        decisions)
    SELECT NEW.project_id, NEW.reviewer_id, NEW.decision, NEW.outcome,
        COALESCE(NEW.reason_code, ''), 1
    FROM items WHERE id = NEW.item_id AND deleted_at IS NULL
    ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
        decisions = decisions + 1;
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    SELECT NEW.project_id, NEW.outcome, strftime('%Y-%m-%dT%H:00:00+00:00', NEW.created_at), 1,
        CASE WHEN NEW.outcome = 'approved' THEN CAST(ROUND(COALESCE(json_extract(i.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER) ELSE 0 END
    FROM items i WHERE i.id = NEW.item_id AND i.deleted_at IS NULL
        AND NEW.outcome IN ('approved', 'changes_requested', 'rejected')
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = items + excluded.items, audio_ms = audio_ms + excluded.audio_ms;
END;

CREATE TRIGGER review_submissions_rollup AFTER INSERT ON review_submissions
BEGIN
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
    SELECT NEW.project_id, 'submission', strftime('%Y-%m-%dT%H:00:00+00:00', NEW.submitted_at), 1, 0
    FROM items i WHERE i.id = NEW.item_id AND i.deleted_at IS NULL
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = items + excluded.items, audio_ms = audio_ms + excluded.audio_ms;
END;

-- What exists already.
INSERT INTO rollup_items (project_id, contributor_id, kind, status, items, bytes, audio_ms,
    reworked, rounds)
SELECT project_id, contributor_id, kind, status, COUNT(*), SUM(size_bytes),
    SUM(CAST(ROUND(COALESCE(json_extract(audio, '$.duration_seconds'), 0) * 1000) AS INTEGER)),
    SUM(review_round > 0), SUM(review_round)
FROM items WHERE deleted_at IS NULL
GROUP BY project_id, contributor_id, kind, status;

INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
    decisions)
SELECT d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, ''), COUNT(*)
FROM review_decisions d JOIN items i ON i.id = d.item_id WHERE i.deleted_at IS NULL
GROUP BY d.project_id, d.reviewer_id, d.decision, d.outcome, COALESCE(d.reason_code, '');

-- Submissions before this migration: only each item's current round is known.
INSERT INTO review_submissions (item_id, round, project_id, submitted_at)
SELECT id, review_round, project_id, submitted_at FROM items WHERE submitted_at IS NOT NULL;

INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
SELECT project_id, event, hour, SUM(items), SUM(audio_ms) FROM (
    SELECT project_id, 'upload' AS event, strftime('%Y-%m-%dT%H:00:00+00:00', created_at) AS hour, 1 AS items,
        CAST(ROUND(COALESCE(json_extract(audio, '$.duration_seconds'), 0) * 1000) AS INTEGER) AS audio_ms
    FROM items WHERE deleted_at IS NULL
    UNION ALL
    SELECT s.project_id, 'submission', strftime('%Y-%m-%dT%H:00:00+00:00', s.submitted_at), 1, 0
    FROM review_submissions s JOIN items i ON i.id = s.item_id WHERE i.deleted_at IS NULL
    UNION ALL
    SELECT d.project_id, d.outcome, strftime('%Y-%m-%dT%H:00:00+00:00', d.created_at), 1,
        CASE WHEN d.outcome = 'approved' THEN CAST(ROUND(COALESCE(json_extract(i.audio, '$.duration_seconds'), 0) * 1000) AS INTEGER) ELSE 0 END
    FROM review_decisions d JOIN items i ON i.id = d.item_id
    WHERE i.deleted_at IS NULL AND d.outcome IN ('approved', 'changes_requested', 'rejected')
) events WHERE true GROUP BY project_id, event, hour;
