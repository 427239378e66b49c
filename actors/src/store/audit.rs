//! The audit log: one row per state change, written in the change's transaction.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{StoreResult, Tx, with_tx};
use crate::context::RequestContext;

/// What happened, to what, by whom. `details` holds a small JSON of what changed;
/// never a secret.
pub struct AuditEntry<'a> {
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub project_id: Option<Uuid>,
    pub details: Value,
}

pub async fn record(
    tx: &mut Tx,
    entry: AuditEntry<'_>,
    ctx: &RequestContext,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let sql = "INSERT INTO audit_log (id, actor_id, action, target_type, target_id, project_id, \
               request_id, ip, user_agent, details, at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
    let ip = ctx.client_ip.map(|ip| ip.to_string());
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(Uuid::now_v7())
        .bind(entry.actor_id)
        .bind(entry.action)
        .bind(entry.target_type)
        .bind(entry.target_id.clone())
        .bind(entry.project_id)
        .bind(ctx.request_id.as_str())
        .bind(ip.clone())
        .bind(ctx.user_agent.clone())
        .bind(sqlx::types::Json(entry.details.clone()))
        .bind(at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub project_id: Option<Uuid>,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub details: sqlx::types::Json<Value>,
    pub at: DateTime<Utc>,
}

/// Filters of an audit-log page (newest first; ids are UUIDv7, so time-ordered).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub project_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub after: Option<Uuid>,
    pub limit: i64,
}

pub async fn list(db: &super::Db, f: &AuditFilter) -> StoreResult<Vec<AuditRow>> {
    let sql = "SELECT id, actor_id, action, target_type, target_id, project_id, request_id, ip, details, at \
               FROM audit_log \
               WHERE ($1 IS NULL OR project_id = $1) \
               AND ($2 IS NULL OR actor_id = $2) \
               AND (CAST($3 AS TEXT) IS NULL OR action = CAST($3 AS TEXT)) \
               AND ($4 IS NULL OR at >= $4) \
               AND ($5 IS NULL OR at < $5) \
               AND ($6 IS NULL OR id < $6) \
               ORDER BY id DESC LIMIT $7";
    let rows = super::with_db!(db, |pool| sqlx::query_as::<_, AuditRow>(sql)
        .bind(f.project_id)
        .bind(f.actor_id)
        .bind(f.action.clone())
        .bind(f.from)
        .bind(f.to)
        .bind(f.after)
        .bind(f.limit)
        .fetch_all(pool)
        .await)?;
    Ok(rows)
}
