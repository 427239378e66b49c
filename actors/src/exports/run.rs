//! The `export` job: it counts the export's items, has them written ([`write`]), keeps
//! each checkpoint in its own payload (so a later run, on this node, resumes), publishes
//! the file to the blob store under `{project_id}/{export_id}`, then marks the export
//! finished and the job done in one commit of the project's actor ([`FinishExport`]).

use std::{collections::BTreeMap, sync::Arc, time::Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    artifact::Parts,
    card::Figures,
    transition::{FailExport, FinishExport},
    write::{Progress, Source, write},
};
use crate::{
    context::{Principal, RequestContext},
    deps::Deps,
    error::EngineError,
    jobs::worker::{JobEnd, JobFailure, JobHandler},
    metrics as m,
    project_actor::Projects,
    store::{
        self,
        exports::{ExportRow, Published},
        jobs::JobRow,
    },
};

pub const KIND_EXPORT: &str = "export";

/// The payload of an `export` job.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportJob {
    pub export_id: Uuid,
    pub project_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<Checkpoint>,
}

/// Where a run got to, durably: items up to `after` are in the parts, whose synced
/// lengths are `parts`; a WebDataset export's shard being written, in `shard`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub after: Uuid,
    pub parts: BTreeMap<String, u64>,
    pub figures: Figures,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardMark>,
}

/// Where a WebDataset export is with its shards: `shard-000000.tar`, … of at most the
/// largest shard's bytes (an item alone in its shard may be larger), each an entry of
/// the main part whose bytes are written in place as the items come (the file is
/// written once), its header made right when it closes. Kept in each checkpoint.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct ShardMark {
    /// The number of the open shard, or of the next one.
    pub index: usize,
    /// Where the open shard's entry begins in the main part.
    pub open_at: Option<u64>,
}

/// Runs `export` jobs, one at a time per project.
pub struct ExportHandler {
    projects: Projects,
}

impl ExportHandler {
    pub fn new(projects: Projects) -> Self {
        Self { projects }
    }
}

impl JobHandler for ExportHandler {
    const KIND: &'static str = KIND_EXPORT;

    fn concurrency(&self, deps: &Deps) -> usize {
        deps.config.exports.concurrency
    }

    fn per_project_limit(&self, _deps: &Deps) -> Option<usize> {
        Some(1)
    }

    async fn run(&self, deps: &Arc<Deps>, job: &JobRow) -> Result<JobEnd, JobFailure> {
        let payload: ExportJob = serde_json::from_value(job.payload.0.clone())?;
        let Some(export) =
            store::exports::find(&deps.db, payload.project_id, payload.export_id).await?
        else {
            return Ok(JobEnd::Ran); // deleted
        };
        if !matches!(
            export.state,
            crate::domain::export::ExportState::Queued
                | crate::domain::export::ExportState::Running
        ) {
            return Ok(JobEnd::Ran);
        }
        let started = Instant::now();
        let format = export.format.as_str();
        let outcome = run(deps, &self.projects, job, &export, payload.checkpoint).await;
        match &outcome {
            Ok(JobEnd::Recorded) => {
                metrics::counter!(m::EXPORTS_TOTAL, "format" => format, "outcome" => "finished")
                    .increment(1);
                metrics::histogram!(m::EXPORT_DURATION_SECONDS, "format" => format)
                    .record(started.elapsed().as_secs_f64());
            }
            Err(_) => {
                metrics::counter!(m::EXPORTS_TOTAL, "format" => format, "outcome" => "retried")
                    .increment(1);
            }
            Ok(_) => {}
        }
        outcome
    }

