-- Analytics rollups: figures the analytics endpoints read instead of scanning items,
-- kept exact by triggers in the transaction of every change to an item or a review
-- decision (a change that does not commit changes no figure; no code path can forget
-- one). `alta admin recount` rebuilds them from the base tables. Deleted items are in
-- no figure; deleted projects are left out when read. Same file name and meaning as
-- migrations/sqlite/0019_rollups.sql.

-- Live items per project, contributor, kind and state.
CREATE TABLE rollup_items (
    project_id     UUID NOT NULL,
    contributor_id UUID NOT NULL,
    kind           TEXT NOT NULL,
    status         TEXT NOT NULL,
    items          BIGINT NOT NULL,
    bytes          BIGINT NOT NULL,
    -- Recorded length of the audio (analysis at upload), milliseconds.
    audio_ms       BIGINT NOT NULL,
    -- Of the items, those sent back for changes at least once (review_round > 0).
    reworked       BIGINT NOT NULL,
    -- Rework rounds used, summed.
    rounds         BIGINT NOT NULL,
    PRIMARY KEY (project_id, contributor_id, kind, status)
);
CREATE INDEX rollup_items_contributor_idx ON rollup_items (contributor_id);

-- Review decisions on live items per project, reviewer, decision, outcome and reason.
CREATE TABLE rollup_decisions (
    project_id  UUID NOT NULL,
    reviewer_id UUID NOT NULL,
    decision    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    -- '' when the decision gave none.
    reason_code TEXT NOT NULL,
    decisions   BIGINT NOT NULL,
    PRIMARY KEY (project_id, reviewer_id, decision, outcome, reason_code)
);
CREATE INDEX rollup_decisions_reviewer_idx ON rollup_decisions (reviewer_id);

-- Each round's submission for review (the items row keeps only the current round's).
CREATE TABLE review_submissions (
    item_id      UUID NOT NULL REFERENCES items (id),
    round        INTEGER NOT NULL,
    project_id   UUID NOT NULL REFERENCES projects (id),
    submitted_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (item_id, round)
);

-- Events of live items per project and UTC hour, for series: `upload` (at upload),
-- `submission`, and the verdicts `approved`, `changes_requested`, `rejected` (at the
-- deciding decision). audio_ms: the items' recorded audio (uploads and approvals).
CREATE TABLE rollup_hours (
    project_id UUID NOT NULL,
    event      TEXT NOT NULL,
    hour       TIMESTAMPTZ NOT NULL,
    items      BIGINT NOT NULL,
    audio_ms   BIGINT NOT NULL,
    PRIMARY KEY (project_id, event, hour)
);

CREATE FUNCTION rollup_hour(t TIMESTAMPTZ) RETURNS TIMESTAMPTZ LANGUAGE sql IMMUTABLE AS $$
    SELECT date_trunc('hour', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
$$;

CREATE FUNCTION rollup_hours_add(p UUID, e TEXT, h TIMESTAMPTZ, n BIGINT, ms BIGINT)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms) VALUES (p, e, h, n, ms)
    ON CONFLICT (project_id, event, hour) DO UPDATE SET
        items = rollup_hours.items + EXCLUDED.items,
        audio_ms = rollup_hours.audio_ms + EXCLUDED.audio_ms
$$;

CREATE FUNCTION rollup_audio_ms(audio JSONB) RETURNS BIGINT LANGUAGE sql IMMUTABLE AS $$
    SELECT COALESCE(ROUND((audio ->> 'duration_seconds')::float8 * 1000), 0)::bigint
$$;

