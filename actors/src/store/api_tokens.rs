//! Personal access tokens (stored hashed).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_db_write, with_tx};

const COLUMNS: &str =
    "id, user_id, name, prefix, scopes, created_at, expires_at, last_used_at, revoked_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    /// Space-separated: `read` or `read write`.
    pub scopes: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(tx: &mut Tx, row: &ApiTokenRow, token_hash: &str) -> StoreResult<()> {
    let sql = "INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, scopes, created_at, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.id)
        .bind(row.user_id)
        .bind(row.name.as_str())
        .bind(token_hash)
        .bind(row.prefix.as_str())
        .bind(row.scopes.as_str())
        .bind(row.created_at)
        .bind(row.expires_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Tokens of a user that still work at `now`.
pub async fn count_live(tx: &mut Tx, user: Uuid, now: DateTime<Utc>) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > $2)";
    let n = with_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(sql)
        .bind(user)
        .bind(now)
        .fetch_one(conn)
        .await)?;
    Ok(n)
}

/// A user's tokens that still work, newest first.
pub async fn live_of(db: &Db, user: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<ApiTokenRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL \
         AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at DESC, id DESC"
    );
    let rows = with_db!(db, |pool| sqlx::query_as::<_, ApiTokenRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(user)
    .bind(now)
    .fetch_all(pool)
    .await)?;
    Ok(rows)
}

/// The caller of a token that works at `now`, with an active user:
/// (token, email, role).
pub async fn active_caller(
    db: &Db,
    token_hash: &str,
    now: DateTime<Utc>,
) -> StoreResult<Option<(ApiTokenRow, String, String)>> {
    let sql = "SELECT t.id, t.user_id, t.name, t.prefix, t.scopes, t.created_at, t.expires_at, \
               t.last_used_at, t.revoked_at, u.email, u.role \
               FROM api_tokens t JOIN users u ON u.id = t.user_id \
               WHERE t.token_hash = $1 AND t.revoked_at IS NULL \
               AND (t.expires_at IS NULL OR t.expires_at > $2) \
               AND u.disabled_at IS NULL AND u.deleted_at IS NULL";
    #[derive(sqlx::FromRow)]
    struct Joined {
        #[sqlx(flatten)]
        token: ApiTokenRow,
        email: String,
        role: String,
    }
    let row = with_db!(db, |pool| sqlx::query_as::<_, Joined>(sql)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(pool)
        .await)?;
    Ok(row.map(|j| (j.token, j.email, j.role)))
}

/// Note a use, at most once a minute per token (a write on every request would cost
/// more than the information is worth).
pub async fn touch(db: &Db, id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
    let sql = "UPDATE api_tokens SET last_used_at = $2 WHERE id = $1 \
               AND (last_used_at IS NULL OR last_used_at < $3)";
    with_db_write!(db, |pool| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .bind(now - chrono::Duration::seconds(60))
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Revoke a token of `user`; false when there is no such live token of theirs.
pub async fn revoke(tx: &mut Tx, id: Uuid, user: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "UPDATE api_tokens SET revoked_at = $3 WHERE id = $1 AND user_id = $2 \
               AND revoked_at IS NULL";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(user)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// Revoke every live token of `user` (a password reset, a verification, a sign-out
/// everywhere); the names of those revoked, oldest first.
pub async fn revoke_all(tx: &mut Tx, user: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<String>> {
    let select = "SELECT name FROM api_tokens WHERE user_id = $1 AND revoked_at IS NULL \
                  AND (expires_at IS NULL OR expires_at > $2) ORDER BY created_at, id";
    let names = with_tx!(tx, |conn| sqlx::query_scalar::<_, String>(select)
        .bind(user)
        .bind(now)
        .fetch_all(conn)
        .await)?;
    let sql = "UPDATE api_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(user)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(names)
}
