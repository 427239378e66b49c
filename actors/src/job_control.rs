//! The job queue's part of the engine: a job's state for the members who may see its
//! item, and the failed jobs of the whole platform for super admins, who may put them
//! back in the queue. (The queue itself, its workers and its policy are in `jobs/`,
//! below the domains: every domain's jobs run on it.)

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::{
    ErrorCode,
    accounts::{AccountService, AccountTransition, InAccounts},
    authz::{self, Action},
    context::{Principal, RequestContext},
    domain::{GlobalRole, JobState},
    error::EngineError,
    pagination::{Page, PageRequest},
    store::{self, jobs::JobDetail},
};

crate::handle::service!(
    /// The job queue's part of the engine: reading jobs, retrying a failed one.
    JobService
);

#[derive(Debug, Clone)]
pub struct JobView {
    pub id: Uuid,
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: JobState,
    pub attempts: i32,
    pub max_attempts: i32,
    pub last_error: Option<String>,
    /// When it runs (next), for a queued job.
    pub run_at: DateTime<Utc>,
    /// The item it processes, for OCR and transcription jobs.
    pub item_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<JobDetail> for JobView {
    fn from(j: JobDetail) -> Self {
        Self {
            item_id: crate::jobs::item_of(&j.payload),
            id: j.id,
            kind: j.kind,
            state: j.state,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            last_error: j.last_error,
            run_at: j.run_at,
            created_at: j.created_at,
            updated_at: j.updated_at,
            finished_at: j.finished_at,
        }
    }
}

impl JobService {
    /// A job, for whoever may read its item.
    pub async fn job(&self, principal: &Principal, id: Uuid) -> Result<JobView, EngineError> {
        let job = store::jobs::find(&self.deps.db, id)
            .await?
            .ok_or(EngineError::NotFound { what: "job" })?;
        // A job with an item is as visible as its item (a deleted project's are hidden
        // from everyone); mail jobs are super admins' business only.
        if let Some(item_id) = crate::jobs::item_of(&job.payload) {
            self.visible_item(principal, item_id, None)
                .await
                .map_err(|e| match e {
                    EngineError::NotFound { .. } => EngineError::NotFound { what: "job" },
                    other => other,
                })?;
        } else if principal.role != GlobalRole::SuperAdmin {
            return Err(EngineError::NotFound { what: "job" });
        }
        Ok(job.into())
    }

    /// Jobs in a state (default `failed`), newest first (super admins).
    pub async fn jobs(
        &self,
        principal: &Principal,
        state: Option<JobState>,
        kind: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<JobView>, EngineError> {
        authz::authorize(principal, Action::ManageJobs)?;
        let state = state.unwrap_or(JobState::Failed);
        let page = PageRequest::parse(limit, cursor)?;
        let rows =
            store::jobs::list_in_state(&self.deps.db, state, kind, page.after, page.fetch_limit())
                .await?;
        Ok(page.page(rows, |j| j.id, JobView::from))
    }
}

impl JobService {
    /// Put a failed job back in the queue with fresh attempts (super admins). Its item,
    /// failed because the job gave up, waits for processing again.
    pub async fn retry_job(
        &self,
        principal: &Principal,
        id: Uuid,
        ctx: &RequestContext,
    ) -> Result<JobView, EngineError> {
        authz::authorize(principal, Action::ManageJobs)?;
        let job = store::jobs::find(&self.deps.db, id)
            .await?
            .ok_or(EngineError::NotFound { what: "job" })?;
        // A job that processes an item changes the item too: the item's project actor
        // does both, so it stays the one writer of its project's items.
        if let Some(item_id) = crate::jobs::item_of(&job.payload)
            && let Some(item) = store::items::find_any(&self.deps.db, item_id).await?
        {
            let retry = crate::items::RetryJob {
                job_id: id,
                kind: job.kind.clone(),
                state: job.state,
                item_id,
            };
            self.apply_in_project(item.project_id, principal, ctx, retry)
                .await?;
            let job = store::jobs::find(&self.deps.db, id)
                .await?
                .ok_or(EngineError::NotFound { what: "job" })?;
            return Ok(job.into());
        }
        // Any other job (mail, a job whose item row is gone) touches nothing else.
        let retry = RetryJobWithoutItem {
            job_id: id,
            kind: job.kind.clone(),
            state: job.state,
            actor_id: principal.user_id,
        };
        self.service::<AccountService>()
            .apply_in_accounts(retry, ctx)
            .await?;
        let job = store::jobs::find(&self.deps.db, id)
            .await?
            .ok_or(EngineError::NotFound { what: "job" })?;
        Ok(job.into())
    }
}

/// A super admin retries a failed job that processes no item (mail, an export, a
/// webhook delivery, or a job whose item row is gone): it goes back in the queue, with
/// its audit row. It belongs to no project's actor, so the accounts actor, which owns
/// the platform's own transitions, applies it.
pub struct RetryJobWithoutItem {
    pub job_id: Uuid,
    pub kind: String,
    /// The job's state as the caller read it, for the 409 when it is not failed.
    pub state: JobState,
    pub actor_id: Uuid,
}

impl AccountTransition for RetryJobWithoutItem {
    type Out = ();

    async fn apply(self, at: &mut InAccounts<'_>) -> Result<(), EngineError> {
        let now = at.now;
        if !store::jobs::retry_failed(at.tx(), self.job_id, now).await? {
            return Err(EngineError::Conflict {
                code: ErrorCode::JobNotFailed,
                message: format!("the job is {}, not failed", self.state),
            });
        }
        at.audit_entry(store::audit::AuditEntry {
            actor_id: Some(self.actor_id),
            action: "job.retried",
            target_type: "job",
            target_id: Some(self.job_id.to_string()),
            project_id: None,
            details: json!({"kind": self.kind}),
        });
        at.wake_workers(&self.kind);
        Ok(())
    }
}
