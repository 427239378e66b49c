//! A unit of work: one open transaction, the writes that nothing in it reads back (kept
//! until the commit and then written together), and what must happen once it has
//! committed (waking the job workers, counting metrics). Several commands can share one
//! change, each inside a savepoint of its own ([`Change::savepoint`]), so that an actor
//! commits them together (group commit) while each command still succeeds or fails alone.
//!
//! Why the "later" writes: a group's commands run one after another on one connection,
//! so every statement is a round trip the next caller waits behind. Audit rows, queued
//! jobs and the project's storage count are written by almost every transition and read
//! by none of them, so they are kept in memory and written together at the commit, in
//! one statement on PostgreSQL (`store::kept`; design rule 8: batch what a group writes).
//!
//! A `Change` dereferences to the [`Tx`] it owns, so the store's functions take it as
//! they take a transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    context::RequestContext,
    deps::Deps,
    domain::{KIND_MAIL, MailJob},
    error::EngineError,
    job_waker::JobWaker,
    metrics as m,
    store::{
        self, Db, StoreResult, Tx,
        audit::{AuditEntry, AuditRecord},
        items::ItemRow,
        jobs::NewJob,
        outcomes::KeptOutcome,
        reviews::KeptDecision,
        with_tx,
    },
};

type AfterCommit = Box<dyn FnOnce() + Send>;

pub struct Change {
    tx: Tx,
    after_commit: Vec<AfterCommit>,
    later: Later,
    /// New items, review decisions and processing outcomes are kept for the commit too
    /// ([`Change::keep_new_item`], [`Change::keep_decision`], [`Change::keep_outcome`]):
    /// only on a group's fast path, which starts over should one of them not go through.
    defer_rows: bool,
    /// The last command's savepoint succeeded and is released together with the next
    /// statement about savepoints (or by the commit), saving a round trip per command.
    release_pending: bool,
}

/// Writes kept for the commit (see the module's comment).
#[derive(Default)]
struct Later {
    audit: Vec<AuditRecord>,
    jobs: Vec<NewJob>,
    storage: Vec<(Uuid, i64)>,
    items: Vec<ItemRow>,
    decisions: Vec<KeptDecision>,
    outcomes: Vec<KeptOutcome>,
    /// Kinds whose workers on every node are woken when this commits (besides the kinds
    /// of the jobs queued here).
    wake: Vec<String>,
}

/// Where a command began inside a shared change: rolling back to it undoes the
/// command's writes and forgets its after-commit work and its kept writes.
#[must_use = "a savepoint is released or rolled back"]
pub struct Savepoint {
    after_commit_len: usize,
    audit_len: usize,
    jobs_len: usize,
    storage_len: usize,
    items_len: usize,
    decisions_len: usize,
    outcomes_len: usize,
    wake_len: usize,
}

impl Change {
    pub async fn begin(db: &Db) -> StoreResult<Self> {
        Ok(Self {
            tx: db.begin().await?,
            after_commit: Vec::new(),
            later: Later::default(),
            defer_rows: false,
            release_pending: false,
        })
    }

    /// Keep new items, review decisions and processing outcomes for the commit from now
    /// on (a group's fast path: see [`Change::keep_new_item`]).
    pub fn defer_rows(&mut self) {
        self.defer_rows = true;
    }

    /// Whether new items, decisions and outcomes may be kept for the commit rather than
    /// written now.
    pub fn defers_rows(&self) -> bool {
        self.defer_rows
    }

    /// A new item, inserted with the change's other kept writes (one statement for the
    /// group on PostgreSQL). Whether the unique indexes took it is known only then:
    /// [`Change::write_kept`] says whether every one was, and a group whose item was
    /// refused starts over with a savepoint per command, which finds out whose it was.
    pub fn keep_new_item(&mut self, row: ItemRow) {
        self.later.items.push(row);
    }

    /// A review decision and its effect on the item, written with the kept writes (see
    /// [`Change::keep_new_item`]: a verdict whose item is no longer pending review then
    /// starts the group over).
    pub fn keep_decision(&mut self, decision: KeptDecision) {
        self.later.decisions.push(decision);
    }

    /// A processing outcome with its job's completion, written with the kept writes (see
    /// [`Change::keep_new_item`]: an outcome whose job or item moved on, or whose new
    /// text would have to carry an annotation's spans, then starts the group over).
    pub fn keep_outcome(&mut self, outcome: KeptOutcome) {
        self.later.outcomes.push(outcome);
    }

    /// Whether a kept decision or outcome is about `item` (a command that touches it must
    /// see it written: [`Change::flush_kept_rows`]).
    pub fn keeps_row_on(&self, item: Uuid) -> bool {
        self.later.decisions.iter().any(|d| d.row.item_id == item)
            || self.later.outcomes.iter().any(|o| o.item_id == item)
    }

