//! Closed value sets, so the document lists them as enums (clients get union types,
//! fuzzers know the valid values). Wire values are the engine's, unchanged.
//!
//! Requests and query parameters parse into these. Responses send the engine's own
//! string through [`Wire`], documented with the set it belongs to.

use std::{borrow::Cow, fmt, marker::PhantomData};

use poem_openapi::{
    Enum,
    registry::{MetaSchemaRef, Registry},
    types::{ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

/// A member's role in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ProjectRole {
    Admin,
    Contributor,
    Reviewer,
}

impl ProjectRole {
    /// The engine's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Contributor => "contributor",
            Self::Reviewer => "reviewer",
        }
    }
}

/// A user's platform role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum PlatformRole {
    SuperAdmin,
    User,
}

impl PlatformRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuperAdmin => "super_admin",
            Self::User => "user",
        }
    }
}

/// Where an item is in its life (`approved` and `rejected` are final).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ItemStatus {
    Uploaded,
    Processing,
    Ready,
    ProcessingFailed,
    PendingReview,
    ChangesRequested,
    Approved,
    Rejected,
}

impl From<ItemStatus> for alta_actors::domain::ItemStatus {
    fn from(status: ItemStatus) -> Self {
        match status {
            ItemStatus::Uploaded => Self::Uploaded,
            ItemStatus::Processing => Self::Processing,
            ItemStatus::Ready => Self::Ready,
            ItemStatus::ProcessingFailed => Self::ProcessingFailed,
            ItemStatus::PendingReview => Self::PendingReview,
            ItemStatus::ChangesRequested => Self::ChangesRequested,
            ItemStatus::Approved => Self::Approved,
            ItemStatus::Rejected => Self::Rejected,
        }
    }
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
}

/// A background job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl From<JobState> for alta_actors::domain::JobState {
    fn from(state: JobState) -> Self {
        match state {
            JobState::Queued => Self::Queued,
            JobState::Running => Self::Running,
            JobState::Done => Self::Done,
            JobState::Failed => Self::Failed,
        }
    }
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
}

/// What a background job does: extract a document's text (`ocr`, and `ocr_image` for
/// a scanned page), transcribe a recording, send a mail, or write an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum JobKind {
    Ocr,
    OcrImage,
    Transcription,
    Mail,
    Export,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ocr => "ocr",
            Self::OcrImage => "ocr_image",
            Self::Transcription => "transcription",
            Self::Mail => "mail",
            Self::Export => "export",
        }
    }
}

/// How a session began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum SessionMethod {
    Password,
    Passkey,
    Google,
}

/// An invitation's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum InvitationState {
    Pending,
    Accepted,
    Revoked,
}

impl From<InvitationState> for alta_actors::domain::InvitationState {
    fn from(state: InvitationState) -> Self {
        match state {
            InvitationState::Pending => Self::Pending,
            InvitationState::Accepted => Self::Accepted,
            InvitationState::Revoked => Self::Revoked,
        }
    }
}

/// What a personal access token may do: `read` (GET and HEAD), `write` (the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TokenScope {
    Read,
    Write,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// Where an item's review stood after a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// More decisions are needed.
    Pending,
    Approved,
    ChangesRequested,
    Rejected,
}

/// Who wrote a text revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TextSource {
    Machine,
    Human,
}

/// A resumable upload's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum UploadState {
    Receiving,
    Completed,
    Failed,
}

/// The type of an access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TokenType {
    Bearer,
}

/// The type of a file, decided from its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum DetectedType {
    Pdf,
    Png,
    Jpeg,
    Tiff,
    Webp,
    PlainText,
    Markdown,
    Docx,
    Wav,
    Flac,
    Mp3,
    Ogg,
    M4a,
    Webm,
}

/// A value of the closed set `E`, as the engine gave it: sent unchanged, documented
/// as `E`'s enum.
pub struct Wire<E> {
    value: String,
    set: PhantomData<fn() -> E>,
}

impl<E> Wire<E> {
    pub fn new(value: impl Into<String>) -> Self {
        Self {
            value: value.into(),
            set: PhantomData,
        }
    }

    /// The value as sent (one of `E`'s, checked when parsed).
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl<E> fmt::Debug for Wire<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<E: Type> Type for Wire<E> {
    const IS_REQUIRED: bool = true;

    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        E::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        E::schema_ref()
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.value)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.value))
    }
}

impl<E: Type> ToJSON for Wire<E> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.value.clone()))
    }
}

impl<E: ParseFromJSON> ParseFromJSON for Wire<E> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        E::parse_from_json(value.clone()).map_err(|err| err.propagate())?;
        match value {
            Some(Value::String(text)) => Ok(Self::new(text)),
            other => Err(poem_openapi::types::ParseError::expected_type(
                other.unwrap_or_default(),
            )),
        }
    }
}
