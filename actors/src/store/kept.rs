//! The writes a change keeps until its commit (`Change`): audit rows, queued jobs (with
//! the wake-up of every node's workers) and storage counts. On PostgreSQL they go as one
//! statement of data-modifying `WITH` parts, a single round trip however many rows; on
//! SQLite, which has no round trip to save (it runs in the process), as one multi-row
//! statement per table.

use sqlx::{Arguments, postgres::PgArguments};
use uuid::Uuid;

use super::{StoreError, StoreResult, Tx, audit::AuditRecord, items::ItemRow, jobs::NewJob};

/// Past this many parameters the rows go table by table (PostgreSQL takes 65,535 in
/// one statement; a group's writes are far fewer).
const MAX_PARAMETERS: usize = 30_000;

/// Write what a change kept. `storage` holds one summed delta per project; `items` are
/// new items, each inserted unless a unique index refuses it. How many items were
/// inserted.
pub async fn write(
    tx: &mut Tx,
    audit: &[AuditRecord],
    jobs: &[NewJob],
    storage: &[(Uuid, i64)],
    items: &[ItemRow],
) -> StoreResult<u64> {
    if audit.is_empty() && jobs.is_empty() && storage.is_empty() && items.is_empty() {
        return Ok(0);
    }
    let parameters =
        audit.len() * 11 + jobs.len() * 7 + storage.len() * 2 + items.len() * ITEM_CELLS + 1;
    match tx {
        Tx::Postgres(t) if parameters <= MAX_PARAMETERS => {
            let (sql, args) = one_statement(audit, jobs, storage, items)?;
            let inserted: i64 = sqlx::query_scalar_with(sqlx::AssertSqlSafe(sql), args)
                .fetch_one(&mut **t)
                .await?;
            Ok(inserted.max(0) as u64)
        }
        _ => {
            let mut inserted = 0;
            for item in items {
                inserted += u64::from(super::items::insert_unless_taken(tx, item).await?);
            }
            super::audit::record_many(tx, audit).await?;
            super::jobs::enqueue_many(tx, jobs).await?;
            for (project, delta) in storage {
                super::items::add_storage_bytes(tx, *project, *delta).await?;
            }
            Ok(inserted)
        }
    }
}

/// The cells of a new item's row.
const ITEM_CELLS: usize = 19;

/// Parameters numbered as they are added.
struct Params {
    args: PgArguments,
    next: usize,
}

impl Params {
    fn add<'q, T>(&mut self, value: T) -> StoreResult<String>
    where
        T: sqlx::Encode<'q, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + 'q,
    {
        self.args
            .add(value)
            .map_err(|e| StoreError::from(sqlx::Error::Encode(e)))?;
        self.next += 1;
        Ok(format!("${}", self.next))
    }
}

