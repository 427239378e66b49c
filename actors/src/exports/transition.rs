//! The export transitions, run by the project's actor: asking for one (the row and its
//! job in one commit), deleting one, the job's two endings, and the record of an export
//! `alta export` wrote.

use serde_json::json;
use uuid::Uuid;

use super::ExportSubject;
use super::{
    ExportView,
    run::{ExportJob, KIND_EXPORT},
};
use crate::{
    ErrorCode,
    authz::ProjectAction,
    context::Principal,
    domain::export::{ExportSpec, ExportState, unknown_since_export},
    domain::webhook::WebhookEvent,
    error::EngineError,
    idempotency::Claim,
    project_actor::{Check, InProject, Transition},
    store::{
        self,
        exports::{ExportRow, Published},
    },
};

/// Ask for an export: its row, queued, and the job that makes it.
pub struct CreateExport {
    pub spec: ExportSpec,
    pub idempotency: Option<Claim>,
}

impl Transition for CreateExport {
    type Out = ExportView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Export)
    }

    async fn apply(mut self, at: &mut InProject<'_>) -> Result<ExportView, EngineError> {
        let (project_id, now) = (at.id(), at.now);
        if let Some(since) = self.spec.filter.since_export {
            let snapshot = store::exports::snapshot_tx(at.tx(), project_id, since)
                .await?
                .ok_or_else(unknown_since_export)?;
            self.spec.filter.since_at = Some(snapshot);
        }
        let id = Uuid::now_v7();
        let payload = serde_json::to_value(ExportJob {
            export_id: id,
            project_id,
            checkpoint: None,
        })
        .map_err(EngineError::internal)?;
        let job_id = at.enqueue(KIND_EXPORT, payload);
        let row = ExportRow {
            id,
            project_id,
            created_by: Some(at.principal.user_id),
            format: self.spec.format,
            spec: sqlx::types::Json(self.spec),
            state: ExportState::Queued,
            snapshot_at: now,
            items_done: 0,
            items_total: None,
            bytes: 0,
            blob_key: None,
            file_name: None,
            content_type: None,
            sha256: None,
            error: None,
            job_id: Some(job_id),
            created_at: now,
            started_at: None,
            finished_at: None,
            expires_at: None,
        };
        store::exports::insert(at.tx(), &row).await?;
        at.audit(
            "export.created",
            ("export", id.to_string()),
            json!({"format": row.format.as_str(), "spec": row.spec.0}),
        );
        let view = ExportView::from(row);
        at.record_idempotent(&self.idempotency, 202, &view).await?;
        Ok(view)
    }
}

/// Delete an export and, once that has committed, its artifact. A run in progress
/// notices at its next checkpoint and stops.
pub struct DeleteExport {
    pub export_id: Uuid,
}

impl Transition for DeleteExport {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Export)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let project_id = at.id();
        let row = store::exports::find_tx(at.tx(), project_id, self.export_id)
            .await?
            .ok_or(EngineError::NotFound { what: "export" })?;
        store::exports::delete(at.tx(), row.id).await?;
        at.audit(
            "export.deleted",
            ("export", row.id.to_string()),
            json!({"format": row.format.as_str(), "state": row.state.as_str()}),
        );
        let (blobs, key) = (at.deps.blobs.clone(), row.blob_key);
        let parts = at.deps.blobs.export_parts_path(row.id);
        at.change.after_commit(move || {
            tokio::spawn(async move {
                if let Some(key) = key
                    && let Err(err) = blobs.delete(&key).await
                {
                    tracing::warn!(%key, error = %err, "could not remove a deleted export's artifact");
                }
                super::artifact::Parts::remove(&parts).await;
            });
        });
        Ok(())
    }
}

/// The job published the artifact: the export is finished and the job done, in one
/// commit. False when the export was deleted meanwhile (the caller removes the
/// artifact); 409 `lease_lost` when another worker holds the job.
pub struct FinishExport {
    pub export_id: Uuid,
    pub job_id: Uuid,
    pub worker_id: String,
    pub published: Published,
}

impl Transition for FinishExport {
    type Out = bool;

    fn check(&self, _: &Principal) -> Check {
        Check::Itself // the engine's own work
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<bool, EngineError> {
        let now = at.now;
        let done =
            store::jobs::complete_as_tx(at.tx(), self.job_id, &self.worker_id, KIND_EXPORT, now)
                .await?;
        if !done {
            return Err(EngineError::Conflict {
                code: ErrorCode::LeaseLost,
                message: format!("job {} is no longer held by this worker", self.job_id),
            });
        }
        let expires_at = now + super::retention(at.deps);
        let finished =
            store::exports::finish(at.tx(), self.export_id, &self.published, now, expires_at)
                .await?;
        if finished {
            at.audit(
                "export.finished",
                ("export", self.export_id.to_string()),
                json!({"items": self.published.items, "bytes": self.published.bytes}),
            );
            at.announce(WebhookEvent::ExportFinished, ExportSubject(self.export_id))
                .await?;
        }
        Ok(finished)
    }
}

/// The job gave up: the export failed, with the last error. False when it was not
/// running (deleted, or finished).
pub struct FailExport {
    pub export_id: Uuid,
    pub error: String,
}

impl Transition for FailExport {
    type Out = bool;

    fn check(&self, _: &Principal) -> Check {
        Check::Itself // the engine's own work
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<bool, EngineError> {
        let now = at.now;
        let expires_at = now + super::retention(at.deps);
        let failed =
            store::exports::fail(at.tx(), self.export_id, &self.error, now, expires_at).await?;
        if failed {
            at.audit(
                "export.failed",
                ("export", self.export_id.to_string()),
                json!({"error": self.error}),
            );
            at.announce(WebhookEvent::ExportFailed, ExportSubject(self.export_id))
                .await?;
        }
        Ok(failed)
    }
}

/// `alta export` wrote an export to a file on the server: its row, finished, with no
/// author and no artifact in the blob store, so that a later export can take only what
/// was decided since (`since_export`) and the project's list shows it.
pub struct RecordFileExport {
    pub export_id: Uuid,
    pub spec: ExportSpec,
    pub snapshot_at: chrono::DateTime<chrono::Utc>,
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub file_name: String,
    pub content_type: String,
    pub sha256: String,
    pub bytes: i64,
    pub items: i64,
}

impl Transition for RecordFileExport {
    type Out = ExportView;

    fn check(&self, _: &Principal) -> Check {
        Check::Itself // run on the server's machine, with its settings
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ExportView, EngineError> {
        let now = at.now;
        let row = ExportRow {
            id: self.export_id,
            project_id: at.id(),
            created_by: None,
            format: self.spec.format,
            spec: sqlx::types::Json(self.spec),
            state: ExportState::Finished,
            snapshot_at: self.snapshot_at,
            items_done: self.items,
            items_total: Some(self.items),
            bytes: self.bytes,
            blob_key: None,
            file_name: Some(self.file_name),
            content_type: Some(self.content_type),
            sha256: Some(self.sha256),
            error: None,
            job_id: None,
            created_at: self.started_at,
            started_at: Some(self.started_at),
            finished_at: Some(now),
            expires_at: Some(now + super::retention(at.deps)),
        };
        store::exports::insert(at.tx(), &row).await?;
        at.audit(
            "export.written_to_file",
            ("export", row.id.to_string()),
            json!({
                "format": row.format.as_str(),
                "spec": row.spec.0,
                "items": row.items_done,
                "bytes": row.bytes,
            }),
        );
        Ok(ExportView::from(row))
    }
}
