-- PostgreSQL's rollup helpers moved from SQL to PL/pgSQL, so that their plans are kept
-- per connection (migrations/postgres/0032_rollup_helpers_plpgsql.sql). SQLite's
-- triggers call no functions: nothing changes here. The file keeps the two schemas'
-- migration numbers in step.
SELECT 1;