    /// Write the new items, decisions and outcomes kept so far, before a command that may
    /// read them runs; whether every one went through (see [`Change::keep_new_item`]).
    pub async fn flush_kept_rows(&mut self) -> Result<bool, EngineError> {
        if self.later.items.is_empty()
            && self.later.decisions.is_empty()
            && self.later.outcomes.is_empty()
        {
            return Ok(true);
        }
        let rows = Later {
            items: std::mem::take(&mut self.later.items),
            decisions: std::mem::take(&mut self.later.decisions),
            outcomes: std::mem::take(&mut self.later.outcomes),
            ..Later::default()
        };
        self.write(rows).await
    }

    /// Wake the workers of `kind` once the change has committed: this node's at once,
    /// every other node's by a notification the commit delivers (a job made due again,
    /// not only a new one, must not wait for their next poll).
    pub fn wake_workers(&mut self, waker: &std::sync::Arc<JobWaker>, kind: &str) {
        // Each kind is notified once, however often it is woken (`Kept::kinds_to_wake`).
        self.later.wake.push(kind.to_owned());
        let (waker, kind) = (waker.clone(), kind.to_owned());
        self.after_commit(move || waker.wake(&kind));
    }

    /// Run `work` once the change has committed (never if it does not).
    pub fn after_commit(&mut self, work: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(work));
    }

    /// An audit row, written with the change.
    pub fn audit(&mut self, entry: AuditEntry<'_>, ctx: &RequestContext, at: DateTime<Utc>) {
        self.later.audit.push(AuditRecord::new(entry, ctx, at));
    }

    /// Queue a job, written with the change (its id now). The workers are not woken
    /// here: the caller knows whether a wake-up is due.
    pub fn enqueue(
        &mut self,
        kind: &'static str,
        payload: serde_json::Value,
        max_attempts: i32,
        now: DateTime<Utc>,
    ) -> Uuid {
        let job = NewJob {
            id: Uuid::now_v7(),
            kind,
            payload,
            max_attempts,
            run_at: now,
            created_at: now,
        };
        let id = job.id;
        self.later.jobs.push(job);
        self.after_commit(move || {
            metrics::counter!(m::JOBS_ENQUEUED_TOTAL, "kind" => kind).increment(1);
        });
        id
    }

    /// Add `delta` to a project's stored bytes, with the change (summed per project).
    pub fn add_storage_bytes(&mut self, project: Uuid, delta: i64) {
        if delta != 0 {
            self.later.storage.push((project, delta));
        }
    }

    /// Begin a command inside the change (`SAVEPOINT`).
    pub async fn savepoint(&mut self) -> StoreResult<Savepoint> {
        if std::mem::take(&mut self.release_pending) {
            self.execute("RELEASE SAVEPOINT command; SAVEPOINT command")
                .await?;
        } else {
            self.execute("SAVEPOINT command").await?;
        }
        Ok(Savepoint {
            after_commit_len: self.after_commit.len(),
            audit_len: self.later.audit.len(),
            jobs_len: self.later.jobs.len(),
            storage_len: self.later.storage.len(),
            items_len: self.later.items.len(),
            decisions_len: self.later.decisions.len(),
            outcomes_len: self.later.outcomes.len(),
            wake_len: self.later.wake.len(),
        })
    }

    /// The command succeeded: keep its writes in the change. The savepoint itself is
    /// released by the next one or by the commit (no round trip of its own).
    pub fn release(&mut self, _savepoint: Savepoint) {
        self.release_pending = true;
    }

    /// The command failed: undo its writes, its kept writes and its after-commit work,
    /// alone.
    pub async fn rollback_to(&mut self, savepoint: Savepoint) -> StoreResult<()> {
        self.after_commit.truncate(savepoint.after_commit_len);
        self.later.audit.truncate(savepoint.audit_len);
        self.later.jobs.truncate(savepoint.jobs_len);
        self.later.storage.truncate(savepoint.storage_len);
        self.later.items.truncate(savepoint.items_len);
        self.later.decisions.truncate(savepoint.decisions_len);
        self.later.outcomes.truncate(savepoint.outcomes_len);
        self.later.wake.truncate(savepoint.wake_len);
        self.release_pending = false;
        self.execute("ROLLBACK TO SAVEPOINT command; RELEASE SAVEPOINT command")
            .await
    }

    /// Write what was kept (before the commit); whether every kept new item, decision
    /// and outcome went through. The kept writes are gone either way.
    pub async fn write_kept(&mut self) -> Result<bool, EngineError> {
        let later = std::mem::take(&mut self.later);
        self.write(later).await
    }

    /// Write `later` now; whether every new item, decision and outcome in it went through
    /// (an outcome whose new text meets an annotation did not: see [`Change::keep_outcome`]).
    async fn write(&mut self, later: Later) -> Result<bool, EngineError> {
        let mut storage: BTreeMap<Uuid, i64> = BTreeMap::new();
        for (project, delta) in later.storage {
            *storage.entry(project).or_default() += delta;
        }
        let storage: Vec<(Uuid, i64)> = storage.into_iter().filter(|(_, d)| *d != 0).collect();
        let kept = store::kept::Kept {
            audit: &later.audit,
            jobs: &later.jobs,
            storage: &storage,
            items: &later.items,
            decisions: &later.decisions,
            outcomes: &later.outcomes,
            wake: &later.wake,
        };
        let applied = store::kept::write(&mut self.tx, &kept).await?;
        Ok(applied.items == kept.items.len() as u64
            && applied.verdicts == kept.verdicts() as u64
            && applied.outcomes.recorded == kept.outcomes.len() as u64
            && applied.outcomes.annotated == 0)
    }

    /// Write what was kept, commit, then do what was waiting for it.
    pub async fn commit(mut self) -> Result<(), EngineError> {
        if !self.write_kept().await? {
            // The fast path checks its kept items before it commits; nothing else keeps any.
            return Err(EngineError::internal(
                "a kept item, decision or outcome did not go through at the commit",
            ));
        }
        self.tx.commit().await?;
        for work in self.after_commit {
            work();
        }
        Ok(())
    }

    /// Undo the whole change now (dropping it does too, once its connection is next
    /// used; this does not wait for that).
    pub async fn rollback(self) -> StoreResult<()> {
        self.tx.rollback().await?;
        Ok(())
    }

    /// One or more statements without parameters, in one round trip.
    async fn execute(&mut self, sql: &'static str) -> StoreResult<()> {
        with_tx!(&mut self.tx, |conn| sqlx::raw_sql(sql)
            .execute(conn)
            .await
            .map(|_| ()))?;
        Ok(())
    }
}

