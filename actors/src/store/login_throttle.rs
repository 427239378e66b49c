//! Failed-login counts per (normalised) email address.

use chrono::{DateTime, Utc};

use super::{Db, StoreResult, Tx, with_db, with_db_write, with_tx};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ThrottleRow {
    pub failures: i32,
    pub last_failure_at: DateTime<Utc>,
    pub window_start: DateTime<Utc>,
    pub window_count: i32,
}

pub async fn find(db: &Db, email: &str) -> StoreResult<Option<ThrottleRow>> {
    let sql = "SELECT failures, last_failure_at, window_start, window_count FROM login_throttle \
               WHERE email = $1";
    let row = with_db!(db, |pool| sqlx::query_as::<_, ThrottleRow>(sql)
        .bind(email)
        .fetch_optional(pool)
        .await)?;
    Ok(row)
}

/// Count a failed login: one more consecutive failure, and one more in the current hour
/// (a new hour begins when the last began at or before `window_start_before`).
pub async fn record_failure(
    tx: &mut Tx,
    email: &str,
    now: DateTime<Utc>,
    window_start_before: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO login_throttle (email, failures, last_failure_at, window_start, window_count) \
               VALUES ($1, 1, $2, $2, 1) \
               ON CONFLICT (email) DO UPDATE SET failures = login_throttle.failures + 1, \
               last_failure_at = $2, \
               window_count = CASE WHEN login_throttle.window_start <= $3 THEN 1 \
                   ELSE login_throttle.window_count + 1 END, \
               window_start = CASE WHEN login_throttle.window_start <= $3 THEN $2 \
                   ELSE login_throttle.window_start END";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(email)
        .bind(now)
        .bind(window_start_before)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A successful login ends the run of consecutive failures (the hourly count stays).
pub async fn clear_failures(tx: &mut Tx, email: &str) -> StoreResult<()> {
    let sql = "UPDATE login_throttle SET failures = 0 WHERE email = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(email)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Forget addresses whose last failure is older than `before`; how many.
pub async fn purge(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    let sql = "DELETE FROM login_throttle WHERE last_failure_at < $1";
    let n = with_db_write!(db, |pool| sqlx::query(sql)
        .bind(before)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n)
}