    async fn gave_up(&self, deps: &Arc<Deps>, job: &JobRow, error: &str) {
        let Ok(payload) = serde_json::from_value::<ExportJob>(job.payload.0.clone()) else {
            return;
        };
        let fail = FailExport {
            export_id: payload.export_id,
            error: error.to_owned(),
        };
        let ctx = RequestContext::internal("export");
        match self
            .projects
            .apply(payload.project_id, &Principal::system(), &ctx, fail)
            .await
        {
            Ok(true) => {
                metrics::counter!(m::EXPORTS_TOTAL, "format" => "any", "outcome" => "failed")
                    .increment(1);
            }
            Ok(false) => {}
            Err(err) => {
                tracing::error!(export_id = %payload.export_id, error = %err, "could not mark the export failed")
            }
        }
        let dir = deps.blobs.export_parts_path(payload.export_id);
        Parts::remove(&dir).await;
    }
}

async fn run(
    deps: &Arc<Deps>,
    projects: &Projects,
    job: &JobRow,
    export: &ExportRow,
    checkpoint: Option<Checkpoint>,
) -> Result<JobEnd, JobFailure> {
    let source = Source::of(export);
    let total = store::exports::scan_count(&deps.db, &source.scan(), None).await?;
    if !store::exports::mark_running(&deps.db, export.id, total, deps.clock.now()).await? {
        return Ok(JobEnd::Ran);
    }
    let mut progress = JobProgress {
        deps,
        job_id: job.id,
        export_id: export.id,
        project_id: export.project_id,
    };
    let written = match write(deps, &source, checkpoint, &mut progress).await? {
        Ok(written) => written,
        Err(end) => return Ok(end),
    };
    let key = crate::blob::item_key(export.project_id, export.id);
    deps.blobs.put_file(&key, &written.main).await?;
    Parts::remove(&written.dir).await;
    let (extension, content_type) = export.spec.0.artifact_type();
    let published = Published {
        blob_key: key.clone(),
        file_name: format!("export-{}.{extension}", export.id),
        content_type: content_type.to_owned(),
        sha256: written.sha256.clone(),
        bytes: i64::try_from(written.size).unwrap_or(i64::MAX),
        items: i64::try_from(written.figures.items).unwrap_or(i64::MAX),
    };
    let finish = FinishExport {
        export_id: export.id,
        job_id: job.id,
        worker_id: deps.worker_id.clone(),
        published,
    };
    let ctx = RequestContext::internal("export");
    match projects
        .apply(export.project_id, &Principal::system(), &ctx, finish)
        .await
    {
        Ok(true) => Ok(JobEnd::Recorded),
        Ok(false) => {
            // Deleted meanwhile: its artifact goes too.
            if let Err(err) = deps.blobs.delete(&key).await {
                tracing::warn!(%key, error = %err, "could not remove a deleted export's artifact");
            }
            Ok(JobEnd::Recorded)
        }
        Err(EngineError::Conflict { .. }) => Ok(JobEnd::LeaseLost),
        Err(EngineError::NotFound { .. }) => Ok(JobEnd::Ran),
        Err(err) => Err(JobFailure(err.to_string())),
    }
}

/// A job's checkpoints: kept in its payload (only while it holds the lease), with the
/// progress on the export's row (which also tells whether it was deleted).
struct JobProgress<'a> {
    deps: &'a Deps,
    job_id: Uuid,
    export_id: Uuid,
    project_id: Uuid,
}

impl Progress for JobProgress<'_> {
    async fn checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        bytes: u64,
    ) -> Result<Option<JobEnd>, JobFailure> {
        let items = i64::try_from(checkpoint.figures.items).unwrap_or(i64::MAX);
        let payload = serde_json::to_value(&ExportJob {
            export_id: self.export_id,
            project_id: self.project_id,
            checkpoint: Some(checkpoint),
        })?;
        let (db, now) = (&self.deps.db, self.deps.clock.now());
        if !store::jobs::save_payload(db, self.job_id, &self.deps.worker_id, payload, now).await? {
            return Ok(Some(JobEnd::LeaseLost));
        }
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        if !store::exports::progress(db, self.export_id, items, bytes).await? {
            // Deleted while it ran: nothing to publish.
            return Ok(Some(JobEnd::Ran));
        }
        Ok(None)
    }
}
