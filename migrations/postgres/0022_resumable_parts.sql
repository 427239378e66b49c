-- The chunks of a resumable upload when several nodes share uploads (MULTI_NODE): each
-- committed chunk is a blob of its own, `{upload id}/{part id}`, so that any node can
-- continue the upload and the node receiving the last chunk assembles the file.
-- Same file name and meaning as migrations/sqlite/0022_resumable_parts.sql.

CREATE TABLE resumable_parts (
    upload_id     UUID NOT NULL REFERENCES resumable_uploads (id) ON DELETE CASCADE,
    start_offset  BIGINT NOT NULL,
    length        BIGINT NOT NULL CHECK (length > 0),
    blob_key      TEXT NOT NULL,
    PRIMARY KEY (upload_id, start_offset)
);
