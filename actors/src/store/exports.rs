//! Dataset exports: their rows, and the keyset scan of the items an export takes.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Db, StoreResult, Tx, items::ItemRow, with_db, with_db_write, with_tx};
use crate::domain::export::{ExportFilter, ExportFormat, ExportSpec, ExportState};

const COLUMNS: &str = "id, project_id, created_by, format, spec, state, snapshot_at, items_done, \
     items_total, bytes, blob_key, file_name, content_type, sha256, error, job_id, created_at, \
     started_at, finished_at, expires_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExportRow {
    pub id: Uuid,
    pub project_id: Uuid,
    /// None: written by `alta export` (no user, no artifact in the blob store).
    pub created_by: Option<Uuid>,
    #[sqlx(try_from = "String")]
    pub format: ExportFormat,
    pub spec: Json<ExportSpec>,
    #[sqlx(try_from = "String")]
    pub state: ExportState,
    pub snapshot_at: DateTime<Utc>,
    pub items_done: i64,
    pub items_total: Option<i64>,
    pub bytes: i64,
    pub blob_key: Option<String>,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub job_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(tx: &mut Tx, row: &ExportRow) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO exports ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         $12, $13, $14, $15, $16, $17, $18, $19, $20)"
    );
    with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(row.id)
        .bind(row.project_id)
        .bind(row.created_by)
        .bind(row.format.as_str())
        .bind(row.spec.clone())
        .bind(row.state.as_str())
        .bind(row.snapshot_at)
        .bind(row.items_done)
        .bind(row.items_total)
        .bind(row.bytes)
        .bind(row.blob_key.clone())
        .bind(row.file_name.clone())
        .bind(row.content_type.clone())
        .bind(row.sha256.clone())
        .bind(row.error.clone())
        .bind(row.job_id)
        .bind(row.created_at)
        .bind(row.started_at)
        .bind(row.finished_at)
        .bind(row.expires_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// An export of a project.
pub async fn find(db: &Db, project_id: Uuid, id: Uuid) -> StoreResult<Option<ExportRow>> {
    let sql = format!("SELECT {COLUMNS} FROM exports WHERE id = $1 AND project_id = $2");
    Ok(with_db!(db, |pool| sqlx::query_as::<_, ExportRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(pool)
    .await)?)
}

/// [`find`] inside a transaction.
pub async fn find_tx(tx: &mut Tx, project_id: Uuid, id: Uuid) -> StoreResult<Option<ExportRow>> {
    let sql = format!("SELECT {COLUMNS} FROM exports WHERE id = $1 AND project_id = $2");
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, ExportRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(conn)
    .await)?)
}

