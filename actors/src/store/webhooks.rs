//! Webhooks, their deliveries (the outbox) and the attempts to deliver them.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Db, StoreResult, Tx, with_db, with_db_write, with_tx};
use crate::domain::webhook::WebhookEvent;

const HOOK_COLUMNS: &str = "id, project_id, url, events, description, active, secret, \
     previous_secret, previous_expires_at, failing_since, deactivated_at, created_by, \
     created_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookRow {
    pub id: Uuid,
    pub project_id: Uuid,
    pub url: String,
    pub events: Json<Vec<WebhookEvent>>,
    pub description: Option<String>,
    pub active: bool,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_expires_at: Option<DateTime<Utc>>,
    pub failing_since: Option<DateTime<Utc>>,
    pub deactivated_at: Option<DateTime<Utc>>,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WebhookRow {
    /// The secrets a message is signed with now: the current one, and the previous one
    /// until it expires.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(old), Some(until)) = (&self.previous_secret, self.previous_expires_at)
            && until > now
        {
            secrets.push(old);
        }
        secrets
    }
}

pub async fn insert(tx: &mut Tx, row: &WebhookRow) -> StoreResult<()> {
    let sql = format!(
        "INSERT INTO webhooks ({HOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         $11, $12, $13, $14)"
    );
    with_tx!(tx, |conn| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(row.id)
        .bind(row.project_id)
        .bind(row.url.clone())
        .bind(row.events.clone())
        .bind(row.description.clone())
        .bind(row.active)
        .bind(row.secret.clone())
        .bind(row.previous_secret.clone())
        .bind(row.previous_expires_at)
        .bind(row.failing_since)
        .bind(row.deactivated_at)
        .bind(row.created_by)
        .bind(row.created_at)
        .bind(row.updated_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Write back every changeable column of a webhook.
pub async fn update(tx: &mut Tx, row: &WebhookRow) -> StoreResult<()> {
    let sql = "UPDATE webhooks SET url = $2, events = $3, description = $4, active = $5, \
               secret = $6, previous_secret = $7, previous_expires_at = $8, failing_since = $9, \
               deactivated_at = $10, updated_at = $11 WHERE id = $1";
    with_tx!(tx, |conn| sqlx::query(sql)
        .bind(row.id)
        .bind(row.url.clone())
        .bind(row.events.clone())
        .bind(row.description.clone())
        .bind(row.active)
        .bind(row.secret.clone())
        .bind(row.previous_secret.clone())
        .bind(row.previous_expires_at)
        .bind(row.failing_since)
        .bind(row.deactivated_at)
        .bind(row.updated_at)
        .execute(conn)
        .await
        .map(|_| ()))?;
    Ok(())
}

pub async fn find(db: &Db, project_id: Uuid, id: Uuid) -> StoreResult<Option<WebhookRow>> {
    let sql = format!("SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = $1 AND project_id = $2");
    Ok(with_db!(db, |pool| sqlx::query_as::<_, WebhookRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(pool)
    .await)?)
}

pub async fn find_tx(tx: &mut Tx, project_id: Uuid, id: Uuid) -> StoreResult<Option<WebhookRow>> {
    let sql = format!("SELECT {HOOK_COLUMNS} FROM webhooks WHERE id = $1 AND project_id = $2");
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, WebhookRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .bind(project_id)
    .fetch_optional(conn)
    .await)?)
}

/// A page of a project's webhooks, oldest first.
pub async fn list(
    db: &Db,
    project_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<WebhookRow>> {
    let sql = format!(
        "SELECT {HOOK_COLUMNS} FROM webhooks WHERE project_id = $1 AND ($2 IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    );
    Ok(with_db!(db, |pool| sqlx::query_as::<_, WebhookRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(project_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

pub async fn count(tx: &mut Tx, project_id: Uuid) -> StoreResult<i64> {
    Ok(with_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(
        "SELECT COUNT(*) FROM webhooks WHERE project_id = $1"
    )
    .bind(project_id)
    .fetch_one(conn)
    .await)?)
}

/// A project's active webhooks and the events each takes (read in every transition
/// that announces something, so it reads two narrow columns).
pub async fn subscribers(
    tx: &mut Tx,
    project_id: Uuid,
) -> StoreResult<Vec<(Uuid, Json<Vec<WebhookEvent>>)>> {
    Ok(with_tx!(tx, |conn| sqlx::query_as::<
        _,
        (Uuid, Json<Vec<WebhookEvent>>),
    >(
        "SELECT id, events FROM webhooks WHERE project_id = $1 AND active = TRUE"
    )
    .bind(project_id)
    .fetch_all(conn)
    .await)?)
}

pub async fn delete(tx: &mut Tx, id: Uuid) -> StoreResult<bool> {
    // Attempts and deliveries first: SQLite's cascade needs foreign keys on, and the
    // order keeps both dialects alike.
    with_tx!(tx, |conn| sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN \
         (SELECT id FROM webhook_deliveries WHERE webhook_id = $1)"
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .map(|_| ()))?;
    with_tx!(tx, |conn| sqlx::query(
        "DELETE FROM webhook_deliveries WHERE webhook_id = $1"
    )
    .bind(id)
    .execute(&mut *conn)
    .await
    .map(|_| ()))?;
    let n = with_tx!(tx, |conn| sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

const DELIVERY_COLUMNS: &str = "id, webhook_id, project_id, event, payload, ordering_key, seq, \
     state, attempts, job_id, last_status, last_error, created_at, delivered_at, updated_at";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub project_id: Uuid,
    #[sqlx(try_from = "String")]
    pub event: WebhookEvent,
    /// The body as sent.
    pub payload: String,
    pub ordering_key: String,
    pub seq: i64,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: i32,
    pub job_id: Option<Uuid>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// Insert a delivery as the next in its webhook's order for its object (its `seq` is
/// given here, in the same statement). Returns that `seq`.
pub async fn insert_delivery(tx: &mut Tx, row: &DeliveryRow) -> StoreResult<i64> {
    let sql = format!(
        "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) SELECT $1, $2, $3, $4, $5, $6, \
         COALESCE(MAX(seq), 0) + 1, $7, $8, $9, $10, $11, $12, $13, $14 \
         FROM webhook_deliveries WHERE webhook_id = $2 AND ordering_key = $6 RETURNING seq"
    );
    Ok(with_tx!(tx, |conn| sqlx::query_scalar::<_, i64>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(row.id)
    .bind(row.webhook_id)
    .bind(row.project_id)
    .bind(row.event.as_str())
    .bind(row.payload.clone())
    .bind(row.ordering_key.clone())
    .bind(row.state.clone())
    .bind(row.attempts)
    .bind(row.job_id)
    .bind(row.last_status)
    .bind(row.last_error.clone())
    .bind(row.created_at)
    .bind(row.delivered_at)
    .bind(row.updated_at)
    .fetch_one(conn)
    .await)?)
}

pub async fn delivery(db: &Db, id: Uuid) -> StoreResult<Option<DeliveryRow>> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1");
    Ok(with_db!(db, |pool| sqlx::query_as::<_, DeliveryRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .fetch_optional(pool)
    .await)?)
}

pub async fn delivery_tx(
    tx: &mut Tx,
    webhook_id: Uuid,
    id: Uuid,
) -> StoreResult<Option<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE id = $1 AND webhook_id = $2"
    );
    Ok(with_tx!(tx, |conn| sqlx::query_as::<_, DeliveryRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(id)
    .bind(webhook_id)
    .fetch_optional(conn)
    .await)?)
}

/// A page of a webhook's deliveries, newest first.
pub async fn deliveries(
    db: &Db,
    webhook_id: Uuid,
    before: Option<Uuid>,
    limit: i64,
) -> StoreResult<Vec<DeliveryRow>> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = $1 \
         AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
    );
    Ok(with_db!(db, |pool| sqlx::query_as::<_, DeliveryRow>(
        sqlx::AssertSqlSafe(sql.clone())
    )
    .bind(webhook_id)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await)?)
}

/// When a delivery must wait for an earlier one about the same object that is still
/// being tried: the earlier one's next run (or `None`: nothing earlier is pending).
pub async fn earlier_pending(
    db: &Db,
    d: &DeliveryRow,
) -> StoreResult<Option<Option<DateTime<Utc>>>> {
    let row: Option<(Uuid, Option<DateTime<Utc>>)> = with_db!(db, |pool| sqlx::query_as(
        "SELECT d.id, j.run_at FROM webhook_deliveries d LEFT JOIN jobs j ON j.id = d.job_id \
         WHERE d.webhook_id = $1 AND d.ordering_key = $2 AND d.seq < $3 AND d.state = 'pending' \
         ORDER BY d.seq LIMIT 1"
    )
    .bind(d.webhook_id)
    .bind(d.ordering_key.clone())
    .bind(d.seq)
    .fetch_optional(pool)
    .await)?;
    Ok(row.map(|(_, run_at)| run_at))
}

/// Queue the held job of `d` again for `run_at`, without using up an attempt, while an
/// earlier delivery about the same object is still pending; `false` when none is (or
/// the job is no longer this worker's). One statement, so the earlier one cannot settle
/// unseen between the check and the postponement: on PostgreSQL the check share-locks
/// the earlier delivery, waiting for a settlement being committed (whose
/// `release_next` then finds this job queued, or which this check then sees); on SQLite
/// the earlier delivery's settlement and this statement are both writes, one after the
/// other.
pub async fn postpone_behind(
    db: &Db,
    d: &DeliveryRow,
    job: Uuid,
    worker: &str,
    run_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    let lock = match db {
        Db::Postgres(_) => " FOR SHARE",
        Db::Sqlite(_) => "",
    };
    let sql = format!(
        "UPDATE jobs SET state = 'queued', run_at = $3, updated_at = $4, \
         attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, \
         lease_until = NULL, locked_by = NULL \
         WHERE id = $1 AND locked_by = $2 AND state = 'running' \
         AND EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.webhook_id = $5 \
         AND e.ordering_key = $6 AND e.seq < $7 AND e.state = 'pending'{lock})"
    );
    let n = with_db_write!(db, |pool| sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .bind(job)
        .bind(worker)
        .bind(run_at)
        .bind(now)
        .bind(d.webhook_id)
        .bind(d.ordering_key.as_str())
        .bind(d.seq)
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n > 0)
}

/// The job of the next delivery still pending after `d` about the same object.
pub async fn next_pending_job(
    tx: &mut Tx,
    webhook_id: Uuid,
    ordering_key: &str,
    seq: i64,
) -> StoreResult<Option<Uuid>> {
    let job: Option<Option<Uuid>> = with_tx!(tx, |conn| sqlx::query_scalar(
        "SELECT job_id FROM webhook_deliveries WHERE webhook_id = $1 AND ordering_key = $2 \
         AND seq > $3 AND state = 'pending' ORDER BY seq LIMIT 1"
    )
    .bind(webhook_id)
    .bind(ordering_key)
    .bind(seq)
    .fetch_optional(conn)
    .await)?;
    Ok(job.flatten())
}

/// Point a delivery at the job that sends it now, and make it pending again.
pub async fn requeue(tx: &mut Tx, id: Uuid, job_id: Uuid, now: DateTime<Utc>) -> StoreResult<()> {
    with_tx!(tx, |conn| {
        sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', job_id = $2, updated_at = $3 WHERE id = $1"
    )
    .bind(id)
    .bind(job_id)
    .bind(now)
    .execute(conn)
    .await
    .map(|_| ())
    })?;
    Ok(())
}

/// One attempt's result.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub at: DateTime<Utc>,
    pub status_code: Option<i32>,
    pub latency_ms: i64,
    pub response: Option<String>,
    pub error: Option<String>,
}

/// Record an attempt and where the delivery now is (`state`: `pending` while it will be
/// tried again). False when the delivery is gone (its webhook was deleted) or already
/// settled (a run whose lease had run out, finishing late).
pub async fn record_attempt(tx: &mut Tx, a: &AttemptRow, state: &str) -> StoreResult<bool> {
    let number: i32 = with_tx!(tx, |conn| sqlx::query_scalar(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, state = $2, last_status = $3, \
         last_error = $4, delivered_at = CASE WHEN $2 = 'delivered' THEN $5 ELSE delivered_at END, \
         updated_at = $5 WHERE id = $1 AND state = 'pending' RETURNING attempts"
    )
    .bind(a.delivery_id)
    .bind(state)
    .bind(a.status_code)
    .bind(a.error.clone())
    .bind(a.at)
    .fetch_optional(conn)
    .await)?
    .unwrap_or(0);
    if number == 0 {
        return Ok(false);
    }
    with_tx!(tx, |conn| sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, \
         response, error) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )
    .bind(a.delivery_id)
    .bind(number)
    .bind(a.at)
    .bind(a.status_code)
    .bind(a.latency_ms)
    .bind(a.response.clone())
    .bind(a.error.clone())
    .execute(conn)
    .await
    .map(|_| ()))?;
    Ok(true)
}

