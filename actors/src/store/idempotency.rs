//! Idempotency keys (IETF draft-ietf-httpapi-idempotency-key-header, Stripe semantics).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_db_write, with_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    pub route: String,
    pub fingerprint: String,
    pub state: String,
    pub status: Option<i32>,
    pub response: Option<String>,
    pub created_at: DateTime<Utc>,
    pub locked_until: DateTime<Utc>,
}

/// Insert an in-progress claim; false when the key already exists.
pub async fn try_insert(
    db: &Db,
    user: Uuid,
    key: &str,
    route: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "INSERT INTO idempotency_keys (user_id, key, route, fingerprint, state, created_at, locked_until) \
               VALUES ($1, $2, $3, $4, 'in_progress', $5, $6) ON CONFLICT (user_id, key) DO NOTHING";
    let rows = with_db_write!(db, |pool| sqlx::query(sql)
        .bind(user)
        .bind(key)
        .bind(route)
        .bind(fingerprint)
        .bind(now)
        .bind(locked_until)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

pub async fn find(db: &Db, user: Uuid, key: &str) -> StoreResult<Option<KeyRow>> {
    let sql = "SELECT route, fingerprint, state, status, response, created_at, locked_until \
               FROM idempotency_keys WHERE user_id = $1 AND key = $2";
    let row = with_db!(db, |pool| sqlx::query_as::<_, KeyRow>(sql)
        .bind(user)
        .bind(key)
        .fetch_optional(pool)
        .await)?;
    Ok(row)
}

/// Take over a claim whose holder is gone (lock expired) or a record past its
/// retention; conditional on the row being as it was read.
#[allow(clippy::too_many_arguments)] // one column each, conditional on what was read
pub async fn take_over(
    db: &Db,
    user: Uuid,
    key: &str,
    seen_locked_until: DateTime<Utc>,
    fingerprint: &str,
    route: &str,
    now: DateTime<Utc>,
    locked_until: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE idempotency_keys SET state = 'in_progress', status = NULL, response = NULL, \
               fingerprint = $4, route = $5, created_at = $6, locked_until = $7 \
               WHERE user_id = $1 AND key = $2 AND locked_until = $3";
    let rows = with_db_write!(db, |pool| sqlx::query(sql)
        .bind(user)
        .bind(key)
        .bind(seen_locked_until)
        .bind(fingerprint)
        .bind(route)
        .bind(now)
        .bind(locked_until)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// Record the response, in the transaction of the effect it describes.
pub async fn complete(
    tx: &mut Tx,
    user: Uuid,
    key: &str,
    status: i32,
    response: &str,
) -> StoreResult<bool> {
    let sql = "UPDATE idempotency_keys SET state = 'completed', status = $3, response = $4 \
               WHERE user_id = $1 AND key = $2 AND state = 'in_progress'";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(user)
        .bind(key)
        .bind(status)
        .bind(response)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// Push out the lock of a claim still in progress (its owner is alive).
pub async fn renew(db: &Db, user: Uuid, key: &str, locked_until: DateTime<Utc>) -> StoreResult<()> {
    let sql = "UPDATE idempotency_keys SET locked_until = $3 \
               WHERE user_id = $1 AND key = $2 AND state = 'in_progress'";
    with_db_write!(db, |pool| sqlx::query(sql)
        .bind(user)
        .bind(key)
        .bind(locked_until)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Drop an in-progress claim whose request failed (safe to retry with the same key).
pub async fn release(db: &Db, user: Uuid, key: &str) -> StoreResult<()> {
    let sql =
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND state = 'in_progress'";
    with_db_write!(db, |pool| sqlx::query(sql)
        .bind(user)
        .bind(key)
        .execute(pool)
        .await
        .map(|_| ()))?;
    Ok(())
}
