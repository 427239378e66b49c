//! The upload pipeline. Runs in the caller's task (never inside an actor), at most
//! `upload_concurrency` at a time: check the caller and the project and take a permit,
//! then receive the file into the blob store's incoming folder while hashing and
//! counting (a multipart form straight from the request, part by part; a resumable
//! upload by a link), decide the type from the bytes, analyse audio, move the blob into
//! place, then ask the project actor to commit the item. What a failed or refused
//! upload leaves is removed, unless the commit's outcome is unknown.

use super::ItemService;
use crate::ErrorCode;
use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::SemaphorePermit,
};
use uuid::Uuid;

use super::{AddItem, ReplaceFile};
use super::{ItemStatus, ItemView, sanitize_file_name};
use crate::{
    authz::ProjectAction,
    blob,
    command::settle,
    context::{Principal, RequestContext},
    domain::DataKind,
    error::EngineError,
    idempotency::{Begin, Idempotent, fingerprint},
    media::{audio, detect},
    metrics as m,
    store::items::ItemRow,
};

/// What a client said about an upload, besides its bytes (kept as received: checked
/// by the pipeline, and stored as is with a resumable upload until its bytes are in).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct UploadDetails {
    pub title: Option<String>,
    pub language: Option<String>,
    pub external_id: Option<String>,
    /// A JSON object, as text.
    pub metadata: Option<String>,
    pub file_name: Option<String>,
    pub declared_type: Option<String>,
    /// Rework: the id of the caller's item whose file this one replaces.
    #[serde(default)]
    pub replaces: Option<String>,
}

/// Where the complete file is.
pub enum UploadSource {
    /// A file already on disk (kept for callers that have one): copied into the
    /// incoming folder while hashing. Request bodies go through `ItemService::upload_form`.
    Spooled(tokio::fs::File),
    /// Received by us on the blob store's disk (a resumable upload): linked into the
    /// incoming folder, not copied, and left in place for the caller.
    Received(PathBuf),
}

/// An upload as received: the form fields and the file.
pub struct UploadInput {
    pub project_id: Uuid,
    pub kind: DataKind,
    pub details: UploadDetails,
    pub source: UploadSource,
}

/// Removes a half-received file unless it was moved into the store.
struct Incoming(Option<PathBuf>);

impl Incoming {
    fn path(&self) -> Result<PathBuf, EngineError> {
        self.0
            .clone()
            .ok_or_else(|| EngineError::internal("the received file is gone"))
    }
}

/// A complete file in the incoming folder, with its size and SHA-256.
struct Received {
    incoming: Incoming,
    size: u64,
    sha256: String,
}

/// One part of a `multipart/form-data` upload, its bytes still to be read.
pub struct FormPart<R> {
    pub name: String,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    pub body: R,
}

/// An upload form as it arrives, part after part (the HTTP layer's multipart parser).
/// A part's body must be read (or dropped) before the next part is asked for.
pub trait UploadForm: Send {
    type Body: tokio::io::AsyncRead + Unpin + Send;

    /// The next part; `None` after the last. Malformed forms are a 400.
    fn next_part(
        &mut self,
    ) -> impl Future<Output = Result<Option<FormPart<Self::Body>>, EngineError>> + Send;
}

/// The body ended early or is not a well-formed form (the body-limit middleware turns
/// this into a 413 when the body was too large).
fn unreadable_body() -> EngineError {
    EngineError::Validation {
        code: ErrorCode::InvalidBody,
        field: None,
        message: "the request body ended early or is not a well-formed multipart form".into(),
    }
}