/// The attempts of some deliveries, in order.
pub async fn attempts(db: &Db, deliveries: &[Uuid]) -> StoreResult<Vec<AttemptRow>> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (1..=deliveries.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT delivery_id, attempt, at, status_code, latency_ms, response, error \
         FROM webhook_attempts WHERE delivery_id IN ({}) ORDER BY delivery_id, attempt",
        marks.join(", ")
    );
    Ok(with_db!(db, |pool| {
        let mut q = sqlx::query_as::<_, AttemptRow>(sqlx::AssertSqlSafe(sql.clone()));
        for id in deliveries {
            q = q.bind(*id);
        }
        q.fetch_all(pool).await
    })?)
}

/// Remove deliveries (with their attempts) made before `before` that are no longer
/// being tried. Returns how many went.
pub async fn remove_old_deliveries(db: &Db, before: DateTime<Utc>) -> StoreResult<u64> {
    with_db_write!(db, |pool| sqlx::query(
        "DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM webhook_deliveries \
         WHERE created_at < $1 AND state <> 'pending')"
    )
    .bind(before)
    .execute(pool)
    .await
    .map(|_| ()))?;
    let n = with_db_write!(db, |pool| sqlx::query(
        "DELETE FROM webhook_deliveries WHERE created_at < $1 AND state <> 'pending'"
    )
    .bind(before)
    .execute(pool)
    .await
    .map(|r| r.rows_affected()))?;
    Ok(n)
}
