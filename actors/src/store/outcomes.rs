//! A processing job's outcome on its item: the job marked done by the worker that holds
//! it, the item moved to its outcome (while the job is still the item's), and the
//! machine's text written. On PostgreSQL that is one statement (each statement is a round
//! trip the project's actor waits for); on SQLite, whose statements cost no network,
//! the same writes one after another.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{StoreResult, Tx, items, jobs, texts, texts::TextRow};

/// What a job's outcome writes.
pub struct OutcomeWrite<'a> {
    pub job_id: Uuid,
    pub worker: &'a str,
    pub kind: &'a str,
    pub item_id: Uuid,
    pub project_id: Uuid,
    /// The states the item may leave, and the one it goes to.
    pub from: &'a [&'a str],
    pub to: &'a str,
    /// Why there is no text (code, message).
    pub error: Option<(&'a str, &'a str)>,
    /// The machine's text (`source` machine, `job_id` this job).
    pub text: Option<&'a TextRow>,
    pub now: DateTime<Utc>,
}

/// A job's outcome kept for its group's one statement of kept writes
/// (`Change::keep_outcome`, `store::kept`): what [`OutcomeWrite`] borrows, owned.
pub struct KeptOutcome {
    pub job_id: Uuid,
    pub worker: String,
    pub kind: String,
    pub item_id: Uuid,
    pub project_id: Uuid,
    pub from: Vec<&'static str>,
    pub to: &'static str,
    pub error: Option<(&'static str, String)>,
    pub text: Option<TextRow>,
    pub now: DateTime<Utc>,
}

impl KeptOutcome {
    /// The outcome as [`record_outcome`] writes it alone.
    pub fn write(&self) -> OutcomeWrite<'_> {
        OutcomeWrite {
            job_id: self.job_id,
            worker: &self.worker,
            kind: &self.kind,
            item_id: self.item_id,
            project_id: self.project_id,
            from: &self.from,
            to: self.to,
            error: self
                .error
                .as_ref()
                .map(|(code, message)| (*code, message.as_str())),
            text: self.text.as_ref(),
            now: self.now,
        }
    }
}

/// How it went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The worker no longer holds the job: nothing was written.
    LeaseLost,
    /// The job is done, but its item no longer waits for it (deleted, reprocessed, or
    /// already given this outcome): the item is as it was.
    Dropped,
    /// The job is done and the item has its outcome. `annotated`: a new text was
    /// written for an item that has an annotation (whose spans it must carry).
    Recorded { annotated: bool },
}

/// [`record_outcome`] on PostgreSQL, one statement (public for the test of its plan).
///
/// The job and the item are found by their keys alone: their other conditions are one
/// `IS TRUE` each, which no index serves. As plain conditions, they let the planner
/// choose an index that leads with the kind or the project, or whose predicate is
/// `deleted_at IS NULL`, and read every entry it holds for them. On a table without
/// statistics yet (a new database, or one growing faster than autovacuum analyses it),
/// PostgreSQL 15 did so in its generic plan, which the connection then keeps.
pub const RECORD_OUTCOME: &str = "WITH done AS ( \
       UPDATE jobs SET state = 'done', finished_at = $4, updated_at = $4, \
       lease_until = NULL, last_error = NULL \
       WHERE id = $1 AND (locked_by = $2 AND state = 'running' AND kind = $3) IS TRUE \
       RETURNING id), \
     moved AS ( \
       UPDATE items SET status = $8, processing_error_code = $9, processing_error = $10, \
       updated_at = $4 \
       WHERE id = $5 AND (project_id = $6 AND job_id = $1 AND deleted_at IS NULL \
       AND status = ANY($7)) IS TRUE AND EXISTS (SELECT 1 FROM done) RETURNING id), \
     text AS ( \
       INSERT INTO item_texts (id, item_id, revision, source, engine, author_id, job_id, \
       text, pages, words, confidence, created_at) \
       SELECT $11, $5, \
       (SELECT COALESCE(MAX(revision), 0) + 1 FROM item_texts WHERE item_id = $5), \
       'machine', $12, NULL, $1, $13, $14, $15, $16, $4 \
       WHERE $17 AND EXISTS (SELECT 1 FROM moved) \
       AND NOT EXISTS (SELECT 1 FROM item_texts WHERE job_id = $1) RETURNING id) \
     SELECT (SELECT COUNT(*) FROM done), (SELECT COUNT(*) FROM moved), \
     $17 AND EXISTS (SELECT 1 FROM annotation_revisions WHERE item_id = $5)";

