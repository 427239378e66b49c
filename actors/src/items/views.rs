//! What readers get back about items, and the item state machine's states.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use crate::domain::ItemStatus;
use crate::{domain::DataKind, media::audio::AudioAnalysis, store::items::ItemRow};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub kind: DataKind,
    pub contributor_id: Uuid,
    pub status: ItemStatus,
    pub title: Option<String>,
    pub language: Option<String>,
    pub external_id: Option<String>,
    pub metadata: Value,
    pub file_name: String,
    /// The type decided from the content (`pdf`, `wav`, ...).
    pub detected_type: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    /// Where the current file is in the blob store (not shown to clients).
    #[serde(default)]
    pub blob_key: String,
    pub audio: Option<AudioAnalysis>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest processing job.
    pub job_id: Option<uuid::Uuid>,
    /// Why processing failed (`processing_failed`).
    pub processing_error_code: Option<String>,
    pub processing_error: Option<String>,
    /// The latest processing job's state (filled in by reads that show it).
    pub job: Option<JobSummary>,
    /// Rework rounds used so far.
    pub review_round: i32,
    /// When the current review round began.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When review reached a final verdict (`approved` or `rejected`).
    pub decided_at: Option<DateTime<Utc>>,
}

/// Where an item's latest processing job is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSummary {
    pub id: Uuid,
    pub kind: String,
    /// `queued`, `running`, `done` or `failed`.
    pub state: crate::domain::JobState,
    pub attempts: i32,
    pub last_error: Option<String>,
}

impl From<ItemRow> for ItemView {
    fn from(r: ItemRow) -> Self {
        Self {
            id: r.id,
            project_id: r.project_id,
            kind: r.kind,
            contributor_id: r.contributor_id,
            status: r.status,
            title: r.title,
            language: r.language,
            external_id: r.external_id,
            metadata: r.metadata.0,
            file_name: r.file_name,
            detected_type: r.detected_type,
            content_type: r.content_type,
            size_bytes: r.size_bytes,
            sha256: r.sha256,
            blob_key: r.blob_key,
            audio: r.audio.and_then(|a| serde_json::from_value(a.0).ok()),
            created_at: r.created_at,
            updated_at: r.updated_at,
            job_id: r.job_id,
            processing_error_code: r.processing_error_code,
            processing_error: r.processing_error,
            job: None,
            review_round: r.review_round,
            submitted_at: r.submitted_at,
            decided_at: r.decided_at,
        }
    }
}