/// The PostgreSQL statement: `WITH a AS (INSERT …), j AS (INSERT …), s AS (UPDATE …)
/// SELECT pg_notify(…)`. Every part runs once, whether or not the last one reads it.
fn one_statement(
    audit: &[AuditRecord],
    jobs: &[NewJob],
    storage: &[(Uuid, i64)],
    items: &[ItemRow],
) -> StoreResult<(String, PgArguments)> {
    let mut p = Params {
        args: PgArguments::default(),
        next: 0,
    };
    let mut parts = Vec::new();
    if !items.is_empty() {
        let mut rows = Vec::with_capacity(items.len());
        for r in items {
            let cells: [String; ITEM_CELLS] = [
                p.add(r.id)?,
                p.add(r.project_id)?,
                p.add(r.kind.as_str())?,
                p.add(r.contributor_id)?,
                p.add(r.status.as_str())?,
                p.add(r.title.clone())?,
                p.add(r.language.clone())?,
                p.add(r.external_id.clone())?,
                p.add(r.metadata.clone())?,
                p.add(r.file_name.clone())?,
                p.add(r.detected_type.clone())?,
                p.add(r.content_type.clone())?,
                p.add(r.size_bytes)?,
                p.add(r.sha256.clone())?,
                p.add(r.blob_key.clone())?,
                p.add(r.audio.clone())?,
                p.add(r.created_at)?,
                p.add(r.updated_at)?,
                p.add(r.job_id)?,
            ];
            rows.push(format!("({})", cells.join(", ")));
        }
        parts.push(format!(
            "i AS (INSERT INTO items ({}) VALUES {} ON CONFLICT DO NOTHING RETURNING 1)",
            super::items::INSERT_COLUMNS,
            rows.join(", ")
        ));
    }
    if !audit.is_empty() {
        let mut rows = Vec::with_capacity(audit.len());
        for r in audit {
            let cells = [
                p.add(r.id)?,
                p.add(r.actor_id)?,
                p.add(r.action.clone())?,
                p.add(r.target_type.clone())?,
                p.add(r.target_id.clone())?,
                p.add(r.project_id)?,
                p.add(r.request_id.clone())?,
                p.add(r.ip.clone())?,
                p.add(r.user_agent.clone())?,
                p.add(sqlx::types::Json(r.details.clone()))?,
                p.add(r.at)?,
            ];
            rows.push(format!("({})", cells.join(", ")));
        }
        parts.push(format!(
            "a AS (INSERT INTO audit_log (id, actor_id, action, target_type, target_id, \
             project_id, request_id, ip, user_agent, details, at) VALUES {})",
            rows.join(", ")
        ));
    }
    let kinds = super::jobs::kinds_of(jobs);
    if !jobs.is_empty() {
        let mut rows = Vec::with_capacity(jobs.len());
        for j in jobs {
            let (id, kind, payload) = (
                p.add(j.id)?,
                p.add(j.kind)?,
                p.add(sqlx::types::Json(j.payload.clone()))?,
            );
            let (attempts, run_at, at) = (
                p.add(j.max_attempts)?,
                p.add(j.run_at)?,
                p.add(j.created_at)?,
            );
            rows.push(format!(
                "({id}, {kind}, {payload}, 'queued', 0, {attempts}, {run_at}, {at}, {at})"
            ));
        }
        parts.push(format!(
            "j AS (INSERT INTO jobs (id, kind, payload, state, attempts, max_attempts, run_at, \
             created_at, updated_at) VALUES {})",
            rows.join(", ")
        ));
    }
    if !storage.is_empty() {
        let mut rows = Vec::with_capacity(storage.len());
        for (project, delta) in storage {
            rows.push(format!(
                "({}::uuid, {}::bigint)",
                p.add(*project)?,
                p.add(*delta)?
            ));
        }
        parts.push(format!(
            "s AS (UPDATE projects SET storage_bytes = storage_bytes + v.delta \
             FROM (VALUES {}) AS v (id, delta) WHERE projects.id = v.id)",
            rows.join(", ")
        ));
    }
    // Wake the workers of every node once this commits: one notification per kind.
    let notified = if kinds.is_empty() {
        "0".to_owned()
    } else {
        let channel = p.add(super::jobs::NOTIFY_CHANNEL)?;
        let mut names = Vec::with_capacity(kinds.len());
        for kind in kinds {
            names.push(format!("({}::text)", p.add(kind)?));
        }
        format!(
            "(SELECT COUNT(pg_notify({channel}, v.kind)) FROM (VALUES {}) AS v (kind))",
            names.join(", ")
        )
    };
    let inserted = if items.is_empty() {
        "0"
    } else {
        "(SELECT COUNT(*) FROM i)"
    };
    // The items inserted (the notifications are counted so that they run).
    Ok((
        format!(
            "WITH {} SELECT CAST({inserted} + 0 * {notified} AS BIGINT) AS inserted",
            parts.join(", ")
        ),
        p.args,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_numbers_every_parameter_once() {
        let now = chrono::Utc::now();
        let job = |kind| NewJob {
            id: Uuid::now_v7(),
            kind,
            payload: serde_json::json!({}),
            max_attempts: 3,
            run_at: now,
            created_at: now,
        };
        let (sql, _) = one_statement(
            &[],
            &[job("ocr"), job("ocr"), job("mail")],
            &[(Uuid::now_v7(), 5)],
            &[],
        )
        .unwrap();
        assert!(sql.starts_with("WITH j AS (INSERT INTO jobs"), "{sql}");
        assert!(
            sql.contains("($1, $2, $3, 'queued', 0, $4, $5, $6, $6)"),
            "{sql}"
        );
        assert!(sql.contains("($19::uuid, $20::bigint)"), "{sql}");
        // One notification per kind, not per job.
        assert!(
            sql.ends_with(
                "FROM (VALUES ($22::text), ($23::text)) AS v (kind)) AS BIGINT) AS inserted"
            ),
            "{sql}"
        );
    }
}