pub async fn record_outcome(tx: &mut Tx, w: &OutcomeWrite<'_>) -> StoreResult<Written> {
    let Tx::Postgres(conn) = tx else {
        return record_in_steps(tx, w).await;
    };
    let text = w.text;
    let (done, moved, annotated): (i64, i64, bool) = sqlx::query_as(RECORD_OUTCOME)
        .bind(w.job_id)
        .bind(w.worker)
        .bind(w.kind)
        .bind(w.now)
        .bind(w.item_id)
        .bind(w.project_id)
        .bind(w.from)
        .bind(w.to)
        .bind(w.error.map(|e| e.0))
        .bind(w.error.map(|e| e.1))
        .bind(text.map(|t| t.id))
        .bind(text.and_then(|t| t.engine.as_deref()))
        .bind(text.map(|t| t.text.as_str()))
        .bind(text.and_then(|t| t.pages.as_ref().map(|p| Json(&p.0))))
        .bind(text.and_then(|t| t.words.as_ref().map(|w| Json(&w.0))))
        .bind(text.and_then(|t| t.confidence))
        .bind(text.is_some())
        .fetch_one(&mut **conn)
        .await?;
    Ok(match (done, moved) {
        (0, _) => Written::LeaseLost,
        (_, 0) => Written::Dropped,
        _ => Written::Recorded { annotated },
    })
}

/// What [`record_kept`] did: the outcomes recorded (their job done by its worker, their
/// item waiting for it), and those among them with a new text for an item that has an
/// annotation (whose spans the text must carry, which only a transition alone does).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct KeptRecorded {
    pub recorded: u64,
    pub annotated: u64,
}

/// The outcomes a group kept, each written as [`record_outcome`] writes it. On
/// PostgreSQL one call of `record_outcomes` (migration 0034), one round trip for them
/// all, its array arguments the same statement however many there are; on SQLite one
/// after another.
pub async fn record_kept(tx: &mut Tx, outcomes: &[KeptOutcome]) -> StoreResult<KeptRecorded> {
    let mut done = KeptRecorded::default();
    if outcomes.is_empty() {
        return Ok(done);
    }
    let Tx::Postgres(conn) = tx else {
        for outcome in outcomes {
            if let Written::Recorded { annotated } = record_outcome(tx, &outcome.write()).await? {
                done.recorded += 1;
                done.annotated += u64::from(annotated);
            }
        }
        return Ok(done);
    };
    let texts = || outcomes.iter().map(|o| o.text.as_ref());
    let (recorded, annotated): (i64, i64) = sqlx::query_as(
        "SELECT recorded, annotated FROM record_outcomes($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(outcomes.iter().map(|o| o.job_id).collect::<Vec<_>>())
    .bind(
        outcomes
            .iter()
            .map(|o| o.worker.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(outcomes.iter().map(|o| o.kind.as_str()).collect::<Vec<_>>())
    .bind(outcomes.iter().map(|o| o.item_id).collect::<Vec<_>>())
    .bind(outcomes.iter().map(|o| o.project_id).collect::<Vec<_>>())
    .bind(
        outcomes
            .iter()
            .map(|o| o.from.join(","))
            .collect::<Vec<_>>(),
    )
    .bind(outcomes.iter().map(|o| o.to).collect::<Vec<_>>())
    .bind(
        outcomes
            .iter()
            .map(|o| o.error.as_ref().map(|e| e.0))
            .collect::<Vec<_>>(),
    )
    .bind(
        outcomes
            .iter()
            .map(|o| o.error.as_ref().map(|e| e.1.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(texts().map(|t| t.map(|t| t.id)).collect::<Vec<_>>())
    .bind(
        texts()
            .map(|t| t.and_then(|t| t.engine.as_deref()))
            .collect::<Vec<_>>(),
    )
    .bind(
        texts()
            .map(|t| t.map(|t| t.text.as_str()))
            .collect::<Vec<_>>(),
    )
    .bind(
        texts()
            .map(|t| t.and_then(|t| t.pages.as_ref()))
            .collect::<Vec<_>>(),
    )
    .bind(
        texts()
            .map(|t| t.and_then(|t| t.words.as_ref()))
            .collect::<Vec<_>>(),
    )
    .bind(
        texts()
            .map(|t| t.and_then(|t| t.confidence))
            .collect::<Vec<_>>(),
    )
    .bind(outcomes.iter().map(|o| o.now).collect::<Vec<_>>())
    .fetch_one(&mut **conn)
    .await?;
    Ok(KeptRecorded {
        recorded: recorded.max(0) as u64,
        annotated: annotated.max(0) as u64,
    })
}

/// [`record_outcome`] as separate statements.
async fn record_in_steps(tx: &mut Tx, w: &OutcomeWrite<'_>) -> StoreResult<Written> {
    if !jobs::complete_as_tx(tx, w.job_id, w.worker, w.kind, w.now).await? {
        return Ok(Written::LeaseLost);
    }
    let current = items::find_live_tx(tx, w.item_id)
        .await?
        .filter(|item| item.project_id == w.project_id && item.job_id == Some(w.job_id));
    if current.is_none()
        || !items::set_status(tx, w.item_id, w.from, w.to, None, w.error, w.now).await?
    {
        return Ok(Written::Dropped);
    }
    if let Some(text) = w.text {
        texts::add_revision(tx, text).await?;
    }
    // Only a new text has spans to carry.
    let annotated = w.text.is_some()
        && super::labels::current_annotation_tx(tx, w.item_id)
            .await?
            .is_some();
    Ok(Written::Recorded { annotated })
}
