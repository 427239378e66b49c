-- Webhooks: a project's endpoints, the deliveries written in the same transaction as
-- the change they announce (the outbox), and each attempt to deliver one. Sending is a
-- `webhook` job per delivery. Same file name and meaning as
-- migrations/postgres/0021_webhooks.sql.

CREATE TABLE webhooks (
    id                   BLOB PRIMARY KEY,
    project_id           BLOB NOT NULL REFERENCES projects (id),
    url                  TEXT NOT NULL,
    -- The event names it takes, a JSON array of strings.
    events               TEXT NOT NULL,
    description          TEXT,
    active               BOOLEAN NOT NULL,
    -- `whsec_` + base64 of the key; the previous one signs too until it expires.
    secret               TEXT NOT NULL,
    previous_secret      TEXT,
    previous_expires_at  TEXT,
    -- Since when every attempt failed (NULL after a success); too long deactivates it.
    failing_since        TEXT,
    deactivated_at       TEXT,
    created_by           BLOB NOT NULL REFERENCES users (id),
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX webhooks_project_idx ON webhooks (project_id, id);

CREATE TABLE webhook_deliveries (
    -- Also the `webhook-id` header (`msg_` + the id without dashes): stable across
    -- retries and redeliveries, so receivers can drop duplicates.
    id            BLOB PRIMARY KEY,
    webhook_id    BLOB NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    project_id    BLOB NOT NULL,
    event         TEXT NOT NULL,
    -- The body as sent, fixed when the change committed.
    payload       TEXT NOT NULL,
    -- The object the event is about (an item, an export, a member): deliveries with
    -- the same key go out in `seq` order.
    ordering_key  TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    job_id        BLOB,
    last_status   INTEGER,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    delivered_at  TEXT,
    updated_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX webhook_deliveries_order_idx ON webhook_deliveries (webhook_id, ordering_key, seq);
CREATE INDEX webhook_deliveries_list_idx ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_age_idx ON webhook_deliveries (created_at);

CREATE TABLE webhook_attempts (
    delivery_id   BLOB NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    at            TEXT NOT NULL,
    status_code   INTEGER,
    latency_ms    INTEGER NOT NULL,
    -- The first KiB of the answer, as text.
    response      TEXT,
    error         TEXT,
    PRIMARY KEY (delivery_id, attempt)
);
