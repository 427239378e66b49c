//! Dataset exports: approved (or otherwise chosen) items out as JSON Lines, CSV or a
//! Hugging Face folder, with or without their files. Asking for one and deleting one
//! are project transitions ([`transition`]); the work is a durable `export` job
//! ([`run`]) that streams pages of items ([`write`], which `alta export` runs too) into
//! parts ([`artifact`]) rendered by [`manifest`], with a dataset card ([`card`]); reads,
//! the download and the command line's export are on the engine handle ([`service`]).

pub mod artifact;
pub mod card;
pub mod manifest;
pub mod run;
mod service;
mod transition;
mod write;
mod zip;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use self::{
    run::{ExportHandler, KIND_EXPORT},
    service::{ExportDownload, ExportProgress, ExportedFile},
    transition::{CreateExport, DeleteExport, FailExport, FinishExport, RecordFileExport},
};
use crate::{
    deps::Deps,
    domain::export::{ExportFormat, ExportSpec, ExportState},
    store::exports::ExportRow,
};

crate::handle::service!(
    /// The export part of the engine: asking, listing, reading and deleting exports.
    ExportService
);

/// How long a finished (or failed) export is kept.
pub(crate) fn retention(deps: &Deps) -> chrono::Duration {
    chrono::Duration::from_std(deps.config.exports.retention).unwrap_or(chrono::Duration::days(7))
}

/// An export as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportView {
    pub id: Uuid,
    pub project_id: Uuid,
    /// None: written by `alta export` on the server, to a file there (no download).
    pub created_by: Option<Uuid>,
    pub format: ExportFormat,
    pub spec: ExportSpec,
    pub state: ExportState,
    pub snapshot_at: DateTime<Utc>,
    pub items_done: i64,
    pub items_total: Option<i64>,
    /// Bytes written so far; the artifact's size once finished.
    pub bytes: i64,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    /// The finished file's SHA-256, hex.
    pub sha256: Option<String>,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<ExportRow> for ExportView {
    fn from(row: ExportRow) -> Self {
        Self {
            id: row.id,
            project_id: row.project_id,
            created_by: row.created_by,
            format: row.format,
            spec: row.spec.0,
            state: row.state,
            snapshot_at: row.snapshot_at,
            items_done: row.items_done,
            items_total: row.items_total,
            bytes: row.bytes,
            file_name: row.file_name,
            content_type: row.content_type,
            sha256: row.sha256,
            error: row.error,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
            expires_at: row.expires_at,
        }
    }
}

/// An event about an export: the export as the API shows it.
#[derive(Debug, Clone, Copy)]
pub struct ExportSubject(pub Uuid);

impl crate::webhooks::About for ExportSubject {
    fn ordering_key(&self) -> String {
        format!("export:{}", self.0)
    }

    async fn describe(
        &self,
        tx: &mut crate::store::Tx,
        project_id: Uuid,
        data: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), crate::error::EngineError> {
        use crate::error::EngineError;
        let row = crate::store::exports::find_tx(tx, project_id, self.0)
            .await?
            .ok_or(EngineError::NotFound { what: "export" })?;
        let view = serde_json::to_value(ExportView::from(row)).map_err(EngineError::internal)?;
        data.insert("export".into(), crate::webhooks::without_nulls(view));
        Ok(())
    }
}
