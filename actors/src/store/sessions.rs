//! Sessions (one per sign-in) and their rotating refresh tokens.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_tx};

const COLUMNS: &str = "id, user_id, method, user_agent, ip, created_at, last_used_at, \
     idle_expires_at, absolute_expires_at, revoked_at, revoked_reason";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub method: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub idle_expires_at: DateTime<Utc>,
    pub absolute_expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_reason: Option<String>,
}

impl SessionRow {
    /// Not revoked, and neither idle nor past its absolute end at `now`.
    pub fn live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.idle_expires_at > now && self.absolute_expires_at > now
    }
}

pub async fn insert(tx: &mut Tx, s: &SessionRow) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO sessions ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    );
    with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(s.id)
        .bind(s.user_id)
        .bind(s.method.as_str())
        .bind(s.user_agent.clone())
        .bind(s.ip.clone())
        .bind(s.created_at)
        .bind(s.last_used_at)
        .bind(s.idle_expires_at)
        .bind(s.absolute_expires_at)
        .bind(s.revoked_at)
        .bind(s.revoked_reason.clone())
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn find(db: &Db, id: Uuid) -> StoreResult<Option<SessionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1");
    let row = with_db!(db, |pool| sqlx::query_as::<_, SessionRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

pub async fn find_tx(tx: &mut Tx, id: Uuid) -> StoreResult<Option<SessionRow>> {
    let sql = format!("SELECT {COLUMNS} FROM sessions WHERE id = $1");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, SessionRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// The user's live sessions, newest first.
pub async fn live_of(db: &Db, user: Uuid, now: DateTime<Utc>) -> StoreResult<Vec<SessionRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sessions WHERE user_id = $1 AND revoked_at IS NULL \
         AND idle_expires_at > $2 AND absolute_expires_at > $2 ORDER BY created_at DESC, id DESC LIMIT 500"
    );
    let rows = with_db!(db, |pool| sqlx::query_as::<_, SessionRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(user)
    .bind(now)
    .fetch_all(pool)
    .await)?;
    Ok(rows)
}

/// The caller of an access token, when its session is live and its user active:
/// (id, email, role).
pub async fn active_caller(
    db: &Db,
    session: Uuid,
    user: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<Option<(Uuid, String, String)>> {
    let sql = "SELECT u.id, u.email, u.role FROM sessions s JOIN users u ON u.id = s.user_id \
               WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL \
               AND s.idle_expires_at > $3 AND s.absolute_expires_at > $3 \
               AND u.disabled_at IS NULL AND u.deleted_at IS NULL";
    let row = with_db!(db, |pool| sqlx::query_as::<_, (Uuid, String, String)>(sql)
        .bind(session)
        .bind(user)
        .bind(now)
        .fetch_optional(pool)
        .await)?;
    Ok(row)
}

/// A refresh was made: the session was used now and stays alive until `idle_until`.
pub async fn touch(
    tx: &mut Tx,
    id: Uuid,
    now: DateTime<Utc>,
    idle_until: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "UPDATE sessions SET last_used_at = $2, idle_expires_at = $3 WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .bind(idle_until)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// End one session (if it is still open); false when it already was.
pub async fn revoke(tx: &mut Tx, id: Uuid, reason: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql = "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
               WHERE id = $1 AND revoked_at IS NULL";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(now)
        .bind(reason)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}

/// End every open session of a user; how many.
pub async fn revoke_all(
    tx: &mut Tx,
    user: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    revoke_all_but(tx, user, None, reason, now).await
}

/// End every open session of a user but `keep` (the one asking); how many.
pub async fn revoke_all_but(
    tx: &mut Tx,
    user: Uuid,
    keep: Option<Uuid>,
    reason: &str,
    now: DateTime<Utc>,
) -> StoreResult<u64> {
    let sql = "UPDATE sessions SET revoked_at = $2, revoked_reason = $3 \
               WHERE user_id = $1 AND revoked_at IS NULL AND ($4 IS NULL OR id <> $4)";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(user)
        .bind(now)
        .bind(reason)
        .bind(keep)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RefreshRow {
    pub token_hash: String,
    pub session_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub rotated_at: Option<DateTime<Utc>>,
}

pub async fn add_refresh(
    tx: &mut Tx,
    token_hash: &str,
    session: Uuid,
    now: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO refresh_tokens (token_hash, session_id, created_at) VALUES ($1, $2, $3)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(token_hash)
        .bind(session)
        .bind(now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn find_refresh(tx: &mut Tx, token_hash: &str) -> StoreResult<Option<RefreshRow>> {
    let sql = "SELECT token_hash, session_id, created_at, rotated_at FROM refresh_tokens \
               WHERE token_hash = $1";
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, RefreshRow>(sql)
        .bind(token_hash)
        .fetch_optional(conn)
        .await)?;
    Ok(row)
}

/// Mark a refresh token used: only if it was not already (false then: a concurrent
/// refresh won, or it is a replay).
pub async fn rotate(tx: &mut Tx, token_hash: &str, now: DateTime<Utc>) -> StoreResult<bool> {
    let sql =
        "UPDATE refresh_tokens SET rotated_at = $2 WHERE token_hash = $1 AND rotated_at IS NULL";
    let n = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(token_hash)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
