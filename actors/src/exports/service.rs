//! The export part of the engine handle: asking, listing, reading, deleting, and the
//! download of a finished artifact. Every one needs the project's `Export` right.

use uuid::Uuid;

use super::{CreateExport, DeleteExport, ExportView};
use crate::{
    ErrorCode,
    authz::ProjectAction,
    blob::BlobStream,
    command::settle,
    context::{Principal, RequestContext},
    domain::export::{ExportInput, ExportSpec, ExportState},
    engine::Engine,
    error::EngineError,
    idempotency::{Begin, Idempotent, fingerprint},
    pagination::{Page, PageRequest},
    store,
};

/// A finished export's artifact, ready to stream.
#[derive(Debug, Clone)]
pub struct ExportDownload {
    pub export: ExportView,
    key: String,
    pub len: u64,
}

impl Engine {
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
}
