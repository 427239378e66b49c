//! The writes a change keeps until its commit (`Change`): audit rows, queued jobs (with
//! the wake-up of every node's workers) and storage counts; on a group's fast path also
//! new items, review decisions and processing outcomes. On PostgreSQL they go as one
//! statement of data-modifying `WITH` parts, a single round trip however many rows; on
//! SQLite, which has no round trip to save (it runs in the process), as one multi-row
//! statement per table.

use sqlx::{Arguments, postgres::PgArguments};
use uuid::Uuid;

use super::{
    StoreError, StoreResult, Tx, audit::AuditRecord, items::ItemRow, jobs::NewJob,
    outcomes::KeptOutcome, reviews::KeptDecision,
};

/// Past this many parameters the rows go table by table (PostgreSQL takes 65,535 in
/// one statement; a group's writes are far fewer).
const MAX_PARAMETERS: usize = 30_000;

/// What a change kept for its commit. `storage` holds one summed delta per project;
/// `items` are new items, each inserted unless a unique index refuses it; `decisions`
/// are review decisions with their effect on their item; `outcomes` are processing
/// outcomes, each with its job's completion.
#[derive(Default)]
pub struct Kept<'a> {
    pub audit: &'a [AuditRecord],
    pub jobs: &'a [NewJob],
    pub storage: &'a [(Uuid, i64)],
    pub items: &'a [ItemRow],
    pub decisions: &'a [KeptDecision],
    pub outcomes: &'a [KeptOutcome],
    /// Kinds whose workers on every node are woken by the commit, besides the kinds of
    /// `jobs`.
    pub wake: &'a [String],
}

impl Kept<'_> {
    fn is_empty(&self) -> bool {
        self.audit.is_empty()
            && self.jobs.is_empty()
            && self.storage.is_empty()
            && self.items.is_empty()
            && self.decisions.is_empty()
            && self.outcomes.is_empty()
            && self.wake.is_empty()
    }

    /// The kinds whose workers every node wakes when this commits: each once.
    fn kinds_to_wake(&self) -> Vec<&str> {
        let mut kinds: Vec<&str> = super::jobs::kinds_of(self.jobs);
        kinds.extend(self.wake.iter().map(String::as_str));
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    }

    /// The verdicts among the decisions (each must find its item pending review).
    pub fn verdicts(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.settle_to.is_some())
            .count()
    }
}

/// What the conditional parts of [`write`] did: the new items inserted, the verdicts
/// that found their item pending review, and the outcomes (see
/// [`super::outcomes::record_kept`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub items: u64,
    pub verdicts: u64,
    pub outcomes: super::outcomes::KeptRecorded,
}

/// Write what a change kept. The outcomes go first, in a statement of their own (one
/// call of a function on PostgreSQL): they touch no row the rest writes (before a
/// transition that touches one of their items, they are written: `Change`).
pub async fn write(tx: &mut Tx, kept: &Kept<'_>) -> StoreResult<Applied> {
    if kept.is_empty() {
        return Ok(Applied::default());
    }
    let outcomes = super::outcomes::record_kept(tx, kept.outcomes).await?;
    let mut applied = write_rows(tx, kept).await?;
    applied.outcomes = outcomes;
    Ok(applied)
}

/// [`write`] but the outcomes.
async fn write_rows(tx: &mut Tx, kept: &Kept<'_>) -> StoreResult<Applied> {
    let rest = Kept {
        outcomes: &[],
        ..*kept
    };
    if rest.is_empty() {
        return Ok(Applied::default());
    }
    let parameters = kept.audit.len() * 11
        + kept.jobs.len() * 7
        + kept.storage.len() * 2
        + kept.items.len() * ITEM_CELLS
        + kept.decisions.len() * (DECISION_CELLS + 3)
        + 1;
    match tx {
        Tx::Postgres(t) if parameters <= MAX_PARAMETERS => {
            let (sql, args) = one_statement(kept)?;
            let (items, verdicts): (i64, i64) = sqlx::query_as_with(sqlx::AssertSqlSafe(sql), args)
                .fetch_one(&mut **t)
                .await?;
            Ok(Applied {
                items: items.max(0) as u64,
                verdicts: verdicts.max(0) as u64,
                ..Applied::default()
            })
        }
        _ => {
            let mut applied = Applied::default();
            for item in kept.items {
                applied.items += u64::from(super::items::insert_unless_taken(tx, item).await?);
            }
            for decision in kept.decisions {
                let settled =
                    super::reviews::record_decision(tx, &decision.row, decision.effect()).await?;
                applied.verdicts += u64::from(settled.is_some());
            }
            super::audit::record_many(tx, kept.audit).await?;
            super::jobs::enqueue_many(tx, kept.jobs).await?;
            super::jobs::notify_nodes(tx, &kept.kinds_to_wake()).await?;
            for (project, delta) in kept.storage {
                super::items::add_storage_bytes(tx, *project, *delta).await?;
            }
            Ok(applied)
        }
    }
}