/// A text field, read up to `max_bytes` (refused past it, without reading further).
async fn read_text(
    mut body: impl tokio::io::AsyncRead + Unpin,
    field: &'static str,
    code: ErrorCode,
    max_bytes: usize,
) -> Result<String, EngineError> {
    let too_long = || {
        EngineError::validation(
            code,
            field,
            format!("{field} must be at most {max_bytes} bytes"),
        )
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = body.read(&mut buf).await.map_err(|_| unreadable_body())?;
        if n == 0 {
            break;
        }
        if out.len() + n > max_bytes {
            return Err(too_long());
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out)
        .map_err(|_| EngineError::validation(code, field, format!("{field} must be UTF-8 text")))
}

/// A text field of at most `max_chars` characters (checked again by `parse_fields`).
async fn text_field(
    body: impl tokio::io::AsyncRead + Unpin,
    field: &'static str,
    max_chars: usize,
) -> Result<String, EngineError> {
    read_text(body, field, ErrorCode::InvalidField, max_chars * 4).await
}

/// Read a part to its end, keeping nothing.
async fn drain(mut body: impl tokio::io::AsyncRead + Unpin) -> Result<(), EngineError> {
    tokio::io::copy(&mut body, &mut tokio::io::sink())
        .await
        .map_err(|_| unreadable_body())?;
    Ok(())
}

fn parse_project_id(raw: &str) -> Result<Uuid, EngineError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        EngineError::validation(
            ErrorCode::InvalidProjectId,
            "project_id",
            "project_id must be a UUID",
        )
    })
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[derive(serde::Serialize)]
pub(crate) struct Fields {
    title: Option<String>,
    language: Option<String>,
    external_id: Option<String>,
    metadata: Value,
}

/// Check the fields of an upload (also when a resumable upload is created, so a bad
/// field is refused before any byte is sent).
pub(crate) fn parse_fields(input: &UploadDetails) -> Result<Fields, EngineError> {
    let text = |field: &'static str,
                value: &Option<String>,
                max: usize|
     -> Result<Option<String>, EngineError> {
        match value.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) if v.chars().count() > max || v.chars().any(char::is_control) => {
                Err(EngineError::validation(
                    ErrorCode::InvalidField,
                    field,
                    format!("{field} must be at most {max} characters without control characters"),
                ))
            }
            Some(v) => Ok(Some(v.to_owned())),
        }
    };
    let language = text("language", &input.language, 35)?;
    if let Some(lang) = &language
        && !lang.split('-').all(|part| {
            (1..=8).contains(&part.len()) && part.chars().all(|c| c.is_ascii_alphanumeric())
        })
    {
        return Err(EngineError::validation(
            ErrorCode::InvalidLanguage,
            "language",
            "language must be a BCP 47 tag such as sw or en-GB",
        ));
    }
    let metadata = match input.metadata.as_deref().map(str::trim) {
        None | Some("") => Value::Object(Default::default()),
        Some(raw) if raw.len() > 16 * 1024 => {
            return Err(EngineError::validation(
                ErrorCode::InvalidMetadata,
                "metadata",
                "metadata must be at most 16 KiB",
            ));
        }
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return Err(EngineError::validation(
                    ErrorCode::InvalidMetadata,
                    "metadata",
                    "metadata must be a JSON object",
                ));
            }
        },
    };
    Ok(Fields {
        title: text("title", &input.title, 500)?,
        language,
        external_id: text("external_id", &input.external_id, 200)?,
        metadata,
    })
}

/// Copy `src` to `dest`, hashing and counting; refuse past `max` bytes. Synced on return.
/// A failure to read `src` is `read_error`'s (the client's fault for a request body).
async fn copy_hashing(
    mut src: impl tokio::io::AsyncRead + Unpin,
    dest: &Path,
    max: u64,
    read_error: fn(std::io::Error) -> EngineError,
) -> Result<(u64, String), EngineError> {
    let mut out = tokio::fs::File::create(dest)
        .await
        .map_err(EngineError::internal)?;
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = src.read(&mut buf).await.map_err(read_error)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > max {
            return Err(too_large(max));
        }
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .await
            .map_err(EngineError::internal)?;
    }
    out.sync_all().await.map_err(EngineError::internal)?;
    Ok((total, hex::encode(hasher.finalize())))
}

/// Put a received file at `dest` (a hard link: same disk, no copy) and hash it.
async fn link_hashing(src: &Path, dest: &Path, max: u64) -> Result<(u64, String), EngineError> {
    if tokio::fs::hard_link(src, dest).await.is_err() {
        let file = tokio::fs::File::open(src)
            .await
            .map_err(EngineError::internal)?;
        return copy_hashing(file, dest, max, EngineError::internal).await;
    }
    let mut file = tokio::fs::File::open(dest)
        .await
        .map_err(EngineError::internal)?;
    let len = file.metadata().await.map_err(EngineError::internal)?.len();
    if len > max {
        return Err(too_large(max));
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(EngineError::internal)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok((len, hex::encode(hasher.finalize())))
}

fn parse_replaces(raw: Option<&str>) -> Result<Option<Uuid>, EngineError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) => Uuid::parse_str(id).map(Some).map_err(|_| {
            EngineError::validation(
                ErrorCode::InvalidReplaces,
                "replaces",
                "replaces must be the id of an item",
            )
        }),
    }
}

