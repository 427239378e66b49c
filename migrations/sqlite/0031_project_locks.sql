-- Every group of a project's actor locks the project's row by updating it, and the update
-- counts (`locks`). On PostgreSQL the count tells a group whether another one committed
-- after its lock statement's snapshot (migrations/postgres/0031_project_locks.sql);
-- SQLite has one writer and no such snapshot, but keeps the same column so that the two
-- schemas stay in step.

ALTER TABLE projects ADD COLUMN locks INTEGER NOT NULL DEFAULT 0;