/// A page of a project's exports, newest first.
pub async fn list(
    db: &Db,
    project_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<ExportRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM exports WHERE project_id = $1 AND ($2 IS NULL OR id < $2) \
         ORDER BY id DESC LIMIT $3"
    );
    Ok(with_db!(db, |pool| sqlx::query_as::<_, ExportRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

pub async fn delete(tx: &mut Tx, id: Uuid) -> StoreResult<bool> {
    let n = with_tx!(tx, |conn| sqlx::query("DELETE FROM exports WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The run began (again): how many items it takes. Only while not finished.
pub async fn mark_running(
    db: &Db,
    id: Uuid,
    items_total: i64,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE exports SET state = 'running', items_total = $2, \
               started_at = COALESCE(started_at, $3) \
               WHERE id = $1 AND state IN ('queued', 'running')";
    let n = with_db_write!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(items_total)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Progress of a running export (throttled by the caller). False when the export is
/// gone (deleted while it ran).
pub async fn progress(db: &Db, id: Uuid, items_done: i64, bytes: i64) -> StoreResult<bool> {
    let sql = "UPDATE exports SET items_done = $2, bytes = $3 WHERE id = $1 AND state = 'running'";
    let n = with_db_write!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(items_done)
        .bind(bytes)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// What a finished export published.
#[derive(Debug, Clone)]
pub struct Published {
    pub blob_key: String,
    pub file_name: String,
    pub content_type: String,
    pub sha256: String,
    pub bytes: i64,
    pub items: i64,
}

/// Mark a running export finished with its artifact. False when it is not running
/// (deleted meanwhile, or finished by an earlier run).
pub async fn finish(
    tx: &mut Tx,
    id: Uuid,
    artifact: &Published,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE exports SET state = 'finished', blob_key = $2, file_name = $3, \
               content_type = $4, bytes = $5, items_done = $6, items_total = $6, \
               finished_at = $7, expires_at = $8, sha256 = $9, error = NULL \
               WHERE id = $1 AND state = 'running'";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(&artifact.blob_key)
        .bind(&artifact.file_name)
        .bind(&artifact.content_type)
        .bind(artifact.bytes)
        .bind(artifact.items)
        .bind(now)
        .bind(expires_at)
        .bind(&artifact.sha256)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Mark an export failed for good (its job's attempts are used up).
pub async fn fail(
    tx: &mut Tx,
    id: Uuid,
    error: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE exports SET state = 'failed', error = $2, finished_at = $3, expires_at = $4 \
               WHERE id = $1 AND state IN ('queued', 'running')";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(error)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Exports past their retention: `(project_id, id)`.
pub async fn expired(db: &Db, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<(Uuid, Uuid)>> {
    let sql = "SELECT project_id, id FROM exports WHERE expires_at IS NOT NULL AND expires_at < $1 \
               ORDER BY expires_at LIMIT $2";
    Ok(with_db!(db, |pool| sqlx::query_as::<_, (Uuid, Uuid)>(sql)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await)?)
}

/// Remove an expired export's row (the sweeper, once its file is gone).
pub async fn delete_expired(db: &Db, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "DELETE FROM exports WHERE id = $1 AND expires_at < $2";
    let n = with_db_write!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Whether a blob key is an export's file.
pub async fn blob_in_use(db: &Db, key: &str) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM exports WHERE blob_key = $1";
    let n = with_db!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .bind(key)
        .fetch_one(pool)
        .await)?;
    Ok(n > 0)
}

/// Whether an export may still be written (queued or running).
pub async fn is_running(db: &Db, id: Uuid) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM exports WHERE id = $1 AND state IN ('queued', 'running')";
    let n = with_db!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .bind(id)
        .fetch_one(pool)
        .await)?;
    Ok(n > 0)
}

/// The snapshot time of an export of the project (the start of an incremental one).
pub async fn snapshot_tx(
    tx: &mut Tx,
    project_id: Uuid,
    id: Uuid,
) -> StoreResult<Option<DateTime<Utc>>> {
    let sql = "SELECT snapshot_at FROM exports WHERE id = $1 AND project_id = $2";
    Ok(with_tx!(tx, |conn| {
        sqlx::query_scalar::<_, DateTime<Utc>>(sql)
            .bind(id)
            .bind(project_id)
            .fetch_optional(conn)
            .await
    })?)
}

/// The items an export takes: its filter, bounded by its snapshot time, and by the
/// previous export's for an incremental one.
#[derive(Debug, Clone)]
pub struct Scan<'a> {
    pub project_id: Uuid,
    pub filter: &'a ExportFilter,
    pub snapshot_at: DateTime<Utc>,
    pub since: Option<DateTime<Utc>>,
}

/// `$1` project, `$2` kind, `$3` contributor, `$4`/`$5` created from/to, `$6` snapshot,
/// `$7` since, `$8` the cursor, `$9` the limit, then the states and the labels. The
/// cursor is always bound (the nil id before the first page): `($8 IS NULL OR id > $8)`
/// kept SQLite from seeking the index to it, so each page scanned every row before it
/// (a million items took 81 s instead of seconds).
fn scan_where(scan: &Scan<'_>) -> String {
    let mut n = 9;
    let mut next = || {
        n += 1;
        format!("${n}")
    };
    let states: Vec<String> = scan.filter.states.iter().map(|_| next()).collect();
    let labels: String = scan
        .filter
        .labels
        .iter()
        .map(|_| {
            let (field, value) = (next(), next());
            format!(
                " AND id IN (SELECT item_id FROM annotation_labels WHERE project_id = $1 \
                 AND field = {field} AND value = {value})"
            )
        })
        .collect();
    format!(
        "project_id = $1 AND deleted_at IS NULL AND status IN ({}) \
         AND (CAST($2 AS TEXT) IS NULL OR kind = CAST($2 AS TEXT)) \
         AND ($3 IS NULL OR contributor_id = $3) \
         AND ($4 IS NULL OR created_at >= $4) AND ($5 IS NULL OR created_at < $5) \
         AND created_at <= $6 AND (decided_at IS NULL OR decided_at <= $6) \
         AND ($7 IS NULL OR decided_at > $7) \
         AND id > $8{labels}",
        states.join(", ")
    )
}

macro_rules! bind_scan {
    ($q:expr, $scan:expr, $after:expr, $limit:expr) => {{
        let mut q = $q
            .bind($scan.project_id)
            .bind($scan.filter.kind.map(|k| k.as_str()))
            .bind($scan.filter.contributor_id)
            .bind($scan.filter.from)
            .bind($scan.filter.to)
            .bind($scan.snapshot_at)
            .bind($scan.since)
            .bind($after.unwrap_or(Uuid::nil()))
            .bind($limit);
        for state in &$scan.filter.states {
            q = q.bind(state.as_str());
        }
        for label in &$scan.filter.labels {
            q = q.bind(label.field.as_str()).bind(label.value.as_str());
        }
        q
    }};
}

/// The next page of the scan after `after`, in id order (ids are time-ordered).
pub async fn scan_page(
    db: &Db,
    scan: &Scan<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<ItemRow>> {
    let sql = format!(
        "SELECT {} FROM items WHERE {} ORDER BY id LIMIT $9",
        super::items::COLUMNS,
        scan_where(scan)
    );
    Ok(with_db!(db, |pool| bind_scan!(
        sqlx::query_as::<_, ItemRow>(sqlx::AssertSqlSafe(sql.clone())),
        scan,
        after,
        limit
    )
    .fetch_all(pool)
    .await)?)
}

/// How many items the scan takes after `after`.
pub async fn scan_count(db: &Db, scan: &Scan<'_>, after: Option<Uuid>) -> StoreResult<i64> {
    // `$9` (the limit) must appear for the numbering: it bounds nothing here.
    let sql = format!(
        "SELECT COUNT(*) FROM items WHERE {} AND CAST($9 AS BIGINT) IS NOT NULL",
        scan_where(scan)
    );
    Ok(with_db!(db, |pool| bind_scan!(
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.clone())),
        scan,
        after,
        0i64
    )
    .fetch_one(pool)
    .await)?)
}

/// Every reason code given in these items' review decisions, all rounds.
pub async fn reason_codes_of(db: &Db, items: &[Uuid]) -> StoreResult<Vec<(Uuid, String)>> {
    super::fetch_by_keys(db, items, REASON_CODES_OF, |keys| {
        format!(
            "SELECT item_id, reason_code FROM review_decisions WHERE item_id IN ({keys}) \
             AND reason_code IS NOT NULL ORDER BY item_id, created_at"
        )
    })
    .await
}

/// [`reason_codes_of`] on PostgreSQL (see `store::fetch_by_keys`), read once per page of
/// an export.
pub const REASON_CODES_OF: &str = "SELECT d.item_id, d.reason_code \
     FROM unnest($1::uuid[]) AS w (item) CROSS JOIN LATERAL \
     (SELECT item_id, reason_code, created_at FROM review_decisions \
     WHERE review_decisions.item_id = w.item AND reason_code IS NOT NULL OFFSET 0) d \
     ORDER BY d.item_id, d.created_at";
