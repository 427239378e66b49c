-- Processing: the text of each item (machine output and each human revision) and why
-- processing failed. Same file name and meaning as migrations/postgres/0006_processing.sql.

ALTER TABLE items ADD COLUMN job_id BLOB;
ALTER TABLE items ADD COLUMN processing_error_code TEXT;
ALTER TABLE items ADD COLUMN processing_error TEXT;

CREATE TABLE item_texts (
    id          BLOB PRIMARY KEY,
    item_id     BLOB NOT NULL REFERENCES items (id),
    -- 1, 2, 3…: the newest revision is the item's current text.
    revision    INTEGER NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('machine', 'human')),
    -- machine: the engine (plain_text, pdf_text_layer, docx, tesseract, google_document_ai,
    -- google_speech); human: NULL.
    engine      TEXT,
    author_id   BLOB REFERENCES users (id),
    -- machine: the job that produced it; unique, so a job run twice leaves one result.
    job_id      BLOB UNIQUE,
    text        TEXT NOT NULL,
    -- Per page (documents), as a JSON array of strings.
    pages       TEXT,
    -- Word timings and confidence (transcripts), as a JSON array.
    words       TEXT,
    confidence  REAL,
    created_at  TEXT NOT NULL,
    UNIQUE (item_id, revision)
);
