-- An export written by `alta export` on the server is recorded too (so a later export
-- can take only what was decided since it): it has no author among the users and no
-- artifact in the blob store (its file is where the command wrote it). Same file name as
-- migrations/sqlite/0029_cli_exports.sql.

ALTER TABLE exports ALTER COLUMN created_by DROP NOT NULL;
