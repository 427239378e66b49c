-- The rollup tables are a few rows that every change updates again: a bulk load or a
-- busy hour leaves thousands of dead versions of each row, which every summary then
-- walks (benches/review.rs right after loading 1,000,000 items, before this). Room on
-- each page keeps an update on its page (a HOT update, pruned when the page is next
-- read), and autovacuum visits each table after a thousand updated rows rather than
-- after a fifth of a table that has almost none. Same file
-- name and meaning as migrations/sqlite/0028_rollup_storage.sql (where there is nothing
-- to set: SQLite rewrites a row in place).

ALTER TABLE rollup_items SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE rollup_decisions SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE rollup_hours SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE rollup_verdict_times SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE rollup_contributor_hours SET (fillfactor = 50,
    autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE rollup_engines SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE rollup_failures SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
ALTER TABLE rollup_labels SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.05);