CREATE FUNCTION rollup_items_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL THEN
        UPDATE rollup_items SET items = items - 1, bytes = bytes - OLD.size_bytes,
            audio_ms = audio_ms - rollup_audio_ms(OLD.audio),
            reworked = reworked - (OLD.review_round > 0)::int, rounds = rounds - OLD.review_round
        WHERE project_id = OLD.project_id AND contributor_id = OLD.contributor_id
            AND kind = OLD.kind AND status = OLD.status;
    END IF;
    IF NEW.deleted_at IS NULL THEN
        INSERT INTO rollup_items (project_id, contributor_id, kind, status, items, bytes,
            audio_ms, reworked, rounds)
        VALUES (NEW.project_id, NEW.contributor_id, NEW.kind, NEW.status, 1, NEW.size_bytes,
            rollup_audio_ms(NEW.audio), (NEW.review_round > 0)::int, NEW.review_round)
        ON CONFLICT (project_id, contributor_id, kind, status) DO UPDATE SET
            items = rollup_items.items + 1, bytes = rollup_items.bytes + EXCLUDED.bytes,
            audio_ms = rollup_items.audio_ms + EXCLUDED.audio_ms,
            reworked = rollup_items.reworked + EXCLUDED.reworked,
            rounds = rollup_items.rounds + EXCLUDED.rounds;
    END IF;
    -- Its upload in the series.
    IF TG_OP = 'INSERT' AND NEW.deleted_at IS NULL THEN
        PERFORM rollup_hours_add(NEW.project_id, 'upload', rollup_hour(NEW.created_at), 1,
            rollup_audio_ms(NEW.audio));
    ELSIF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL AND NEW.deleted_at IS NULL
        AND OLD.audio IS DISTINCT FROM NEW.audio THEN
        PERFORM rollup_hours_add(NEW.project_id, 'upload', rollup_hour(NEW.created_at), 0,
            rollup_audio_ms(NEW.audio) - rollup_audio_ms(OLD.audio));
    ELSIF TG_OP = 'UPDATE' AND OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN
        PERFORM rollup_hours_add(OLD.project_id, 'upload', rollup_hour(OLD.created_at), -1,
            -rollup_audio_ms(OLD.audio));
    ELSIF TG_OP = 'UPDATE' AND OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN
        PERFORM rollup_hours_add(NEW.project_id, 'upload', rollup_hour(NEW.created_at), 1,
            rollup_audio_ms(NEW.audio));
    END IF;
    -- An item deleted (or back) takes its review decisions out of (into) the figures.
    IF TG_OP = 'UPDATE' AND (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) THEN
        INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
        SELECT project_id, 'submission', rollup_hour(submitted_at),
            CASE WHEN NEW.deleted_at IS NULL THEN COUNT(*) ELSE -COUNT(*) END, 0
        FROM review_submissions WHERE item_id = NEW.id
        GROUP BY project_id, rollup_hour(submitted_at)
        ON CONFLICT (project_id, event, hour) DO UPDATE SET
            items = rollup_hours.items + EXCLUDED.items;
        INSERT INTO rollup_hours (project_id, event, hour, items, audio_ms)
        SELECT project_id, outcome, rollup_hour(created_at),
            CASE WHEN NEW.deleted_at IS NULL THEN COUNT(*) ELSE -COUNT(*) END,
            CASE WHEN outcome <> 'approved' THEN 0
                 WHEN NEW.deleted_at IS NULL THEN COUNT(*) * rollup_audio_ms(NEW.audio)
                 ELSE -COUNT(*) * rollup_audio_ms(NEW.audio) END
        FROM review_decisions
        WHERE item_id = NEW.id AND outcome IN ('approved', 'changes_requested', 'rejected')
        GROUP BY project_id, outcome, rollup_hour(created_at)
        ON CONFLICT (project_id, event, hour) DO UPDATE SET
            items = rollup_hours.items + EXCLUDED.items,
            audio_ms = rollup_hours.audio_ms + EXCLUDED.audio_ms;
        INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
            decisions)
        SELECT project_id, reviewer_id, decision, outcome, COALESCE(reason_code, ''),
            CASE WHEN NEW.deleted_at IS NULL THEN COUNT(*) ELSE -COUNT(*) END
        FROM review_decisions WHERE item_id = NEW.id
        GROUP BY project_id, reviewer_id, decision, outcome, COALESCE(reason_code, '')
        ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
            decisions = rollup_decisions.decisions + EXCLUDED.decisions;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER items_rollup_insert AFTER INSERT ON items
    FOR EACH ROW EXECUTE FUNCTION rollup_items_change();
CREATE TRIGGER items_rollup_update AFTER UPDATE OF status, deleted_at, size_bytes, audio,
    review_round ON items
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
        OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at
        OR OLD.size_bytes IS DISTINCT FROM NEW.size_bytes
        OR OLD.audio IS DISTINCT FROM NEW.audio
        OR OLD.review_round IS DISTINCT FROM NEW.review_round)
    EXECUTE FUNCTION rollup_items_change();

CREATE FUNCTION rollup_decisions_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_decisions (project_id, reviewer_id, decision, outcome, reason_code,
        decisions)
    SELECT NEW.project_id, NEW.reviewer_id, NEW.decision, NEW.outcome,
        COALESCE(NEW.reason_code, ''), 1
    FROM items WHERE id = NEW.item_id AND deleted_at IS NULL
    ON CONFLICT (project_id, reviewer_id, decision, outcome, reason_code) DO UPDATE SET
        decisions = rollup_decisions.decisions + 1;
    IF NEW.outcome IN ('approved', 'changes_requested', 'rejected') THEN
        PERFORM rollup_hours_add(NEW.project_id, NEW.outcome, rollup_hour(NEW.created_at), 1,
            CASE WHEN NEW.outcome = 'approved' THEN rollup_audio_ms(i.audio) ELSE 0 END)
        FROM items i WHERE i.id = NEW.item_id AND i.deleted_at IS NULL;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER review_decisions_rollup AFTER INSERT ON review_decisions
    FOR EACH ROW EXECUTE FUNCTION rollup_decisions_insert();

CREATE FUNCTION rollup_submissions_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rollup_hours_add(NEW.project_id, 'submission', rollup_hour(NEW.submitted_at), 1, 0)
    FROM items i WHERE i.id = NEW.item_id AND i.deleted_at IS NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER review_submissions_rollup AFTER INSERT ON review_submissions
    FOR EACH ROW EXECUTE FUNCTION rollup_submissions_insert();

-- What exists already.
INSERT INTO rollup_items (project_id, contributor_id, kind, status, items, bytes, audio_ms,
    reworked, rounds)
SELECT project_id, contributor_id, kind, status, COUNT(*), SUM(size_bytes),
    SUM(rollup_audio_ms(audio)), SUM((review_round > 0)::int), SUM(review_round)
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
    SELECT project_id, 'upload' AS event, rollup_hour(created_at) AS hour, 1 AS items,
        rollup_audio_ms(audio) AS audio_ms
    FROM items WHERE deleted_at IS NULL
    UNION ALL
    SELECT s.project_id, 'submission', rollup_hour(s.submitted_at), 1, 0
    FROM review_submissions s JOIN items i ON i.id = s.item_id WHERE i.deleted_at IS NULL
    UNION ALL
    SELECT d.project_id, d.outcome, rollup_hour(d.created_at), 1,
        CASE WHEN d.outcome = 'approved' THEN rollup_audio_ms(i.audio) ELSE 0 END
    FROM review_decisions d JOIN items i ON i.id = d.item_id
    WHERE i.deleted_at IS NULL AND d.outcome IN ('approved', 'changes_requested', 'rejected')
) events GROUP BY project_id, event, hour;
