//! The export part of the engine handle: asking, listing, reading, deleting, and the
//! download of a finished artifact. Every one needs the project's `Export` right.

use super::ExportService;
use uuid::Uuid;

use std::path::{Path, PathBuf};

use super::{
    CreateExport, DeleteExport, ExportView, RecordFileExport,
    artifact::Parts,
    run::Checkpoint,
    write::{Progress, Source, write},
};
use crate::{
    ErrorCode,
    authz::ProjectAction,
    blob::BlobStream,
    command::settle,
    context::{Principal, RequestContext},
    domain::export::{ExportInput, ExportSpec, ExportState, unknown_since_export},
    error::EngineError,
    idempotency::{Begin, Idempotent, fingerprint},
    jobs::worker::{JobEnd, JobFailure},
    pagination::{Page, PageRequest},
    store,
};

/// How far `alta export` is.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExportProgress {
    pub items_done: u64,
    pub items_total: u64,
    /// Bytes of the file so far.
    pub bytes: u64,
}

/// What `alta export` wrote, and the export's id in the project's list (a later export
/// can take only what was decided since it).
#[derive(Debug, Clone)]
pub struct ExportedFile {
    pub export_id: Uuid,
    pub items: u64,
    pub bytes: u64,
    /// The file's SHA-256, hex.
    pub sha256: String,
}

/// Checkpoints of an export run from the command line: reported, not kept (a run that
/// stops starts over).
struct Report<F> {
    total: u64,
    report: F,
}

impl<F: FnMut(ExportProgress) + Send> Progress for Report<F> {
    async fn checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        bytes: u64,
    ) -> Result<Option<JobEnd>, JobFailure> {
        (self.report)(ExportProgress {
            items_done: checkpoint.figures.items,
            items_total: self.total,
            bytes,
        });
        Ok(None)
    }
}

/// A finished export's artifact, ready to stream.
#[derive(Debug, Clone)]
pub struct ExportDownload {
    pub export: ExportView,
    key: String,
    pub len: u64,
}

