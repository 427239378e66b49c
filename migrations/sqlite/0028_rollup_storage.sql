-- Storage settings of the rollup tables on PostgreSQL (page room for in-place updates,
-- autovacuum after a thousand updated rows): SQLite rewrites a row in place and has no
-- such settings, so nothing changes here. Same file name as
-- migrations/postgres/0028_rollup_storage.sql.

SELECT 1;
