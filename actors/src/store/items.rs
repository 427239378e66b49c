//! Data items (documents and recordings).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_tx};
use crate::domain::{DataKind, ItemStatus};

pub(crate) const COLUMNS: &str = "id, project_id, kind, contributor_id, status, title, language, external_id, metadata, \
     file_name, detected_type, content_type, size_bytes, sha256, blob_key, audio, created_at, updated_at, job_id, processing_error_code, processing_error, \
     review_round, submitted_at, review_claimed_by, review_lease_until, decided_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    pub id: Uuid,
    pub project_id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: DataKind,
    pub contributor_id: Uuid,
    #[sqlx(try_from = "String")]
    pub status: ItemStatus,
    pub title: Option<String>,
    pub language: Option<String>,
    pub external_id: Option<String>,
    pub metadata: sqlx::types::Json<Value>,
    pub file_name: String,
    pub detected_type: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub blob_key: String,
    pub audio: Option<sqlx::types::Json<Value>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest processing job (OCR or transcription).
    pub job_id: Option<Uuid>,
    /// Why processing failed (`processing_failed`), as a code and a sentence.
    pub processing_error_code: Option<String>,
    pub processing_error: Option<String>,
    /// Rework rounds used; review decisions count within the current round.
    pub review_round: i32,
    /// When the current review round began (the item entered `pending_review`).
    pub submitted_at: Option<DateTime<Utc>>,
    /// The reviewer holding the item and until when (expired means free).
    pub review_claimed_by: Option<Uuid>,
    pub review_lease_until: Option<DateTime<Utc>>,
    /// When the item reached `approved` or `rejected`.
    pub decided_at: Option<DateTime<Utc>>,
}

impl ItemRow {
    /// A recording's length from its audio analysis (none for documents, or when the
    /// analysis found none).
    pub fn duration_ms(&self) -> Option<u64> {
        self.audio
            .as_ref()
            .and_then(|a| a.0.get("duration_seconds"))
            .and_then(Value::as_f64)
            .filter(|s| *s > 0.0)
            .map(|s| (s * 1000.0).round() as u64)
    }
}

/// The columns a new item is inserted with, in the order of its cells.
pub(crate) const INSERT_COLUMNS: &str = "id, project_id, kind, contributor_id, status, title, \
     language, external_id, metadata, file_name, detected_type, content_type, size_bytes, \
     sha256, blob_key, audio, created_at, updated_at, job_id";

/// Insert a new item; false (and nothing written) when a unique index refuses it: the
/// same content or the same `external_id` is already a live item of the project.
pub async fn insert_unless_taken(tx: &mut Tx, row: &ItemRow) -> StoreResult<bool> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO items ({INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
             $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) ON CONFLICT DO NOTHING"
        )
    });
    let sql = sqlx::AssertSqlSafe(SQL.as_str());
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.id)
        .bind(row.project_id)
        .bind(row.kind.as_str())
        .bind(row.contributor_id)
        .bind(row.status.as_str())
        .bind(row.title.clone())
        .bind(row.language.clone())
        .bind(row.external_id.clone())
        .bind(row.metadata.clone())
        .bind(row.file_name.as_str())
        .bind(row.detected_type.as_str())
        .bind(row.content_type.as_str())
        .bind(row.size_bytes)
        .bind(row.sha256.as_str())
        .bind(row.blob_key.as_str())
        .bind(row.audio.clone())
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.job_id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// A live item of a live project, with the caller's role in that project (`None` when
/// they are not a member): what deciding whether they may see it takes, in one read.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemWithRole {
    #[sqlx(flatten)]
    pub item: ItemRow,
    pub my_role: Option<String>,
}