impl ExportService {
    /// Ask for an export of a project (project admins). With an idempotency key, a retry
    /// gets the first answer instead of a second export.
    pub async fn create_export(
        &self,
        principal: &Principal,
        project_id: Uuid,
        input: ExportInput,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Idempotent<ExportView>, EngineError> {
        self.check_project(principal, project_id, ProjectAction::Export)
            .await?;
        let spec = ExportSpec::parse(input)?;
        let print = fingerprint(&(project_id, &spec))?;
        let route = "POST /api/projects/{project_id}/exports";
        let claim = match self
            .begin_idempotent(principal, route, idempotency_key, &print)
            .await?
        {
            Begin::Replay(view) => return Ok(Idempotent::Replayed(view)),
            Begin::Proceed(claim) => claim,
        };
        let create = CreateExport {
            spec,
            idempotency: claim.clone(),
        };
        let asked = self
            .apply_in_project_tracked(project_id, principal, ctx, create)
            .await;
        let (result, maybe_written) = settle(asked);
        self.end_idempotent(&claim, maybe_written).await;
        result.map(Idempotent::Fresh)
    }

    /// A project's exports, newest first.
    pub async fn exports(
        &self,
        principal: &Principal,
        project_id: Uuid,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<Page<ExportView>, EngineError> {
        self.check_project(principal, project_id, ProjectAction::Export)
            .await?;
        let page = PageRequest::parse(limit, cursor)?;
        let rows =
            store::exports::list(&self.deps.db, project_id, page.after, page.fetch_limit()).await?;
        Ok(page.page(rows, |r| r.id, ExportView::from))
    }

    pub async fn export(
        &self,
        principal: &Principal,
        project_id: Uuid,
        export_id: Uuid,
    ) -> Result<ExportView, EngineError> {
        self.check_project(principal, project_id, ProjectAction::Export)
            .await?;
        store::exports::find(&self.deps.db, project_id, export_id)
            .await?
            .map(ExportView::from)
            .ok_or(EngineError::NotFound { what: "export" })
    }

    pub async fn delete_export(
        &self,
        principal: &Principal,
        project_id: Uuid,
        export_id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        self.check_project(principal, project_id, ProjectAction::Export)
            .await?;
        self.apply_in_project(project_id, principal, ctx, DeleteExport { export_id })
            .await
    }

    /// A finished export's artifact and its length; 409 `export_not_ready` before.
    pub async fn export_download(
        &self,
        principal: &Principal,
        project_id: Uuid,
        export_id: Uuid,
    ) -> Result<ExportDownload, EngineError> {
        let export = self.export(principal, project_id, export_id).await?;
        if export.created_by.is_none() {
            return Err(EngineError::Conflict {
                code: ErrorCode::ExportNotStored,
                message: "this export was written by `alta export` to a file on the server; \
                          it has no download"
                    .into(),
            });
        }
        if export.state != ExportState::Finished {
            return Err(EngineError::Conflict {
                code: ErrorCode::ExportNotReady,
                message: format!(
                    "the export is {}; its file can be downloaded once it is finished",
                    export.state.as_str()
                ),
            });
        }
        let key = crate::blob::item_key(project_id, export_id);
        let len = u64::try_from(export.bytes).map_err(|_| {
            EngineError::internal(format!("export {export_id} has a negative size"))
        })?;
        Ok(ExportDownload { export, key, len })
    }

    /// Where a finished export can be downloaded from directly, for a while: a signed
    /// GCS URL when the store makes them (`GCS_SIGNED_URL_SECONDS`); `None`: stream it.
    pub async fn export_signed_url(
        &self,
        download: &ExportDownload,
    ) -> Result<Option<String>, EngineError> {
        let export = &download.export;
        let name = export
            .file_name
            .clone()
            .unwrap_or_else(|| format!("export-{}", export.id));
        let content_type = export
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        self.deps
            .blobs
            .signed_download_url(&download.key, &name, &content_type)
            .await
            .map_err(|e| EngineError::internal(format!("export {} not signed: {e}", download.key)))
    }

    /// Stream the bytes `start..=end_inclusive` of a finished export's artifact.
    pub async fn export_range(
        &self,
        download: &ExportDownload,
        start: u64,
        end_inclusive: u64,
    ) -> Result<BlobStream, EngineError> {
        self.deps
            .blobs
            .open_range(&download.key, start, end_inclusive)
            .await
            .map_err(|e| EngineError::internal(format!("export {} unreadable: {e}", download.key)))
    }

    /// `alta export`: write an export of a project straight from the database into the
    /// file `out`, by the same path as the export job, reporting progress about once a
    /// second. No job is made; once the file is written, a finished export row records
    /// it (no author, no download). The caller runs on the server's machine with its
    /// settings, so no permission is checked beyond the project existing.
    pub async fn export_to_file(
        &self,
        project_id: Uuid,
        input: ExportInput,
        out: &Path,
        report: impl FnMut(ExportProgress) + Send,
    ) -> Result<ExportedFile, EngineError> {
        let project = store::projects::find(&self.deps.db, project_id)
            .await?
            .filter(|p| p.deleted_at.is_none())
            .ok_or(EngineError::NotFound { what: "project" })?;
        let mut spec = ExportSpec::parse(input)?;
        if let Some(since) = spec.filter.since_export {
            let earlier = store::exports::find(&self.deps.db, project.id, since)
                .await?
                .ok_or_else(unknown_since_export)?;
            spec.filter.since_at = Some(earlier.snapshot_at);
        }
        let started_at = self.deps.clock.now();
        let source = Source {
            id: Uuid::now_v7(),
            project_id,
            spec: &spec,
            snapshot_at: started_at,
        };
        let total = store::exports::scan_count(&self.deps.db, &source.scan(), None).await?;
        let mut progress = Report {
            total: u64::try_from(total).unwrap_or(0),
            report,
        };
        let failed = |e: JobFailure| EngineError::internal(format!("the export failed: {}", e.0));
        let written = match write(&self.deps, &source, None, &mut progress)
            .await
            .map_err(failed)?
        {
            Ok(written) => written,
            Err(end) => {
                return Err(EngineError::internal(format!(
                    "the export stopped: {end:?}"
                )));
            }
        };
        let moved = publish_to(&written.main, out).await;
        Parts::remove(&written.dir).await;
        moved.map_err(|e| {
            EngineError::internal(format!("cannot write the export to {}: {e}", out.display()))
        })?;
        (progress.report)(ExportProgress {
            items_done: written.figures.items,
            items_total: written.figures.items,
            bytes: written.size,
        });
        let export_id = source.id;
        let (_, content_type) = spec.artifact_type();
        let record = RecordFileExport {
            export_id,
            file_name: out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| out.display().to_string()),
            content_type: content_type.to_owned(),
            sha256: written.sha256.clone(),
            bytes: i64::try_from(written.size).unwrap_or(i64::MAX),
            items: i64::try_from(written.figures.items).unwrap_or(i64::MAX),
            spec,
            snapshot_at: started_at,
            started_at,
        };
        let ctx = RequestContext::internal("export");
        self.apply_in_project(project_id, &Principal::system(), &ctx, record)
            .await?;
        Ok(ExportedFile {
            export_id,
            items: written.figures.items,
            bytes: written.size,
            sha256: written.sha256,
        })
    }
}

/// Move the finished file to `out` (a rename on one file system, else a copy).
async fn publish_to(main: &Path, out: &Path) -> std::io::Result<PathBuf> {
    if tokio::fs::rename(main, out).await.is_err() {
        tokio::fs::copy(main, out).await?;
        tokio::fs::File::open(out).await?.sync_all().await?;
    }
    Ok(out.to_owned())
}
