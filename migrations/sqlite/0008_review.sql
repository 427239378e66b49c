-- Review: submissions, decisions per round, skips, leases, the rework loop and the
-- mail digest of items that need changes. Same file name and meaning as
-- migrations/postgres/0008_review.sql (SQLite types as in 0001).

-- Rework rounds used so far; decisions count within the current round.
ALTER TABLE items ADD COLUMN review_round INTEGER NOT NULL DEFAULT 0;
-- When the current round entered pending_review (for queue age and decision time).
ALTER TABLE items ADD COLUMN submitted_at TEXT;
-- The reviewer holding the item, until when (an expired lease frees it).
ALTER TABLE items ADD COLUMN review_claimed_by BLOB;
ALTER TABLE items ADD COLUMN review_lease_until TEXT;
-- When the item reached approved or rejected.
ALTER TABLE items ADD COLUMN decided_at TEXT;

-- The review queue: a project's pending items in id (upload) order.
CREATE INDEX items_review_queue_idx ON items (project_id, id)
    WHERE status = 'pending_review' AND deleted_at IS NULL;
-- "Which item do I hold?"
CREATE INDEX items_review_claimed_idx ON items (review_claimed_by, project_id)
    WHERE review_claimed_by IS NOT NULL;

CREATE TABLE review_decisions (
    id            BLOB PRIMARY KEY,
    item_id       BLOB NOT NULL REFERENCES items (id),
    project_id    BLOB NOT NULL REFERENCES projects (id),
    reviewer_id   BLOB NOT NULL REFERENCES users (id),
    round         INTEGER NOT NULL,
    decision      TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    reason_code   TEXT,
    comment       TEXT,
    -- Fix-and-accept: the text revision the reviewer wrote.
    text_revision INTEGER,
    -- Where the item stood after this decision: pending, approved,
    -- changes_requested or rejected.
    outcome       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    -- One decision per reviewer per round.
    UNIQUE (item_id, round, reviewer_id)
);

-- A reviewer passed on an item for this round: it leaves their queue.
CREATE TABLE review_skips (
    item_id     BLOB NOT NULL REFERENCES items (id),
    reviewer_id BLOB NOT NULL REFERENCES users (id),
    round       INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (item_id, round, reviewer_id)
);

-- Earlier files of an item the contributor replaced during rework.
CREATE TABLE item_files (
    id            BLOB PRIMARY KEY,
    item_id       BLOB NOT NULL REFERENCES items (id),
    blob_key      TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    detected_type TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    replaced_by   BLOB NOT NULL REFERENCES users (id),
    replaced_at   TEXT NOT NULL
);
CREATE INDEX item_files_item_idx ON item_files (item_id, replaced_at);
-- The sweeper asks whether a blob is still some item's current or earlier file.
CREATE INDEX item_files_blob_key_idx ON item_files (blob_key);
CREATE INDEX items_blob_key_idx ON items (blob_key);

-- Items that need changes, waiting to go out in the contributor's next digest mail.
CREATE TABLE review_notices (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL REFERENCES users (id),
    item_id     BLOB NOT NULL REFERENCES items (id),
    project_id  BLOB NOT NULL REFERENCES projects (id),
    reasons     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT
);
CREATE INDEX review_notices_unsent_idx ON review_notices (user_id, created_at) WHERE sent_at IS NULL;

-- Opt-out of the changes-requested digest, and when the last one went (one per hour).
ALTER TABLE users ADD COLUMN review_mail BOOLEAN NOT NULL DEFAULT 1;
ALTER TABLE users ADD COLUMN review_mail_sent_at TEXT;
