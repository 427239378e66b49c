//! Project invitations: a single-use token (stored as its SHA-256) mailed to an address.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::InvitationState;

use super::{Db, StoreResult, Tx, with_db, with_tx};

const COLUMNS: &str = "id, project_id, email, role, state, invited_by, expires_at, accepted_by, created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub email: String,
    pub role: String,
    #[sqlx(try_from = "String")]
    pub state: InvitationState,
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
    pub accepted_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub struct NewInvitation<'a> {
    pub id: Uuid,
    pub project_id: Uuid,
    pub email: &'a str,
    pub role: &'a str,
    pub token_hash: &'a str,
    pub invited_by: Uuid,
    pub expires_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

pub async fn insert(tx: &mut Tx, i: &NewInvitation<'_>) -> StoreResult<()> {
    let sql = "INSERT INTO project_invitations (id, project_id, email, role, token_hash, state, invited_by, \
               expires_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8, $8)";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(i.id)
        .bind(i.project_id)
        .bind(i.email)
        .bind(i.role)
        .bind(i.token_hash)
        .bind(i.invited_by)
        .bind(i.expires_at)
        .bind(i.now)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn find_by_hash(db: &Db, token_hash: &str) -> StoreResult<Option<InvitationRow>> {
    let sql = format!("SELECT {COLUMNS} FROM project_invitations WHERE token_hash = $1");
    let row = with_db!(db, |pool| sqlx::query_as::<_, InvitationRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await)?;
    Ok(row)
}

pub async fn find_by_hash_tx(tx: &mut Tx, token_hash: &str) -> StoreResult<Option<InvitationRow>> {
    let sql = format!("SELECT {COLUMNS} FROM project_invitations WHERE token_hash = $1");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, InvitationRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

pub async fn find_tx(tx: &mut Tx, project: Uuid, id: Uuid) -> StoreResult<Option<InvitationRow>> {
    let sql =
        format!("SELECT {COLUMNS} FROM project_invitations WHERE project_id = $1 AND id = $2");
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, InvitationRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(project)
    .bind(id)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

pub async fn pending_for_email(
    tx: &mut Tx,
    project: Uuid,
    email: &str,
) -> StoreResult<Option<InvitationRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM project_invitations WHERE project_id = $1 AND email = $2 AND state = 'pending'"
    );
    let row = with_tx!(tx, |conn| sqlx::query_as::<_, InvitationRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(project)
    .bind(email)
    .fetch_optional(conn)
    .await)?;
    Ok(row)
}

/// Move a pending invitation to `state`; false when it was no longer pending.
pub async fn finish(
    tx: &mut Tx,
    id: Uuid,
    state: InvitationState,
    accepted_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE project_invitations SET state = $2, accepted_by = $3, updated_at = $4 \
               WHERE id = $1 AND state = 'pending'";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(state.as_str())
        .bind(accepted_by)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// A new token and expiry for a pending invitation (resend): the old link stops working.
pub async fn rotate_token(
    tx: &mut Tx,
    id: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let sql = "UPDATE project_invitations SET token_hash = $2, expires_at = $3, updated_at = $4 \
               WHERE id = $1 AND state = 'pending'";
    let rows = with_tx!(tx, |conn| sqlx::query(sql)
        .bind(id)
        .bind(token_hash)
        .bind(expires_at)
        .bind(now)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(rows == 1)
}

/// One page of a project's invitations in a state, newest first.
pub async fn list(
    db: &Db,
    project: Uuid,
    state: InvitationState,
    after: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<InvitationRow>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM project_invitations WHERE project_id = $1 AND state = $2 \
         AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    );
    let rows = with_db!(db, |pool| sqlx::query_as::<_, InvitationRow>(
        sqlx::AssertSqlSafe(sql)
    )
    .bind(project)
    .bind(state.as_str())
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await)?;
    Ok(rows)
}
