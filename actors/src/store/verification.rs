//! Email verification tokens: only the SHA-256 of a token is stored; single use.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreResult, Tx, with_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerificationTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    tx: &mut Tx,
    user_id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO email_verification_tokens (id, user_id, token_hash, expires_at, created_at) \
               VALUES ($1, $2, $3, $4, $5)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(Uuid::now_v7())
        .bind(user_id)
        .bind(token_hash)
        .bind(expires_at)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn find_by_hash(
    tx: &mut Tx,
    token_hash: &str,
) -> StoreResult<Option<VerificationTokenRow>> {
    let sql = "SELECT id, user_id, expires_at, used_at FROM email_verification_tokens WHERE token_hash = $1";
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, VerificationTokenRow>(sql)
        .bind(token_hash)
        .fetch_optional(conn)
        .await)?;
    Ok(row)
}

/// Spend the token; false when someone else spent it first.
pub async fn mark_used(tx: &mut Tx, id: Uuid, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "UPDATE email_verification_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}
