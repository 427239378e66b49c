-- Failed-login throttling per account address: consecutive failures set a growing delay
-- before the next password is even checked, and at most 100 failures an hour are
-- evaluated. Keyed by the normalised email, known or not, so the throttle answers alike
-- for addresses with and without an account. Rows idle for a day are swept.
-- Same file name and meaning as migrations/postgres/0012_login_throttle.sql.

CREATE TABLE login_throttle (
    email                 TEXT PRIMARY KEY,
    -- Consecutive failures since the last success.
    failures              INTEGER NOT NULL,
    last_failure_at       TEXT NOT NULL,
    -- Failures counted in the hour that began at window_start.
    window_start          TEXT NOT NULL,
    window_count          INTEGER NOT NULL
);
CREATE INDEX login_throttle_last_failure_idx ON login_throttle (last_failure_at);
