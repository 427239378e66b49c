//! Data items: documents and voice recordings. The upload pipeline (`ingest`) receives,
//! hashes, types and analyses a file outside any actor (bounded concurrency), stores the
//! blob, then the project's actor commits the item row, its follow-up job and the
//! storage count in one transaction.

mod announce;
pub mod consensus;
mod file_name;
mod ingest;
pub(crate) mod service;
mod spans;
pub mod state;
mod text;
mod transition;
mod views;

pub use self::announce::ItemSubject;
pub use self::file_name::sanitize_file_name;
pub(crate) use self::ingest::parse_fields;
pub use self::ingest::{FormPart, UploadDetails, UploadForm, UploadInput, UploadSource};
pub use self::service::ItemListQuery;
pub(crate) use self::spans::carry_spans;
pub(crate) use self::transition::{
    AddItem, DeleteItem, EditText, ReplaceFile, Reprocess, RetryJob, check_visible, live_item,
    not_editable,
};
pub use self::views::{ItemStatus, ItemView, JobSummary};

crate::handle::service!(
    /// The items part of the engine: uploads, items, their files and texts.
    ItemService
);

/// Follow-up job kinds (consumed by the processing workers).
pub const KIND_OCR: &str = "ocr";
pub const KIND_TRANSCRIPTION: &str = "transcription";
pub(crate) use self::text::check_text;
pub use self::text::{ItemText, MAX_HUMAN_TEXT_BYTES, TextRevision};
