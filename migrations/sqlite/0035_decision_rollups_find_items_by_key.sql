-- PostgreSQL's rollups of new review decisions run once per statement, over the inserted
-- rows, and 0035 there makes them find each decision's item by its key
-- (migrations/postgres/0035_decision_rollups_find_items_by_key.sql). SQLite's are row
-- triggers (0019, 0023, 0024), which already look up one item by its key. The file keeps
-- the two schemas' migration numbers in step.
SELECT 1;
