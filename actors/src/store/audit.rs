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
