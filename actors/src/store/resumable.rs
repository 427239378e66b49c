//! Resumable (tus) uploads in progress. `upload_offset` only moves forward, and only
//! from the offset the writer read (a conditional update), so two writers can never
//! both commit bytes at one offset.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_db_write, with_tx};
use crate::domain::{DataKind, ResumableState};

const COLUMNS: &str = "id, user_id, project_id, kind, upload_length, upload_offset, raw_metadata, \
     fields, state, item_id, error_code, error_detail, created_at, updated_at, expires_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ResumableRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub project_id: Uuid,
    #[sqlx(try_from = "String")]
    pub kind: DataKind,
    pub upload_length: i64,
    pub upload_offset: i64,
    pub raw_metadata: String,
    pub fields: sqlx::types::Json<Value>,
    #[sqlx(try_from = "String")]
    pub state: ResumableState,
    pub item_id: Option<Uuid>,
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, row: &ResumableRow) -> StoreResult<()> {
    let sql = "INSERT INTO resumable_uploads (id, user_id, project_id, kind, upload_length, \
               upload_offset, raw_metadata, fields, state, item_id, error_code, error_detail, \
               created_at, updated_at, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.id)
        .bind(row.user_id)
        .bind(row.project_id)
        .bind(row.kind.as_str())
        .bind(row.upload_length)
        .bind(row.upload_offset)
        .bind(row.raw_metadata.as_str())
        .bind(row.fields.clone())
        .bind(row.state.as_str())
        .bind(row.item_id)
        .bind(row.error_code.clone())
        .bind(row.error_detail.clone())
        .bind(row.created_at)
        .bind(row.updated_at)
        .bind(row.expires_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn find(db: &Db, id: Uuid) -> StoreResult<Option<ResumableRow>> {
    let sql = format!("SELECT {COLUMNS} FROM resumable_uploads WHERE id = $1");
    let row = with_db!(db, |pool| sqlx::query_as::<_, ResumableRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

/// Unfinished uploads a user has open (a cap keeps one account from filling the disk).
pub async fn count_receiving(tx: &mut Tx, user: Uuid, now: DateTime<Utc>) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM resumable_uploads \
               WHERE user_id = $1 AND state = 'receiving' AND expires_at > $2";
    let n = with_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(sql)
        .bind(user)
        .bind(now)
        .fetch_one(conn)
        .await)?;
    Ok(n)
}

/// The conditional move of an upload's committed offset (and its expiry).
const ADVANCE: &str = "UPDATE resumable_uploads SET upload_offset = $3, updated_at = $4, \
                       expires_at = $5 WHERE id = $1 AND upload_offset = $2 \
                       AND state = 'receiving'";

/// Move the committed offset from `from` to `to` and push the expiry out. False when
/// the row is no longer receiving at `from` (another writer, termination, expiry).
pub async fn advance(
    tx: &mut Tx,
    id: Uuid,
    from: i64,
    to: i64,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<bool> {
    let n = with_tx!(tx, |conn| sqlx::query(ADVANCE)
        .bind(id)
        .bind(from)
        .bind(to)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The upload became an item: all bytes are committed.
pub async fn complete(tx: &mut Tx, id: Uuid, item: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "UPDATE resumable_uploads SET state = 'completed', item_id = $2, \
               upload_offset = upload_length, updated_at = $3 \
               WHERE id = $1 AND state = 'receiving'";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(item)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// The complete file was refused (type, duplicate, corrupt audio…): kept with the
/// reason so the client can ask what happened; the bytes are gone.
pub async fn fail(
    tx: &mut Tx,
    id: Uuid,
    code: &str,
    detail: &str,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE resumable_uploads SET state = 'failed', error_code = $2, error_detail = $3, \
               upload_offset = upload_length, updated_at = $4 \
               WHERE id = $1 AND state = 'receiving'";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(code)
        .bind(detail)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

pub async fn delete(db: &Db, id: Uuid) -> StoreResult<bool> {
    let sql = "DELETE FROM resumable_uploads WHERE id = $1";
    let n = with_db_write!(db, |pool| sqlx::query(sql)
        .bind(id)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Remove an upload and its parts' rows (their blobs are removed by the caller).
pub async fn delete_tx(tx: &mut Tx, id: Uuid) -> StoreResult<bool> {
    delete_parts_tx(tx, id).await?;
    let n = with_tx!(tx, |conn| sqlx::query(
        "DELETE FROM resumable_uploads WHERE id = $1"
    )
    .bind(id)
    .execute(conn)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Forget an upload's parts' rows, in a transition (their blobs are removed by the
/// caller once it has committed).
pub async fn delete_parts_tx(tx: &mut Tx, id: Uuid) -> StoreResult<()> {
    with_tx!(tx, |conn| sqlx::query(
        "DELETE FROM resumable_parts WHERE upload_id = $1"
    )
    .bind(id)
    .execute(conn)
    .await
    .map(|_| ()))?;
    Ok(())
}

/// Rows past their expiry: unfinished ones are abandoned; finished ones have been
/// readable long enough.
pub async fn expired(db: &Db, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Uuid>> {
    let sql =
        "SELECT id FROM resumable_uploads WHERE expires_at <= $1 ORDER BY expires_at LIMIT $2";
    let ids = with_db!(db, |pool| sqlx::query_scalar::<_, Uuid>(sql)
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await)?;
    Ok(ids)
}

pub async fn exists(db: &Db, id: Uuid) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM resumable_uploads WHERE id = $1";
    let n = with_db!(db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .bind(id)
        .fetch_one(pool)
        .await)?;
    Ok(n > 0)
}

/// A committed chunk of an upload whose chunks live in the blob store.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PartRow {
    pub start_offset: i64,
    pub length: i64,
    pub blob_key: String,
}

/// Commit a chunk kept in the blob store: the offset moves from `from` to
/// `from + part.length` and the part is recorded, together. False (nothing written)
/// when the row is no longer receiving at `from`.
pub async fn advance_with_part(
    tx: &mut Tx,
    id: Uuid,
    part: &PartRow,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> StoreResult<bool> {
    let moved = with_tx!(tx, |conn| sqlx::query(ADVANCE)
        .bind(id)
        .bind(part.start_offset)
        .bind(part.start_offset + part.length)
        .bind(now)
        .bind(expires_at)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    if moved != 1 {
        return Ok(false);
    }
    let sql = "INSERT INTO resumable_parts (upload_id, start_offset, length, blob_key) \
               VALUES ($1, $2, $3, $4)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(part.start_offset)
        .bind(part.length)
        .bind(part.blob_key.as_str())
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(true)
}

/// The upload's parts, in order.
pub async fn parts(db: &Db, id: Uuid) -> StoreResult<Vec<PartRow>> {
    let sql = "SELECT start_offset, length, blob_key FROM resumable_parts \
               WHERE upload_id = $1 ORDER BY start_offset";
    Ok(with_db!(db, |pool| sqlx::query_as::<_, PartRow>(sql)
        .bind(id)
        .fetch_all(pool)
        .await)?)
}

/// Forget the upload's parts (their blobs are removed by the caller).
pub async fn delete_parts(db: &Db, id: Uuid) -> StoreResult<()> {
    let sql = "DELETE FROM resumable_parts WHERE upload_id = $1";
    with_db_write!(db, |pool| sqlx::query(sql)
        .bind(id)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}
