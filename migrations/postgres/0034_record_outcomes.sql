-- A group of the project's actor records the processing outcomes it holds in one call,
-- one round trip however many there are (`store::outcomes::record_kept`). Each outcome
-- is written as `store::outcomes::RECORD_OUTCOME` writes one: the job marked done if
-- its worker still holds it; then the item moved, if it still waits for that job; then
-- the machine's text, if there is one. Each row is found by its key alone, the other
-- conditions in one `IS TRUE` (see RECORD_OUTCOME: on young tables PostgreSQL 15 chose
-- other indexes, and PL/pgSQL keeps its plans for the connection). A statement over all
-- the outcomes at once (arrays joined to `jobs` and `items`) was planned with sequential
-- scans on young tables, which this loop of key lookups cannot be.
-- Returns the outcomes recorded, and those among them with a new text for an item that
-- has an annotation (whose spans the text must carry: the caller then records each alone).
-- `from_states` holds each outcome's states as one comma-separated string.
-- Same file name as migrations/sqlite/0034_record_outcomes.sql.

CREATE FUNCTION record_outcomes(
    o_job UUID[], o_worker TEXT[], o_kind TEXT[], o_item UUID[], o_project UUID[],
    o_from TEXT[], o_to TEXT[], o_error_code TEXT[], o_error TEXT[], o_text_id UUID[],
    o_engine TEXT[], o_text TEXT[], o_pages JSONB[], o_words JSONB[],
    o_confidence FLOAT8[], o_at TIMESTAMPTZ[],
    OUT recorded BIGINT, OUT annotated BIGINT)
LANGUAGE plpgsql AS $$
BEGIN
    recorded := 0;
    annotated := 0;
    FOR k IN 1 .. COALESCE(array_length(o_job, 1), 0) LOOP
        UPDATE jobs SET state = 'done', finished_at = o_at[k], updated_at = o_at[k],
            lease_until = NULL, last_error = NULL
        WHERE id = o_job[k]
            AND (locked_by = o_worker[k] AND state = 'running' AND kind = o_kind[k]) IS TRUE;
        CONTINUE WHEN NOT FOUND;
        UPDATE items SET status = o_to[k], processing_error_code = o_error_code[k],
            processing_error = o_error[k], updated_at = o_at[k]
        WHERE id = o_item[k]
            AND (project_id = o_project[k] AND job_id = o_job[k] AND deleted_at IS NULL
                 AND status = ANY (string_to_array(o_from[k], ','))) IS TRUE;
        CONTINUE WHEN NOT FOUND;
        recorded := recorded + 1;
        IF o_text_id[k] IS NOT NULL THEN
            INSERT INTO item_texts (id, item_id, revision, source, engine, author_id, job_id,
                text, pages, words, confidence, created_at)
            SELECT o_text_id[k], o_item[k],
                (SELECT COALESCE(MAX(revision), 0) + 1 FROM item_texts WHERE item_id = o_item[k]),
                'machine', o_engine[k], NULL, o_job[k], o_text[k], o_pages[k], o_words[k],
                o_confidence[k], o_at[k]
            WHERE NOT EXISTS (SELECT 1 FROM item_texts WHERE job_id = o_job[k]);
            IF EXISTS (SELECT 1 FROM annotation_revisions WHERE item_id = o_item[k]) THEN
                annotated := annotated + 1;
            END IF;
        END IF;
    END LOOP;
END
$$;