fn too_large(max: u64) -> EngineError {
    EngineError::TooLarge {
        code: ErrorCode::FileTooLarge,
        message: format!("the file is larger than this project's limit of {max} bytes"),
    }
}

fn detect_error(err: detect::DetectError) -> EngineError {
    use detect::DetectError as E;
    let message = err.to_string();
    let invalid_file = |code| EngineError::Validation {
        code,
        field: Some("file".into()),
        message: message.clone(),
    };
    match err {
        E::Unrecognised => EngineError::UnsupportedMedia {
            code: ErrorCode::UnsupportedType,
            message,
        },
        E::Io(_) => EngineError::Internal(message),
        E::Empty => invalid_file(ErrorCode::EmptyFile),
        E::KindMismatch { .. } => invalid_file(ErrorCode::KindMismatch),
        E::DeclaredTypeMismatch { .. } => invalid_file(ErrorCode::DeclaredTypeMismatch),
        E::UnsafeArchive(_) => invalid_file(ErrorCode::UnsafeArchive),
    }
}

fn audio_error(err: audio::AudioError) -> EngineError {
    use audio::AudioError as E;
    let message = err.to_string();
    let code = match err {
        E::Io(_) => return EngineError::Internal(message),
        E::Undecodable(_) => ErrorCode::UndecodableAudio,
        E::TooLong { .. } => ErrorCode::AudioTooLong,
        E::TimedOut => ErrorCode::AudioAnalysisTimeout,
    };
    EngineError::Validation {
        code,
        field: Some("file".into()),
        message,
    }
}

