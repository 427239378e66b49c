-- PostgreSQL records a group's processing outcomes in one call of a function
-- (migrations/postgres/0034_record_outcomes.sql). SQLite runs in the process, with no
-- round trip to save: each outcome is written by its own statements
-- (`store::outcomes::record_kept`). The file keeps the two schemas' migration numbers in
-- step.
SELECT 1;