/// [`find_live_with_role`]'s statement. Like every statement here that finds one item,
/// it finds it by its key alone and checks the rest in one `IS TRUE`, which no index
/// serves: written plainly, the generic plan a connection keeps, made while `items` had
/// no statistics yet, read every live item through `items_export_idx` (whose predicate
/// is `deleted_at IS NULL`) to find one.
pub static LIVE_WITH_ROLE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {COLUMNS}, (SELECT m.role FROM project_members m \
         WHERE m.project_id = items.project_id AND m.user_id = $2) AS my_role \
         FROM items WHERE id = $1 AND (deleted_at IS NULL AND \
         (SELECT p.deleted_at IS NULL FROM projects p WHERE p.id = items.project_id)) IS TRUE"
    )
});

/// [`find_live_tx`]'s statement (see [`LIVE_WITH_ROLE`]).
pub static LIVE: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM items WHERE id = $1 AND (deleted_at IS NULL) IS TRUE")
});

/// A live item of a live project, with `user`'s role in that project.
pub async fn find_live_with_role(
    db: &Db,
    id: Uuid,
    user: Uuid,
) -> StoreResult<Option<ItemWithRole>> {
    let row = with_db!(db, |pool| sqlx::query_as::<_, ItemWithRole>(
        sqlx::AssertSqlSafe(LIVE_WITH_ROLE.as_str())
    )
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

pub async fn find_live_tx(tx: &mut Tx, id: Uuid) -> StoreResult<Option<ItemRow>> {
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, ItemRow>(
        sqlx::AssertSqlSafe(LIVE.as_str())
    )
    .bind(id)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// The live item of a project with this content hash, if any.
pub async fn id_by_sha256(tx: &mut Tx, project: Uuid, sha256: &str) -> StoreResult<Option<Uuid>> {
    let sql = "SELECT id FROM items WHERE project_id = $1 AND sha256 = $2 AND deleted_at IS NULL";
    let id = with_tx!(tx, |conn| sqlx::query_scalar::<_, Uuid>(sql)
        .bind(project)
        .bind(sha256)
        .fetch_optional(conn)
        .await)?;
    Ok(id)
}

pub async fn id_by_external_id(
    tx: &mut Tx,
    project: Uuid,
    external_id: &str,
) -> StoreResult<Option<Uuid>> {
    let sql =
        "SELECT id FROM items WHERE project_id = $1 AND external_id = $2 AND deleted_at IS NULL";
    let id = with_tx!(tx, |conn| sqlx::query_scalar::<_, Uuid>(sql)
        .bind(project)
        .bind(external_id)
        .fetch_optional(conn)
        .await)?;
    Ok(id)
}

/// [`soft_delete`]'s statement (see [`LIVE_WITH_ROLE`]).
pub const SOFT_DELETE: &str = "UPDATE items SET deleted_at = $2, updated_at = $2 \
     WHERE id = $1 AND (deleted_at IS NULL) IS TRUE";

pub async fn soft_delete(tx: &mut Tx, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
    let rows = with_tx!(tx, |conn| sqlx::query(SOFT_DELETE)
        .bind(id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

pub async fn add_storage_bytes(tx: &mut Tx, project: Uuid, delta: i64) -> StoreResult<()> {
    let sql = "UPDATE projects SET storage_bytes = storage_bytes + $2 WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(project)
        .bind(delta)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct ItemFilter {
    pub project_id: Uuid,
    pub kind: DataKind,
    pub status: Option<ItemStatus>,
    pub contributor_id: Option<Uuid>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after: Option<Uuid>,
    pub limit: i64,
    /// `(field, value)`: only items whose current annotation has each (label and
    /// multi_label fields, through `annotation_labels`).
    pub labels: Vec<(String, String)>,
}

/// How a list meets its label filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelJoin {
    /// `AND id IN (…)`: each filter is an index range of `annotation_labels`, read whole
    /// (right for a rare label; PostgreSQL's planner turns it into a merge join anyway).
    Within,
    /// `AND EXISTS (…)`: the items are walked newest first and each is looked up in
    /// `annotation_labels` by primary key, so a page of a common label stops after
    /// about `limit / share` items (SQLite; see [`label_join`]).
    Probe,
}

/// One clause per label filter, its field and value bound from `$9` on.
fn label_clauses(count: usize, join: LabelJoin) -> String {
    (0..count)
        .map(|i| {
            let (field, value) = (9 + 2 * i, 10 + 2 * i);
            match join {
                LabelJoin::Within => format!(
                    "AND id IN (SELECT item_id FROM annotation_labels WHERE project_id = $1 \
                     AND field = ${field} AND value = ${value})"
                ),
                LabelJoin::Probe => format!(
                    "AND EXISTS (SELECT 1 FROM annotation_labels l WHERE l.project_id = $1 \
                     AND l.field = ${field} AND l.value = ${value} AND l.item_id = items.id)"
                ),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The list statement with `labels` label filters: `$1` project, `$2` kind, `$3` status,
/// `$4` contributor, `$5`/`$6` creation time from/to, `$7` the cursor (ids below it),
/// `$8` the limit, then each filter's field and value (public for the benchmarks'
/// query plans). With `cursor` the bound is plain `id < $7`, which the planners seek in
/// the index (SQLite does not for `$7 IS NULL OR id < $7`, and walked a page deep in a
/// list from its newest item down to the cursor).
pub fn list_sql(labels: usize, join: LabelJoin, cursor: bool) -> String {
    let after = if cursor {
        "id < $7"
    } else {
        "($7 IS NULL OR id < $7)"
    };
    format!(
        "SELECT {COLUMNS} FROM items WHERE project_id = $1 AND kind = $2 AND deleted_at IS NULL \
         AND (CAST($3 AS TEXT) IS NULL OR status = CAST($3 AS TEXT)) \
         AND ($4 IS NULL OR contributor_id = $4) \
         AND ($5 IS NULL OR created_at >= $5) \
         AND ($6 IS NULL OR created_at < $6) \
         AND {after} {} \
         ORDER BY id DESC LIMIT $8",
        label_clauses(labels, join)
    )
}

/// Labels on at least one live item in this many of the kind make a label list walk
/// the items (SQLite): a page then reads at most about `limit × PROBE_SHARE` items.
const PROBE_SHARE: i64 = 50;

/// SQLite reads the whole index range of an `IN (…)` label before it orders, which for a
/// label on a tenth of a million items is most of the time of a page. When the rarest
/// filtered label is common (by the label rollup), the items are walked newest first
/// instead; a contributor's own list (few of the project's items) keeps the range.
async fn label_join(pool: &sqlx::SqlitePool, f: &ItemFilter) -> StoreResult<LabelJoin> {
    if f.labels.is_empty() || f.contributor_id.is_some() {
        return Ok(LabelJoin::Within);
    }
    let total: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(items), 0) FROM rollup_items WHERE project_id = $1 AND kind = $2",
    )
    .bind(f.project_id)
    .bind(f.kind.as_str())
    .fetch_one(pool)
    .await?;
    let mut rarest = i64::MAX;
    for (field, value) in &f.labels {
        let n: i64 = sqlx::query_scalar(
            "SELECT COALESCE(SUM(items), 0) FROM rollup_labels \
             WHERE project_id = $1 AND field = $2 AND value = $3",
        )
        .bind(f.project_id)
        .bind(field.as_str())
        .bind(value.as_str())
        .fetch_one(pool)
        .await?;
        rarest = rarest.min(n);
    }
    Ok(
        if rarest > 0 && rarest.saturating_mul(PROBE_SHARE) >= total {
            LabelJoin::Probe
        } else {
            LabelJoin::Within
        },
    )
}

/// One page of a project's live items of a kind, newest first.
pub async fn list(db: &Db, f: &ItemFilter) -> StoreResult<Vec<ItemRow>> {
    // -- backend-specific: SQLite's planner needs telling how to meet a common label.
    let join = match db {
        Db::Postgres(_) => LabelJoin::Within,
        Db::Sqlite(sqlite) => label_join(sqlite.pool(), f).await?,
    };
    let sql = list_sql(f.labels.len(), join, f.after.is_some());
    let rows = with_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql.clone()))
            .bind(f.project_id)
            .bind(f.kind.as_str())
            .bind(f.status.map(ItemStatus::as_str))
            .bind(f.contributor_id)
            .bind(f.from)
            .bind(f.to)
            .bind(f.after)
            .bind(f.limit);
        for (field, value) in &f.labels {
            q = q.bind(field.as_str()).bind(value.as_str());
        }
        q.fetch_all(pool).await
    })?;
    Ok(rows)
}

/// [`set_status`]'s statement (see [`LIVE_WITH_ROLE`]).
pub const SET_STATUS: &str = "UPDATE items SET status = $2, job_id = COALESCE($3, job_id), \
     processing_error_code = $4, processing_error = $5, updated_at = $6 \
     WHERE id = $1 AND (deleted_at IS NULL AND status IN ($7, $8, $9, $10)) IS TRUE";

/// Move an item between processing states: only from one of `from` (the state machine
/// in `items::state` decides which), so a stale worker cannot overwrite a newer state.
/// False when the item is not in one of those states (or gone).
#[allow(clippy::too_many_arguments)]
pub async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    from: &[&str],
    to: &str,
    job_id: Option<Uuid>,
    error: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    // At most four states: bind them as four parameters (unused ones repeat the first).
    let f = |i: usize| from.get(i).or(from.first()).copied().unwrap_or("");
    let rows = with_tx!(tx, |conn| sqlx::query(SET_STATUS)
        .bind(id)
        .bind(to)
        .bind(job_id)
        .bind(error.map(|e| e.0))
        .bind(error.map(|e| e.1))
        .bind(now)
        .bind(f(0))
        .bind(f(1))
        .bind(f(2))
        .bind(f(3))
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// Any item by id, deleted or not (workers finish the job of an item deleted meanwhile).
pub async fn find_any(db: &Db, id: Uuid) -> StoreResult<Option<ItemRow>> {
    let sql = format!("SELECT {COLUMNS} FROM items WHERE id = $1");
    let row = with_db!(db, |pool| sqlx::query_as::<_, ItemRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

/// Keep the item's current file in its file history (before it is replaced).
pub async fn keep_previous_file(
    tx: &mut Tx,
    item: &ItemRow,
    replaced_by: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO item_files (id, item_id, blob_key, file_name, detected_type, content_type, \
               size_bytes, sha256, replaced_by, replaced_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(Uuid::now_v7())
        .bind(item.id)
        .bind(item.blob_key.as_str())
        .bind(item.file_name.as_str())
        .bind(item.detected_type.as_str())
        .bind(item.content_type.as_str())
        .bind(item.size_bytes)
        .bind(item.sha256.as_str())
        .bind(replaced_by)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Point the item at a new file (`file` describes it: blob, name, type, size, hash,
/// audio analysis).
pub async fn replace_file(
    tx: &mut Tx,
    id: Uuid,
    file: &ItemRow,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "UPDATE items SET blob_key = $2, file_name = $3, detected_type = $4, content_type = $5, \
               size_bytes = $6, sha256 = $7, audio = $8, updated_at = $9 WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(file.blob_key.as_str())
        .bind(file.file_name.as_str())
        .bind(file.detected_type.as_str())
        .bind(file.content_type.as_str())
        .bind(file.size_bytes)
        .bind(file.sha256.as_str())
        .bind(file.audio.clone())
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Whether a blob is in use: the current file of an item (named by the item's id, or a
/// replacement's own key), or an earlier file kept in an item's history.
pub async fn blob_in_use(db: &Db, item_id: Uuid, key: &str) -> StoreResult<bool> {
    let sql = "SELECT (SELECT COUNT(*) FROM items WHERE id = $1) \
               + (SELECT COUNT(*) FROM items WHERE blob_key = $2) \
               + (SELECT COUNT(*) FROM item_files WHERE blob_key = $2)";
    let n = with_db!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .bind(item_id)
        .bind(key)
        .fetch_one(pool)
        .await)?;
    Ok(n > 0)
}
