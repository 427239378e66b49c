//! An item's kind-independent state: where it is in its life.

use serde::{Deserialize, Serialize};

/// Where an item is in its life. Transitions belong to the project actor, through the
/// state machine in `items::state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    /// Stored; waiting for OCR or transcription.
    Uploaded,
    /// A worker is extracting or transcribing its text.
    Processing,
    /// Text available; the contributor may correct it.
    Ready,
    /// No text: `processing_error_code` says why. Reprocess, or write the text by hand.
    ProcessingFailed,
    /// Submitted; waiting for reviewers' decisions.
    PendingReview,
    /// Turned down with reasons: back to the contributor to correct and resubmit.
    ChangesRequested,
    /// Final: accepted into the dataset.
    Approved,
    /// Final: turned down with no rework round left.
    Rejected,
}

impl ItemStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Uploaded => "uploaded",
            Self::Processing => "processing",
            Self::Ready => "ready",
            Self::ProcessingFailed => "processing_failed",
            Self::PendingReview => "pending_review",
            Self::ChangesRequested => "changes_requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }

    pub const ALL: [ItemStatus; 8] = [
        Self::Uploaded,
        Self::Processing,
        Self::Ready,
        Self::ProcessingFailed,
        Self::PendingReview,
        Self::ChangesRequested,
        Self::Approved,
        Self::Rejected,
    ];
}

crate::domain::stored_as_str!(ItemStatus, "item status");

impl std::fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
