-- Every group of a project's actor locks the project's row by updating it. The update now
-- counts: `locks` goes up by one each time. The statement that locks also reads the
-- callers' roles and the project's webhooks (one round trip), but under PostgreSQL's
-- READ COMMITTED those reads see the snapshot the statement began with: if it had to wait
-- for another group (on another node) to commit, a member that group removed would still
-- be seen. The count tells: when the locked row's `locks` is not the snapshot's plus one,
-- another group committed meanwhile, and the roles and webhooks are read again.
-- Same file name as migrations/sqlite/0031_project_locks.sql.

ALTER TABLE projects ADD COLUMN locks BIGINT NOT NULL DEFAULT 0;
