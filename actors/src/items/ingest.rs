//! The upload pipeline. Runs in the caller's task (never inside an actor), at most
//! `upload_concurrency` at a time: copy the spooled body into the blob store's incoming
//! folder while hashing and counting, decide the type from the bytes, analyse audio,
//! move the blob into place, then ask the project actor to commit the item.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

use super::{ItemStatus, ItemView, sanitize_file_name};
use crate::{
    authz::ProjectAction,
    blob,
    context::{Principal, RequestContext},
    domain::DataKind,
    engine::Engine,
    error::EngineError,
    idempotency::{Begin, Idempotent, fingerprint},
    media::{audio, detect},
    projects::ProjectMsg,
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
    /// Spooled by the HTTP layer: copied into the incoming folder while hashing.
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
                    "invalid_field",
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
            "invalid_language",
            "language",
            "language must be a BCP 47 tag such as sw or en-GB",
        ));
    }
    let metadata = match input.metadata.as_deref().map(str::trim) {
        None | Some("") => Value::Object(Default::default()),
        Some(raw) if raw.len() > 16 * 1024 => {
            return Err(EngineError::validation(
                "invalid_metadata",
                "metadata",
                "metadata must be at most 16 KiB",
            ));
        }
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return Err(EngineError::validation(
                    "invalid_metadata",
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
async fn copy_hashing(
    mut src: tokio::fs::File,
    dest: &Path,
    max: u64,
) -> Result<(u64, String), EngineError> {
    let mut out = tokio::fs::File::create(dest)
        .await
        .map_err(EngineError::internal)?;
    let mut hasher = Sha256::new();
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = src.read(&mut buf).await.map_err(EngineError::internal)?;
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
        return copy_hashing(file, dest, max).await;
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
                "invalid_replaces",
                "replaces",
                "replaces must be the id of an item",
            )
        }),
    }
}

fn too_large(max: u64) -> EngineError {
    EngineError::TooLarge {
        code: "file_too_large",
        message: format!("the file is larger than this project's limit of {max} bytes"),
    }
}

fn detect_error(err: detect::DetectError) -> EngineError {
    let code = err.code();
    let message = err.to_string();
    match code {
        "unsupported_type" => EngineError::UnsupportedMedia { code, message },
        "io_error" => EngineError::Internal(message),
        _ => EngineError::Validation {
            code,
            field: Some("file"),
            message,
        },
    }
}

fn audio_error(err: audio::AudioError) -> EngineError {
    let code = err.code();
    let message = err.to_string();
    match code {
        "io_error" => EngineError::Internal(message),
        _ => EngineError::Validation {
            code,
            field: Some("file"),
            message,
        },
    }
}

impl Engine {
    /// Receive one document or recording into a project (contributors and admins).
    pub async fn upload(
        &self,
        principal: &Principal,
        input: UploadInput,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Idempotent<ItemView>, EngineError> {
        let project = self
            .check_project(principal, input.project_id, ProjectAction::Upload)
            .await?;
        let kind = input.kind;
        if !project.settings.accepted_kinds.contains(&kind) {
            return Err(EngineError::validation(
                "kind_not_accepted",
                "file",
                "this project does not accept this kind of data",
            ));
        }
        let max = match kind {
            DataKind::Document => project.settings.max_document_bytes,
            DataKind::Audio => project.settings.max_audio_bytes,
        };
        let fields = parse_fields(&input.details)?;
        let replaces = parse_replaces(input.details.replaces.as_deref())?;
        let _permit = self.deps.upload_permits.try_acquire().map_err(|_| {
            EngineError::Unavailable("too many uploads in progress; retry shortly".into())
        })?;

        let incoming_path = self.deps.blobs.incoming_path();
        let mut incoming = Incoming(Some(incoming_path.clone()));
        let (size, sha256) = match input.source {
            UploadSource::Spooled(file) => copy_hashing(file, &incoming_path, max).await?,
            UploadSource::Received(path) => link_hashing(&path, &incoming_path, max).await?,
        };
        if size == 0 {
            return Err(EngineError::validation(
                "empty_file",
                "file",
                "the file is empty",
            ));
        }
        let (path, declared, name) = (
            incoming_path.clone(),
            input.details.declared_type.clone(),
            input.details.file_name.clone(),
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

        let print = fingerprint(&(input.project_id, kind, &sha256, &fields, replaces))?;
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
        let key = blob::item_key(input.project_id, item_id);
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
            project_id: input.project_id,
            kind: match kind {
                DataKind::Document => "document".into(),
                DataKind::Audio => "audio".into(),
            },
            contributor_id: principal.user_id,
            status: ItemStatus::Uploaded.as_str().into(),
            title: fields.title,
            language: fields.language,
            external_id: fields.external_id,
            metadata: sqlx::types::Json(fields.metadata),
            file_name: sanitize_file_name(input.details.file_name.as_deref(), detected.extension()),
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
        let (p, c, idempotency) = (principal.clone(), ctx.clone(), claim.clone());
        let result = match replaces {
            None => {
                self.ask_project(input.project_id, |reply| ProjectMsg::AddItem {
                    principal: p,
                    idempotency,
                    row: Box::new(row),
                    ctx: c,
                    reply,
                })
                .await
            }
            Some(item_id) => {
                self.ask_project(input.project_id, |reply| ProjectMsg::ReplaceFile {
                    principal: p,
                    idempotency,
                    item_id,
                    row: Box::new(row),
                    ctx: c,
                    reply,
                })
                .await
            }
        };
        if result.is_err()
            && let Err(err) = self.deps.blobs.delete(&key).await
        {
            tracing::warn!(%key, error = %err, "could not remove the blob of a refused upload");
        }
        self.end_idempotent(&claim, result.is_ok()).await;
        result.map(Idempotent::Fresh)
    }
}
