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

/// An audit row as it will be written (owned: a change keeps it until its commit).
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub(crate) id: Uuid,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) action: String,
    pub(crate) target_type: String,
    pub(crate) target_id: Option<String>,
    pub(crate) project_id: Option<Uuid>,
    pub(crate) request_id: String,
    pub(crate) ip: Option<String>,
    pub(crate) user_agent: Option<String>,
    pub(crate) details: Value,
    pub(crate) at: DateTime<Utc>,
}

impl AuditRecord {
    /// The row's id is taken now, so rows keep the order they happened in.
    pub fn new(entry: AuditEntry<'_>, ctx: &RequestContext, at: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            actor_id: entry.actor_id,
            action: entry.action.to_owned(),
            target_type: entry.target_type.to_owned(),
            target_id: entry.target_id,
            project_id: entry.project_id,
            request_id: ctx.request_id.clone(),
            ip: ctx.client_ip.map(|ip| ip.to_string()),
            user_agent: ctx.user_agent.clone(),
            details: entry.details,
            at,
        }
    }
}

/// Write one audit row now (for the few writes that are not a `Change`).
pub async fn record(
    tx: &mut Tx,
    entry: AuditEntry<'_>,
    ctx: &RequestContext,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    record_many(tx, &[AuditRecord::new(entry, ctx, at)]).await
}

/// Rows per statement: 11 parameters each stays far below either database's limit.
const ROWS_PER_INSERT: usize = 500;

/// Write audit rows, as few statements as their number allows.
pub async fn record_many(tx: &mut Tx, rows: &[AuditRecord]) -> StoreResult<()> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "INSERT INTO audit_log (id, actor_id, action, target_type, target_id, project_id, \
             request_id, ip, user_agent, details, at) VALUES {}",
            super::values_list(chunk.len(), 11)
        );
        with_tx!(tx, |conn| {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for row in chunk {
                q = q
                    .bind(row.id)
                    .bind(row.actor_id)
                    .bind(row.action.as_str())
                    .bind(row.target_type.as_str())
                    .bind(row.target_id.as_deref())
                    .bind(row.project_id)
                    .bind(row.request_id.as_str())
                    .bind(row.ip.as_deref())
                    .bind(row.user_agent.as_deref())
                    .bind(sqlx::types::Json(&row.details))
                    .bind(row.at);
            }
            q.execute(conn).await.map(|_| ())
        })?;
    }
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