impl std::ops::Deref for Change {
    type Target = Tx;

    fn deref(&self) -> &Tx {
        &self.tx
    }
}

impl std::ops::DerefMut for Change {
    fn deref_mut(&mut self) -> &mut Tx {
        &mut self.tx
    }
}

// Queueing jobs in a change, with the configured attempts: writing a job's row belongs
// to the unit of work (the queue that runs it is `jobs/`).

/// Queue a job in the caller's change: it runs if and only if the change commits
/// (written with the change's other kept writes). Callers wake the workers after the
/// commit. Returns the job's id.
pub(crate) fn enqueue(
    deps: &Deps,
    change: &mut Change,
    kind: &'static str,
    payload: serde_json::Value,
) -> uuid::Uuid {
    enqueue_with(deps, change, kind, payload, deps.config.jobs.max_attempts)
}

/// [`enqueue`] with a kind's own number of attempts.
pub(crate) fn enqueue_with(
    deps: &Deps,
    change: &mut Change,
    kind: &'static str,
    payload: serde_json::Value,
    max_attempts: i32,
) -> uuid::Uuid {
    change.enqueue(kind, payload, max_attempts, deps.clock.now())
}

/// Queue a mail (see [`enqueue`]).
pub(crate) fn enqueue_mail(
    deps: &Deps,
    change: &mut Change,
    mail: MailJob,
) -> Result<(), EngineError> {
    let payload = serde_json::to_value(&mail).map_err(EngineError::internal)?;
    enqueue(deps, change, KIND_MAIL, payload);
    Ok(())
}

#[cfg(test)]
mod tests {
    /// Every write transaction begins as a `Change`, inside an actor. The places that
    /// still begin one by hand are listed with their reason; a new one fails here.
    #[test]
    fn transactions_begin_only_in_a_change() {
        const STILL_BY_HAND: &[(&str, &str)] = &[
            ("store/mod.rs", "defines Db::begin"),
            ("change.rs", "Change::begin"),
        ];
        let found: Vec<String> = crate::layers::sources()
            .into_iter()
            .filter(|(_, text)| text.contains(".begin().await"))
            .map(|(path, _)| path)
            .collect();
        let unexpected: Vec<&String> = found
            .iter()
            .filter(|f| !STILL_BY_HAND.iter().any(|(allowed, _)| f == allowed))
            .collect();
        assert!(
            unexpected.is_empty(),
            "transactions begun by hand outside a Change: {unexpected:?}"
        );
        // The list shrinks as bookkeeping moves into actors: keep it honest.
        for (allowed, why) in STILL_BY_HAND {
            assert!(
                found.iter().any(|f| f == allowed),
                "{allowed} ({why}) no longer begins a transaction: remove it from the list"
            );
        }
    }
}
