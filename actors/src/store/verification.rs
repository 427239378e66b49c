//! One-time tokens sent by mail (email verification, password reset): only the SHA-256
//! of a token is stored; single use; each purpose has its own table of the same shape.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{StoreResult, Tx, with_tx};

/// What a one-time token is for (and so which table keeps it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    EmailVerification,
    PasswordReset,
}

impl Purpose {
    fn table(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification_tokens",
            Self::PasswordReset => "password_reset_tokens",
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct VerificationTokenRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    tx: &mut Tx,
    purpose: Purpose,
    user_id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO {} (id, user_id, token_hash, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)",
        purpose.table()
    );
    with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
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
    purpose: Purpose,
    token_hash: &str,
) -> StoreResult<Option<VerificationTokenRow>> {
    let sql = format!(
        "SELECT id, user_id, expires_at, used_at FROM {} WHERE token_hash = $1",
        purpose.table()
    );
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, VerificationTokenRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// Spend the token; false when someone else spent it first.
pub async fn mark_used(
    tx: &mut Tx,
    purpose: Purpose,
    id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = format!(
        "UPDATE {} SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
        purpose.table()
    );
    let rows = with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(id)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// Spend every unused token of a user (a newer link, or the password changed).
pub async fn spend_all(
    tx: &mut Tx,
    purpose: Purpose,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = format!(
        "UPDATE {} SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL",
        purpose.table()
    );
    with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(user_id)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A token by its hash, outside a transaction (a read before the transition).
pub async fn peek(
    db: &super::Db,
    purpose: Purpose,
    token_hash: &str,
) -> StoreResult<Option<VerificationTokenRow>> {
    let sql = format!(
        "SELECT id, user_id, expires_at, used_at FROM {} WHERE token_hash = $1",
        purpose.table()
    );
    let row = super::with_db!(db, |pool| sqlx::query_as::<_, VerificationTokenRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}