impl ItemService {
    /// One of the `UPLOAD_CONCURRENCY` upload permits: at once when one is free, else
    /// after waiting up to `UPLOAD_PERMIT_WAIT_MS`; then a 503 (with `Retry-After`).
    pub(crate) async fn upload_permit(
        &self,
    ) -> Result<tokio::sync::SemaphorePermit<'_>, EngineError> {
        let busy =
            || EngineError::Unavailable("too many uploads in progress; retry shortly".into());
        if let Ok(permit) = self.deps.upload_permits.try_acquire() {
            return Ok(permit);
        }
        metrics::counter!(m::UPLOAD_PERMIT_WAITS_TOTAL).increment(1);
        let wait = self.deps.config.upload_permit_wait;
        match tokio::time::timeout(wait, self.deps.upload_permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_closed)) => Err(busy()),
            Err(_elapsed) => {
                metrics::counter!(m::UPLOAD_PERMIT_REFUSALS_TOTAL).increment(1);
                Err(busy())
            }
        }
    }

    /// Check that the caller may upload `kind` into the project, then take an upload
    /// permit: all before any byte of the file is stored. The project's size limit.
    async fn admit_upload(
        &self,
        principal: &Principal,
        project_id: Uuid,
        kind: DataKind,
    ) -> Result<(u64, SemaphorePermit<'_>), EngineError> {
        let project = self
            .check_project(principal, project_id, ProjectAction::Upload)
            .await?;
        if !project.settings.accepted_kinds.contains(&kind) {
            return Err(EngineError::validation(
                ErrorCode::KindNotAccepted,
                "file",
                "this project does not accept this kind of data",
            ));
        }
        let max = match kind {
            DataKind::Document => project.settings.max_document_bytes,
            DataKind::Audio => project.settings.max_audio_bytes,
        };
        let permit = self.upload_permit().await?;
        Ok((max, permit))
    }

    /// Receive one document or recording into a project (contributors and admins).
    pub async fn upload(
        &self,
        principal: &Principal,
        input: UploadInput,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Idempotent<ItemView>, EngineError> {
        let (max, _permit) = self
            .admit_upload(principal, input.project_id, input.kind)
            .await?;
        parse_fields(&input.details)?;
        parse_replaces(input.details.replaces.as_deref())?;
        let incoming_path = self.deps.blobs.incoming_path();
        let incoming = Incoming(Some(incoming_path.clone()));
        let (size, sha256) = match input.source {
            UploadSource::Spooled(file) => {
                copy_hashing(file, &incoming_path, max, EngineError::internal).await?
            }
            UploadSource::Received(path) => link_hashing(&path, &incoming_path, max).await?,
        };
        let received = Received {
            incoming,
            size,
            sha256,
        };
        self.store_upload(
            principal,
            input.project_id,
            input.kind,
            input.details,
            received,
            idempotency_key,
            ctx,
        )
        .await
    }

    /// Receive a `multipart/form-data` upload as it streams in. The caller and the
    /// project are checked, and an upload permit taken, before any byte of the file is
    /// stored: `project_id` comes in the query string or as a form field before the
    /// file (400 `project_id_first` otherwise). Text fields are capped at their limits
    /// while they arrive; the file goes straight into the blob store's incoming folder,
    /// hashed and counted against the project's limit.
    pub async fn upload_form<F: UploadForm>(
        &self,
        principal: &Principal,
        kind: DataKind,
        project_id: Option<Uuid>,
        mut form: F,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Idempotent<ItemView>, EngineError> {
        let mut admitted = match project_id {
            Some(id) => Some((id, self.admit_upload(principal, id, kind).await?)),
            None => None,
        };
        let mut details = UploadDetails::default();
        let mut received: Option<Received> = None;
        while let Some(part) = form.next_part().await? {
            let FormPart {
                name,
                file_name,
                content_type,
                body,
            } = part;
            match name.as_str() {
                "project_id" => {
                    let raw =
                        read_text(body, "project_id", ErrorCode::InvalidProjectId, 64).await?;
                    let id = parse_project_id(&raw)?;
                    match &admitted {
                        Some((known, _)) if *known != id => {
                            return Err(EngineError::validation(
                                ErrorCode::ProjectIdMismatch,
                                "project_id",
                                "project_id differs between the query string and the form",
                            ));
                        }
                        Some(_) => {}
                        None => {
                            admitted = Some((id, self.admit_upload(principal, id, kind).await?));
                        }
                    }
                }
                "file" => {
                    let Some((_, (max, _))) = &admitted else {
                        return Err(EngineError::validation(
                            ErrorCode::ProjectIdFirst,
                            "project_id",
                            "send project_id before the file (or in the query string)",
                        ));
                    };
                    if received.is_some() {
                        return Err(EngineError::validation(
                            ErrorCode::DuplicateFile,
                            "file",
                            "send one file per upload",
                        ));
                    }
                    details.file_name = file_name;
                    details.declared_type = content_type;
                    let incoming_path = self.deps.blobs.incoming_path();
                    let incoming = Incoming(Some(incoming_path.clone()));
                    let (size, sha256) =
                        copy_hashing(body, &incoming_path, *max, |_| unreadable_body()).await?;
                    received = Some(Received {
                        incoming,
                        size,
                        sha256,
                    });
                }
                "title" => details.title = Some(text_field(body, "title", 500).await?),
                "language" => details.language = Some(text_field(body, "language", 35).await?),
                "external_id" => {
                    details.external_id = Some(text_field(body, "external_id", 200).await?);
                }
                "metadata" => {
                    details.metadata = Some(
                        read_text(body, "metadata", ErrorCode::InvalidMetadata, 16 * 1024).await?,
                    );
                }
                "replaces" => {
                    details.replaces =
                        Some(read_text(body, "replaces", ErrorCode::InvalidReplaces, 64).await?);
                }
                // What Uppy's XHR upload sends with every file (its `name`, `type` and
                // `relativePath` meta): documented, read and ignored.
                "name" | "type" | "relativePath" => drain(body).await?,
                // Any other field is a mistake the client should hear about, as in
                // JSON bodies (mass assignment stays impossible either way).
                other => {
                    return Err(EngineError::Validation {
                        code: ErrorCode::InvalidBody,
                        field: None,
                        message: format!("unknown form field {other:?}"),
                    });
                }
            }
        }
        let Some((project_id, (_max, _permit))) = admitted else {
            return Err(EngineError::validation(
                ErrorCode::MissingProjectId,
                "project_id",
                "project_id is required",
            ));
        };
        let Some(received) = received else {
            return Err(EngineError::validation(
                ErrorCode::MissingFile,
                "file",
                "file is required",
            ));
        };
        self.store_upload(
            principal,
            project_id,
            kind,
            details,
            received,
            idempotency_key,
            ctx,
        )
        .await
    }

    /// The rest of an upload whose file is in the incoming folder: check the fields,
    /// type and analyse the file, store the blob, and have the project actor commit it.
    #[allow(clippy::too_many_arguments)] // the upload's parts, passed through
    async fn store_upload(
        &self,
        principal: &Principal,
        project_id: Uuid,
        kind: DataKind,
        details: UploadDetails,
        received: Received,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Idempotent<ItemView>, EngineError> {
        let fields = parse_fields(&details)?;
        let replaces = parse_replaces(details.replaces.as_deref())?;
        let Received {
            mut incoming,
            size,
            sha256,
        } = received;
        let incoming_path = incoming.path()?;
        if size == 0 {
            return Err(EngineError::validation(
                ErrorCode::EmptyFile,
                "file",
                "the file is empty",
            ));
        }
        let (path, declared, name) = (
            incoming_path.clone(),
            details.declared_type.clone(),
            details.file_name.clone(),
        );
        let detected = tokio::task::spawn_blocking(move || {
            detect::detect(&path, kind, declared.as_deref(), name.as_deref())
        })
        .await
        .map_err(EngineError::internal)?
        .map_err(detect_error)?;
        let analysis = match kind {
            DataKind::Audio => {
                let path = incoming_path.clone();
                let limits = audio::Limits {
                    max_seconds: self.deps.config.max_audio_seconds,
                    deadline: Instant::now() + self.deps.config.audio_analysis_timeout,
                };
                let ext = detected.extension();
                let analysis =
                    tokio::task::spawn_blocking(move || audio::analyse(&path, Some(ext), &limits))
                        .await
                        .map_err(EngineError::internal)?
                        .map_err(audio_error)?;
                Some(analysis)
            }
            DataKind::Document => None,
        };

        let print = fingerprint(&(project_id, kind, &sha256, &fields, replaces))?;
        let route = match kind {
            DataKind::Document => "POST /api/documents",
            DataKind::Audio => "POST /api/voice",
        };
        let claim = match self
            .begin_idempotent(principal, route, idempotency_key, &print)
            .await?
        {
            Begin::Replay(view) => return Ok(Idempotent::Replayed(view)),
            Begin::Proceed(claim) => claim,
        };

        // The blob is stored before the row that points to it is committed. A
        // replacement file gets its own key: the item's earlier file stays as history.
        let item_id = Uuid::now_v7();
        let key = blob::item_key(project_id, item_id);
        if let Err(err) = self.deps.blobs.put_file(&key, &incoming_path).await {
            self.end_idempotent(&claim, false).await;
            return Err(EngineError::internal(format!(
                "cannot store the blob: {err}"
            )));
        }
        incoming.0 = None;
        let now = self.deps.clock.now();
        let row = ItemRow {
            id: item_id,
            project_id,
            kind,
            contributor_id: principal.user_id,
            status: ItemStatus::Uploaded,
            title: fields.title,
            language: fields.language,
            external_id: fields.external_id,
            metadata: sqlx::types::Json(fields.metadata),
            file_name: sanitize_file_name(details.file_name.as_deref(), detected.extension()),
            detected_type: detected.as_str().into(),
            content_type: detected.mime().into(),
            size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
            sha256,
            blob_key: key.clone(),
            audio: analysis.map(|a| sqlx::types::Json(serde_json::to_value(a).unwrap_or_default())),
            created_at: now,
            updated_at: now,
            job_id: None,
            processing_error_code: None,
            processing_error: None,
            review_round: 0,
            submitted_at: None,
            review_claimed_by: None,
            review_lease_until: None,
            decided_at: None,
        };
        let (row, idempotency) = (Box::new(row), claim.clone());
        let asked = match replaces {
            None => {
                let add = AddItem { row, idempotency };
                self.apply_in_project_tracked(project_id, principal, ctx, add)
                    .await
            }
            Some(item_id) => {
                let replace = ReplaceFile {
                    item_id,
                    row,
                    idempotency,
                };
                self.apply_in_project_tracked(project_id, principal, ctx, replace)
                    .await
            }
        };
        // Clean up only when nothing was written: a command that began and whose
        // outcome is unknown may have committed a row pointing at this blob (if it did
        // not, the sweeper removes the blob later).
        let (result, maybe_written) = settle(asked);
        if !maybe_written && let Err(err) = self.deps.blobs.delete(&key).await {
            tracing::warn!(%key, error = %err, "could not remove the blob of a refused upload");
        }
        self.end_idempotent(&claim, maybe_written).await;
        result.map(Idempotent::Fresh)
    }
}
