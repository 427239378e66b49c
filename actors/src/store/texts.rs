//! The text of items: the machine's output and every human revision after it. The
//! newest revision is the current text; older ones stay, so review can see what changed.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_tx};

const COLUMNS: &str = "id, item_id, revision, source, engine, author_id, job_id, text, pages, words, confidence, created_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TextRow {
    pub id: Uuid,
    pub item_id: Uuid,
    pub revision: i32,
    /// `machine` or `human`.
    pub source: String,
    pub engine: Option<String>,
    pub author_id: Option<Uuid>,
    pub job_id: Option<Uuid>,
    pub text: String,
    pub pages: Option<sqlx::types::Json<Value>>,
    pub words: Option<sqlx::types::Json<Value>>,
    pub confidence: Option<f64>,
    pub created_at: DateTime<Utc>,
}

impl TextRow {
    /// A person's revision of an item's text (its number is given when it is added).
    pub fn human(item_id: Uuid, author: Uuid, text: String, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            item_id,
            revision: 0,
            source: "human".into(),
            engine: None,
            author_id: Some(author),
            job_id: None,
            text,
            pages: None,
            words: None,
            confidence: None,
            created_at: now,
        }
    }
}

/// Add the next revision of an item's text. A machine revision carries its job id:
/// when that job already left a revision (it ran twice), nothing is added and false
/// is returned.
pub async fn add_revision(tx: &mut Tx, row: &TextRow) -> StoreResult<bool> {
    // One statement: a job's text is written once, however often the job runs.
    let sql = "INSERT INTO item_texts (id, item_id, revision, source, engine, author_id, job_id, \
               text, pages, words, confidence, created_at) \
               SELECT $1, $2, (SELECT COALESCE(MAX(revision), 0) + 1 FROM item_texts WHERE item_id = $2), \
               $3, $4, $5, $6, $7, $8, $9, $10, $11 \
               WHERE $6 IS NULL OR NOT EXISTS (SELECT 1 FROM item_texts WHERE job_id = $6)";
    let written = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.id)
        .bind(row.item_id)
        .bind(row.source.as_str())
        .bind(row.engine.clone())
        .bind(row.author_id)
        .bind(row.job_id)
        .bind(row.text.as_str())
        .bind(row.pages.clone())
        .bind(row.words.clone())
        .bind(row.confidence)
        .bind(row.created_at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(written == 1)
}

/// Every revision of an item's text, oldest first.
pub async fn revisions(db: &Db, item: Uuid) -> StoreResult<Vec<TextRow>> {
    let sql = format!("SELECT {COLUMNS} FROM item_texts WHERE item_id = $1 ORDER BY revision");
    let rows = with_db!(db, |pool| sqlx::query_as::<_, TextRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(item)
    .fetch_all(pool)
    .await)?;
    Ok(rows)
}

/// The newest revision number of an item's text, if it has any.
pub async fn latest_revision(tx: &mut Tx, item: Uuid) -> StoreResult<Option<i32>> {
    let sql = "SELECT MAX(revision) FROM item_texts WHERE item_id = $1";
    let n = with_tx!(tx, |conn| sqlx::query_scalar::<_, Option<i32>>(sql)
        .bind(item)
        .fetch_one(conn)
        .await)?;
    Ok(n)
}

/// The newest revision of each of these items' texts.
pub async fn current_of(db: &Db, items: &[Uuid]) -> StoreResult<Vec<TextRow>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM item_texts t WHERE t.item_id IN ({}) AND t.revision = \
         (SELECT MAX(r.revision) FROM item_texts r WHERE r.item_id = t.item_id)",
        super::placeholders(items.len())
    );
    let rows = with_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, TextRow>(sqlx::AssertSqlSafe(sql.clone()));
        for id in items {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await
    })?;
    Ok(rows)
}

/// The item's current text revision, inside a transaction.
pub async fn current_tx(tx: &mut Tx, item: Uuid) -> StoreResult<Option<TextRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM item_texts WHERE item_id = $1 ORDER BY revision DESC LIMIT 1"
    );
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, TextRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// Revision `revision` of the item's text, inside a transaction.
pub async fn revision_tx(tx: &mut Tx, item: Uuid, revision: i32) -> StoreResult<Option<TextRow>> {
    let sql = format!("SELECT {COLUMNS} FROM item_texts WHERE item_id = $1 AND revision = $2");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, TextRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .bind(revision)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

fn timed_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM item_texts WHERE item_id = $1 AND source = 'machine' \
         AND words IS NOT NULL ORDER BY revision DESC LIMIT 1"
    )
}

/// The item's newest machine text with word timings (a transcription), if any.
pub async fn timed(db: &Db, item: Uuid) -> StoreResult<Option<TextRow>> {
    let sql = timed_sql();
    Ok(with_db!(db, |pool| sqlx::query_as::<_, TextRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .fetch_optional(pool)
    .await)?)
}

/// [`timed`] inside a transaction.
pub async fn timed_tx(tx: &mut Tx, item: Uuid) -> StoreResult<Option<TextRow>> {
    let sql = timed_sql();
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, TextRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(item)
    .fetch_optional(conn)
    .await)?)
}
