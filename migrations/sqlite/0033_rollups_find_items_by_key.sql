-- PostgreSQL's rollup triggers find an item by its key alone, then check that it is
-- live (migrations/postgres/0033_rollups_find_items_by_key.sql). SQLite already finds
-- `id = … AND deleted_at IS NULL` through the primary key's index (`EXPLAIN QUERY
-- PLAN`: `SEARCH items USING INDEX sqlite_autoindex_items_1 (id=?)`): nothing changes
-- here. The file keeps the two schemas' migration numbers in step.
SELECT 1;