/// The cells of a decision's row.
const DECISION_CELLS: usize = 11;

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
pub fn one_statement(kept: &Kept<'_>) -> StoreResult<(String, PgArguments)> {
    let Kept {
        audit,
        jobs,
        storage,
        items,
        decisions,
        outcomes: _, // written before (see `write`)
        wake: _,
    } = *kept;
    let mut p = Params {
        args: PgArguments::default(),
        next: 0,
    };
    let mut parts = Vec::new();
    decision_parts(&mut p, &mut parts, decisions)?;
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
    let kinds = kept.kinds_to_wake();
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
    let verdicts = if kept.verdicts() == 0 {
        "0".to_owned()
    } else {
        (0..kept.verdicts())
            .map(|k| format!("(SELECT COUNT(*) FROM st{k})"))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    // The items inserted (the notifications are counted so that they run), the verdicts
    // applied.
    Ok((
        format!(
            "{}SELECT CAST({inserted} + 0 * {notified} AS BIGINT) AS inserted, \
             CAST({verdicts} AS BIGINT) AS verdicts",
            // Only a wake-up kept: no part to write.
            if parts.is_empty() {
                String::new()
            } else {
                format!("WITH {} ", parts.join(", "))
            }
        ),
        p.args,
    ))
}

/// The decisions' parts: `d` inserts them; `st0`, `st1`, … move each verdict's item, if
/// it is still pending review, as `reviews::record_decision` does; `rl0`, `rl1`, … end
/// the leases of the reviewers whose round goes on.
fn decision_parts(
    p: &mut Params,
    parts: &mut Vec<String>,
    decisions: &[KeptDecision],
) -> StoreResult<()> {
    if decisions.is_empty() {
        return Ok(());
    }
    let (mut rows, mut settles, mut releases) = (Vec::new(), Vec::new(), Vec::new());
    for d in decisions {
        let r = &d.row;
        let cells: [String; DECISION_CELLS] = [
            p.add(r.id)?,
            p.add(r.item_id)?,
            p.add(r.project_id)?,
            p.add(r.reviewer_id)?,
            p.add(r.round)?,
            p.add(r.decision.clone())?,
            p.add(r.reason_code.clone())?,
            p.add(r.comment.clone())?,
            p.add(r.text_revision)?,
            p.add(r.outcome.clone())?,
            p.add(r.created_at)?,
        ];
        rows.push(format!("({})", cells.join(", ")));
        match d.settle_to {
            Some(to) => {
                settles.push((p.add(r.item_id)?, p.add(to.as_str())?, p.add(r.created_at)?))
            }
            None => releases.push((p.add(r.item_id)?, p.add(r.reviewer_id)?)),
        }
    }
    parts.push(format!(
        "d AS (INSERT INTO review_decisions ({}) VALUES {})",
        super::reviews::DECISION_COLUMNS,
        rows.join(", ")
    ));
    // An update of its own for each item, found by its key, the rest in one `IS TRUE`
    // (as `store::items::LIVE_WITH_ROLE` says why): joined to a list of rows, `items`
    // was read whole in the generic plans made on young tables.
    for (k, (item, to, at)) in settles.iter().enumerate() {
        parts.push(format!(
            "st{k} AS (UPDATE items SET status = {to}, processing_error_code = NULL, \
             processing_error = NULL, updated_at = {at}, review_claimed_by = NULL, \
             review_lease_until = NULL, decided_at = {at} \
             WHERE id = {item} AND (deleted_at IS NULL AND status = 'pending_review') IS TRUE \
             RETURNING 1)"
        ));
    }
    for (k, (item, reviewer)) in releases.iter().enumerate() {
        parts.push(format!(
            "rl{k} AS (UPDATE items SET review_claimed_by = NULL, review_lease_until = NULL \
             WHERE id = {item} AND (review_claimed_by = {reviewer}) IS TRUE)"
        ));
    }
    Ok(())
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
        let kept = Kept {
            jobs: &[job("ocr"), job("ocr"), job("mail")],
            storage: &[(Uuid::now_v7(), 5)],
            ..Kept::default()
        };
        let (sql, _) = one_statement(&kept).unwrap();
        assert!(sql.starts_with("WITH j AS (INSERT INTO jobs"), "{sql}");
        // A kind woken without a job of its own is notified too; one queued, once.
        let wake = ["export".to_owned(), "ocr".to_owned()];
        let woken = Kept {
            wake: &wake,
            ..kept
        };
        assert_eq!(woken.kinds_to_wake(), ["export", "mail", "ocr"]);
        let only_woken = Kept {
            wake: &wake,
            ..Kept::default()
        };
        let (only_wake, _) = one_statement(&only_woken).unwrap();
        assert!(
            only_wake.starts_with("SELECT CAST(0 + 0 * (SELECT COUNT(pg_notify($1"),
            "{only_wake}"
        );
        assert!(
            sql.contains("($1, $2, $3, 'queued', 0, $4, $5, $6, $6)"),
            "{sql}"
        );
        assert!(sql.contains("($19::uuid, $20::bigint)"), "{sql}");
        // One notification per kind, not per job.
        assert!(
            sql.contains(
                "FROM (VALUES ($22::text), ($23::text)) AS v (kind)) AS BIGINT) AS inserted"
            ),
            "{sql}"
        );
    }
}
