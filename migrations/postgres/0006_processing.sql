-- Processing: the text of each item (machine output and each human revision) and why
-- processing failed. Same file name and meaning as migrations/sqlite/0006_processing.sql.

ALTER TABLE items ADD COLUMN job_id UUID;
ALTER TABLE items ADD COLUMN processing_error_code TEXT;
ALTER TABLE items ADD COLUMN processing_error TEXT;

CREATE TABLE item_texts (
    id          UUID PRIMARY KEY,
    item_id     UUID NOT NULL REFERENCES items (id),
    -- 1, 2, 3…: the newest revision is the item's current text.
    revision    INTEGER NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('machine', 'human')),
    -- machine: the engine (plain_text, pdf_text_layer, docx, tesseract, google_document_ai,
    -- google_speech); human: NULL.
    engine      TEXT,
    author_id   UUID REFERENCES users (id),
    -- machine: the job that produced it; unique, so a job run twice leaves one result.
    job_id      UUID UNIQUE,
    text        TEXT NOT NULL,
    -- Per page (documents), as a JSON array of strings.
    pages       JSONB,
    -- Word timings and confidence (transcripts), as a JSON array.
    words       JSONB,
    confidence  DOUBLE PRECISION,
    created_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (item_id, revision)
);
