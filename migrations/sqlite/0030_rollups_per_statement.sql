-- Nothing changes here. On PostgreSQL this migration writes the rollups of new items and
-- decisions once per statement (migrations/postgres/0030_rollups_per_statement.sql);
-- SQLite has no statement-level triggers and keeps its row triggers. The file keeps the
-- two folders' migrations in step.
SELECT 1;
