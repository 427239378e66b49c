//! Resumable uploads (the engine side of tus 1.0: creation, offsets, checksum,
//! termination, expiration). The row holds the committed offset, so an upload survives
//! a restart. Where the bytes wait:
//! - one node (the default): in a local file beside the incoming folder. Another node
//!   asked to continue such an upload refuses (`upload_elsewhere`) instead of judging a
//!   file whose first part it never had;
//! - several nodes (`MULTI_NODE`): each committed chunk is a blob of its own in the
//!   shared blob store (`resumable_parts`), so any node can continue; the node that
//!   receives the last chunk assembles the file.
//!
//! When the last byte arrives the file goes through the same pipeline as a one-shot
//! upload (`ItemService::upload`), with an idempotency key derived from the upload, so a
//! retried final chunk can never make a second item.

mod transition;

use self::transition::{AdvanceUpload, OpenUpload, RemoveUpload, SettleUpload, Settled};
use crate::ErrorCode;
use crate::items::ItemService;
use std::io::SeekFrom;

use chrono::{DateTime, Utc};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use uuid::Uuid;

use crate::{
    authz::ProjectAction,
    context::{Principal, RequestContext},
    deps::Deps,
    domain::{DataKind, ResumableState},
    error::EngineError,
    items::{UploadDetails, UploadInput, UploadSource, parse_fields},
    metrics as m,
    store::{self, resumable::ResumableRow},
};

crate::handle::service!(
    /// The resumable (tus) uploads' part of the engine.
    ResumableService
);

/// Unfinished uploads one account may have open at once (each may reserve up to the
/// project's size limit of disk).
pub const MAX_OPEN_PER_USER: i64 = 20;

/// A resumable upload being created.
#[derive(Debug, Clone)]
pub struct CreateResumable {
    pub project_id: Uuid,
    pub kind: DataKind,
    /// The total size the client announced (`Upload-Length`).
    pub length: u64,
    /// The `Upload-Metadata` header as received (echoed back on `HEAD`).
    pub raw_metadata: String,
    pub details: UploadDetails,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    pub const ALL: [(&'static str, Self); 2] = [("sha1", Self::Sha1), ("sha256", Self::Sha256)];
}

/// The expected digest of one chunk (`Upload-Checksum`).
#[derive(Debug, Clone)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

enum ChunkHasher {
    Sha1(Sha1),
    Sha256(Sha256),
}

impl ChunkHasher {
    fn new(algorithm: ChecksumAlgorithm) -> Self {
        match algorithm {
            ChecksumAlgorithm::Sha1 => Self::Sha1(Sha1::new()),
            ChecksumAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(bytes),
            Self::Sha256(h) => h.update(bytes),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ResumableView {
    pub id: Uuid,
    pub project_id: Uuid,
    pub kind: DataKind,
    pub length: u64,
    pub offset: u64,
    pub raw_metadata: String,
    pub state: ResumableState,
    /// The item it became (completed).
    pub item_id: Option<Uuid>,
    /// Why the complete file was refused (failed).
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl From<ResumableRow> for ResumableView {
    fn from(r: ResumableRow) -> Self {
        Self {
            id: r.id,
            project_id: r.project_id,
            kind: r.kind,
            length: u64::try_from(r.upload_length).unwrap_or(0),
            offset: u64::try_from(r.upload_offset).unwrap_or(0),
            raw_metadata: r.raw_metadata,
            state: r.state,
            item_id: r.item_id,
            error_code: r.error_code,
            error_detail: r.error_detail,
            created_at: r.created_at,
            expires_at: r.expires_at,
        }
    }
}

fn busy() -> EngineError {
    EngineError::Conflict {
        code: ErrorCode::UploadBusy,
        message: "another request is writing to this upload; read its offset and retry".into(),
    }
}

/// Failures the client can fix by sending the last chunk again. The upload's key still
/// held by an earlier attempt (one whose server died, until its lease lapses) is one.
fn retryable(err: &EngineError) -> bool {
    matches!(
        err,
        EngineError::Unavailable(_)
            | EngineError::Internal(_)
            | EngineError::RateLimited { .. }
            | EngineError::Conflict {
                code: ErrorCode::IdempotencyKeyInProgress,
                ..
            }
    )
}

/// Cut the file back to the committed offset (drops a refused or uncommitted tail).
async fn truncate(path: &std::path::Path, offset: u64) {
    if let Ok(file) = tokio::fs::OpenOptions::new().write(true).open(path).await {
        let _ = file.set_len(offset).await;
        let _ = file.sync_all().await;
    }
}

impl ResumableService {
    /// Start a resumable upload (contributors and admins of the project). Everything
    /// that can be checked before the bytes arrive is checked now.
    pub async fn create_resumable(
        &self,
        principal: &Principal,
        input: CreateResumable,
        ctx: &RequestContext,
    ) -> Result<ResumableView, EngineError> {
        let project = self
            .check_project(principal, input.project_id, ProjectAction::Upload)
            .await?;
        if !project.settings.accepted_kinds.contains(&input.kind) {
            return Err(EngineError::validation(
                ErrorCode::KindNotAccepted,
                "kind",
                "this project does not accept this kind of data",
            ));
        }
        let max = match input.kind {
            DataKind::Document => project.settings.max_document_bytes,
            DataKind::Audio => project.settings.max_audio_bytes,
        };
        if input.length == 0 {
            return Err(EngineError::validation(
                ErrorCode::EmptyFile,
                "Upload-Length",
                "the file is empty",
            ));
        }
        if input.length > max {
            return Err(EngineError::TooLarge {
                code: ErrorCode::FileTooLarge,
                message: format!("the file is larger than this project's limit of {max} bytes"),
            });
        }
        parse_fields(&input.details)?;
        let now = self.deps.clock.now();
        let expiry = chrono::Duration::from_std(self.deps.config.resumable_upload_expiry)
            .map_err(EngineError::internal)?;
        let row = ResumableRow {
            id: Uuid::now_v7(),
            user_id: principal.user_id,
            project_id: input.project_id,
            kind: input.kind,
            upload_length: i64::try_from(input.length).map_err(EngineError::internal)?,
            upload_offset: 0,
            raw_metadata: input.raw_metadata,
            fields: sqlx::types::Json(
                serde_json::to_value(&input.details).map_err(EngineError::internal)?,
            ),
            state: ResumableState::Receiving,
            item_id: None,
            error_code: None,
            error_detail: None,
            created_at: now,
            updated_at: now,
            expires_at: now + expiry,
        };
        let open = OpenUpload {
            row: Box::new(row.clone()),
        };
        self.apply_in_project(input.project_id, principal, ctx, open)
            .await?;
        metrics::counter!(m::RESUMABLE_UPLOADS_TOTAL, "event" => "created").increment(1);
        Ok(row.into())
    }

    /// The caller's own upload; anyone else's does not exist for them.
    async fn own_resumable(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<ResumableRow, EngineError> {
        match store::resumable::find(&self.deps.db, id).await? {
            Some(row) if row.user_id == principal.user_id => Ok(row),
            _ => Err(EngineError::NotFound { what: "upload" }),
        }
    }

    /// The state of an upload (its offset for `HEAD`). Unfinished and expired, or
    /// refused when complete, is gone (410) with the reason.
    pub async fn resumable(
        &self,
        principal: &Principal,
        id: Uuid,
    ) -> Result<ResumableView, EngineError> {
        let row = self.own_resumable(principal, id).await?;
        let view = ResumableView::from(row);
        if view.state == ResumableState::Receiving && view.expires_at <= self.deps.clock.now() {
            return Err(expired());
        }
        Ok(view)
    }

    /// Append `body` at `offset` (`PATCH`). The bytes are durable, and the offset
    /// committed, before this returns; a checksum mismatch or an overlong body commits
    /// nothing. A body cut short without a checksum keeps what arrived (that is what
    /// resuming is for). The chunk that completes the file makes the item.
    pub async fn append_resumable<R>(
        &self,
        principal: &Principal,
        id: Uuid,
        offset: u64,
        checksum: Option<Checksum>,
        body: R,
        ctx: &RequestContext,
    ) -> Result<ResumableView, EngineError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let row = self.own_resumable(principal, id).await?;
        let view = ResumableView::from(row.clone());
        match view.state {
            ResumableState::Completed if offset == view.length => return Ok(view),
            ResumableState::Completed => {
                return Err(EngineError::Conflict {
                    code: ErrorCode::UploadFinished,
                    message: "this upload is complete".into(),
                });
            }
            ResumableState::Failed => return Err(refused(&view)),
            ResumableState::Receiving => {}
        }
        let now = self.deps.clock.now();
        if view.expires_at <= now {
            return Err(expired());
        }
        let _busy = self.deps.resumable_busy.claim(id).ok_or_else(busy)?;
        // Re-read under the claim: a writer that just finished may have moved it on.
        let row = self.own_resumable(principal, id).await?;
        let committed = u64::try_from(row.upload_offset).unwrap_or(0);
        if offset != committed || row.state != ResumableState::Receiving {
            return Err(EngineError::Conflict {
                code: ErrorCode::OffsetMismatch,
                message: format!("the upload is at offset {committed}, not {offset}"),
            });
        }

        if self.deps.config.shared_resumable_parts {
            return self
                .append_part(principal, view, committed, checksum, body, ctx)
                .await;
        }
        let path = self.deps.blobs.resumable_path(id);
        // The bytes so far are in this node's file. A node that does not have them (the
        // upload began on another node) says so; filling the gap would judge half a file.
        let have = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
        if have < committed {
            return Err(elsewhere(committed));
        }
        let received = self
            .write_chunk(&path, committed, view.length, checksum, body)
            .await?;
        let new_offset = committed + received.bytes;
        let expiry = chrono::Duration::from_std(self.deps.config.resumable_upload_expiry)
            .map_err(EngineError::internal)?;
        metrics::counter!(m::RESUMABLE_BYTES_TOTAL).increment(received.bytes);

        if new_offset < view.length || received.interrupted {
            let advance = AdvanceUpload {
                id,
                from: row.upload_offset,
                to: i64::try_from(new_offset).map_err(EngineError::internal)?,
                part: None,
                expires_at: now + expiry,
            };
            let moved = self
                .apply_in_project(view.project_id, principal, ctx, advance)
                .await?;
            if !moved {
                truncate(&path, committed).await;
                return Err(busy());
            }
            return stored(view, new_offset, received.interrupted, now + expiry);
        }
        self.finish_resumable(principal, view, &path, committed, ctx)
            .await
    }

    /// [`ResumableService::append_resumable`] when nodes share uploads: the chunk becomes a blob
    /// of its own, committed with the offset; the last chunk assembles the file from the
    /// parts (on whichever node receives it) and makes the item.
    async fn append_part<R>(
        &self,
        principal: &Principal,
        view: ResumableView,
        committed: u64,
        checksum: Option<Checksum>,
        body: R,
        ctx: &RequestContext,
    ) -> Result<ResumableView, EngineError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let id = view.id;
        // A file of its own per request (a name no upload has, so the sweeper removes
        // what a crash leaves behind).
        let chunk = self.deps.blobs.resumable_path(Uuid::now_v7());
        let received = match self
            .write_chunk(&chunk, 0, view.length - committed, checksum, body)
            .await
        {
            Ok(received) => received,
            Err(err) => {
                let _ = tokio::fs::remove_file(&chunk).await;
                return Err(err);
            }
        };
        let new_offset = committed + received.bytes;
        metrics::counter!(m::RESUMABLE_BYTES_TOTAL).increment(received.bytes);
        let now = self.deps.clock.now();
        let expiry = chrono::Duration::from_std(self.deps.config.resumable_upload_expiry)
            .map_err(EngineError::internal)?;

        if new_offset < view.length || received.interrupted {
            let from = i64::try_from(committed).map_err(EngineError::internal)?;
            let moved = if received.bytes == 0 {
                let _ = tokio::fs::remove_file(&chunk).await;
                let advance = AdvanceUpload {
                    id,
                    from,
                    to: from,
                    part: None,
                    expires_at: now + expiry,
                };
                self.apply_in_project(view.project_id, principal, ctx, advance)
                    .await?
            } else {
                let part = store::resumable::PartRow {
                    start_offset: from,
                    length: i64::try_from(received.bytes).map_err(EngineError::internal)?,
                    blob_key: format!("{id}/{}", Uuid::now_v7()),
                };
                let put = self.deps.blobs.put_file(&part.blob_key, &chunk).await;
                let _ = tokio::fs::remove_file(&chunk).await;
                put.map_err(|e| EngineError::Unavailable(format!("blob store: {e}")))?;
                // A part whose commit fails is left in the store (it may have committed
                // after all): a blob nobody reads, never a committed part removed.
                let key = part.blob_key.clone();
                let advance = AdvanceUpload {
                    id,
                    from,
                    to: from + part.length,
                    part: Some(part),
                    expires_at: now + expiry,
                };
                let moved = self
                    .apply_in_project(view.project_id, principal, ctx, advance)
                    .await?;
                if !moved {
                    let _ = self.deps.blobs.delete(&key).await;
                }
                moved
            };
            if !moved {
                return Err(busy());
            }
            return stored(view, new_offset, received.interrupted, now + expiry);
        }

        let path = self.deps.blobs.resumable_path(id);
        // The parts' keys, read before the upload is settled (which forgets them).
        let parts = match store::resumable::parts(&self.deps.db, id).await {
            Ok(parts) => parts,
            Err(err) => {
                let _ = tokio::fs::remove_file(&chunk).await;
                return Err(err.into());
            }
        };
        let assembled = self.assemble(id, &parts, committed, &chunk, &path).await;
        let _ = tokio::fs::remove_file(&chunk).await;
        if let Err(err) = assembled {
            let _ = tokio::fs::remove_file(&path).await;
            return Err(err);
        }
        let result = self
            .finish_resumable(principal, view, &path, committed, ctx)
            .await;
        match &result {
            // Not committed: the next try assembles the file again.
            Err(err) if retryable(err) => {
                let _ = tokio::fs::remove_file(&path).await;
            }
            // Made an item, or refused for good: the parts are done with.
            _ => remove_part_blobs(&self.deps, id, &parts).await,
        }
        result
    }

    /// The whole file at `path`: the upload's parts, in order, then the last chunk.
    async fn assemble(
        &self,
        id: Uuid,
        parts: &[store::resumable::PartRow],
        committed: u64,
        last_chunk: &std::path::Path,
        path: &std::path::Path,
    ) -> Result<(), EngineError> {
        use futures::TryStreamExt;
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(EngineError::internal)?;
        let mut at: i64 = 0;
        for part in parts {
            if part.start_offset != at {
                return Err(EngineError::internal(format!(
                    "upload {id}: the part at {at} is missing"
                )));
            }
            let last = u64::try_from(part.length - 1).map_err(EngineError::internal)?;
            let mut stream = self
                .deps
                .blobs
                .open_range(&part.blob_key, 0, last)
                .await
                .map_err(|e| EngineError::Unavailable(format!("blob store: {e}")))?;
            while let Some(bytes) = stream
                .try_next()
                .await
                .map_err(|e| EngineError::Unavailable(format!("blob store: {e}")))?
            {
                file.write_all(&bytes)
                    .await
                    .map_err(EngineError::internal)?;
            }
            at += part.length;
        }
        if u64::try_from(at).ok() != Some(committed) {
            return Err(EngineError::internal(format!(
                "upload {id}: parts hold {at} bytes, {committed} are committed"
            )));
        }
        let mut tail = tokio::fs::File::open(last_chunk)
            .await
            .map_err(EngineError::internal)?;
        tokio::io::copy(&mut tail, &mut file)
            .await
            .map_err(EngineError::internal)?;
        file.sync_all().await.map_err(EngineError::internal)?;
        Ok(())
    }

    /// Every byte is in: make the item through the one-shot pipeline.
    async fn finish_resumable(
        &self,
        principal: &Principal,
        view: ResumableView,
        path: &std::path::Path,
        committed: u64,
        ctx: &RequestContext,
    ) -> Result<ResumableView, EngineError> {
        let id = view.id;
        let row = self.own_resumable(principal, id).await?;
        let details: UploadDetails =
            serde_json::from_value(row.fields.0.clone()).map_err(EngineError::internal)?;
        let input = UploadInput {
            project_id: view.project_id,
            kind: view.kind,
            details,
            source: UploadSource::Received(path.to_path_buf()),
        };
        let key = format!("tus:{id}");
        let result = self
            .service::<ItemService>()
            .upload(principal, input, Some(&key), ctx)
            .await;
        match result {
            Ok(item) => {
                let item_id = item.into_inner().id;
                let settle = SettleUpload {
                    id,
                    settled: Settled::Completed { item_id },
                };
                self.apply_in_project(view.project_id, principal, ctx, settle)
                    .await?;
                let _ = tokio::fs::remove_file(path).await;
                metrics::counter!(m::RESUMABLE_UPLOADS_TOTAL, "event" => "completed").increment(1);
                Ok(ResumableView {
                    offset: view.length,
                    state: ResumableState::Completed,
                    item_id: Some(item_id),
                    ..view
                })
            }
            Err(err) if retryable(&err) => {
                // Not committed: the client sends the last chunk again.
                truncate(path, committed).await;
                Err(err)
            }
            Err(err) => {
                let settle = SettleUpload {
                    id,
                    settled: Settled::Failed {
                        code: err.code().as_str().to_owned(),
                        detail: err.to_string(),
                    },
                };
                self.apply_in_project(view.project_id, principal, ctx, settle)
                    .await?;
                let _ = tokio::fs::remove_file(path).await;
                metrics::counter!(m::RESUMABLE_UPLOADS_TOTAL, "event" => "refused").increment(1);
                Err(final_refusal(err))
            }
        }
    }

    /// Write one chunk at `offset`, never past `length`; durable on return.
    async fn write_chunk<R>(
        &self,
        path: &std::path::Path,
        offset: u64,
        length: u64,
        checksum: Option<Checksum>,
        mut body: R,
    ) -> Result<Received, EngineError>
    where
        R: AsyncRead + Unpin + Send,
    {
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .await
            .map_err(EngineError::internal)?;
        // A crash after writing and before committing leaves a tail: drop it.
        file.set_len(offset).await.map_err(EngineError::internal)?;
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(EngineError::internal)?;
        let room = length - offset;
        let mut hasher = checksum.as_ref().map(|c| ChunkHasher::new(c.algorithm));
        let mut buf = vec![0u8; 64 * 1024];
        let mut bytes: u64 = 0;
        let mut interrupted = false;
        loop {
            let n = match body.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(_) => {
                    interrupted = true;
                    break;
                }
            };
            bytes += n as u64;
            if bytes > room {
                drop(file);
                truncate(path, offset).await;
                return Err(EngineError::TooLarge {
                    code: ErrorCode::ExceedsUploadLength,
                    message: format!("the chunk goes past the announced length of {length} bytes"),
                });
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&buf[..n]);
            }
            file.write_all(&buf[..n])
                .await
                .map_err(EngineError::internal)?;
        }
        if let (Some(expected), Some(h)) = (checksum, hasher) {
            // A cut-short chunk cannot match its checksum: keep nothing of it.
            if interrupted || h.finish() != expected.digest {
                drop(file);
                truncate(path, offset).await;
                return Err(EngineError::validation(
                    ErrorCode::ChecksumMismatch,
                    "Upload-Checksum",
                    "the chunk does not match its Upload-Checksum; nothing of it was kept",
                ));
            }
        }
        file.sync_all().await.map_err(EngineError::internal)?;
        Ok(Received { bytes, interrupted })
    }

    /// Stop and remove an upload (`DELETE`). A finished upload's item stays.
    pub async fn terminate_resumable(
        &self,
        principal: &Principal,
        id: Uuid,
        ctx: &RequestContext,
    ) -> Result<(), EngineError> {
        let row = self.own_resumable(principal, id).await?;
        let _busy = self.deps.resumable_busy.claim(id).ok_or_else(busy)?;
        let parts = store::resumable::parts(&self.deps.db, id).await?;
        self.apply_in_project(row.project_id, principal, ctx, RemoveUpload { id })
            .await?;
        remove_part_blobs(&self.deps, id, &parts).await;
        let _ = tokio::fs::remove_file(self.deps.blobs.resumable_path(id)).await;
        metrics::counter!(m::RESUMABLE_UPLOADS_TOTAL, "event" => "terminated").increment(1);
        Ok(())
    }
}

struct Received {
    bytes: u64,
    interrupted: bool,
}

/// A refusal of the complete file is final, so it must not be a status tus clients
/// retry: tus-js-client (and Uppy) retry 409 and 423, and a retry finds the upload gone
/// and sends the whole file again. A conflict (duplicate content, a taken
/// `external_id`) becomes 422 with the same code and detail.
fn final_refusal(err: EngineError) -> EngineError {
    match err {
        EngineError::Conflict { code, message } => EngineError::Unprocessable { code, message },
        other => other,
    }
}

/// Remove the blobs of an upload's parts (best effort: a part left behind is a blob
/// nobody reads).
async fn remove_part_blobs(deps: &Deps, id: Uuid, parts: &[store::resumable::PartRow]) {
    for part in parts {
        if let Err(err) = deps.blobs.delete(&part.blob_key).await {
            tracing::warn!(upload = %id, error = %err, "could not remove an upload part");
        }
    }
}

/// An expired upload's parts: their blobs, then their rows (the sweeper's
/// housekeeping; its row goes with the upload's).
async fn drop_parts(deps: &Deps, id: Uuid) {
    let Ok(parts) = store::resumable::parts(&deps.db, id).await else {
        return;
    };
    if parts.is_empty() {
        return;
    }
    remove_part_blobs(deps, id, &parts).await;
    let _ = store::resumable::delete_parts(&deps.db, id).await;
}

/// The answer to a chunk committed short of the end: the new offset, or (a body cut
/// short) a 400 that says how much is stored.
fn stored(
    view: ResumableView,
    offset: u64,
    interrupted: bool,
    expires_at: DateTime<Utc>,
) -> Result<ResumableView, EngineError> {
    if interrupted {
        return Err(EngineError::validation(
            ErrorCode::BodyInterrupted,
            "body",
            format!("the body ended early; {offset} bytes are stored"),
        ));
    }
    Ok(ResumableView {
        offset,
        expires_at,
        ..view
    })
}

fn elsewhere(committed: u64) -> EngineError {
    EngineError::Conflict {
        code: ErrorCode::UploadElsewhere,
        message: format!(
            "the first {committed} bytes of this upload were received by another server \
             node, which keeps them; send the rest there (or run every node with \
             MULTI_NODE=true so that nodes share uploads)"
        ),
    }
}

fn expired() -> EngineError {
    EngineError::Gone {
        code: ErrorCode::UploadExpired,
        message: "this upload expired before it was finished; start a new one".into(),
    }
}

fn refused(view: &ResumableView) -> EngineError {
    EngineError::Gone {
        code: ErrorCode::UploadRefused,
        message: format!(
            "the complete file was refused ({}): {}",
            view.error_code.as_deref().unwrap_or("unknown"),
            view.error_detail.as_deref().unwrap_or("")
        ),
    }
}

/// Remove expired uploads (rows and bytes) and files no row owns. Returns how many
/// uploads went. Called by the sweeper.
pub(crate) async fn expire(deps: &Deps, grace: std::time::Duration) -> usize {
    let now = deps.clock.now();
    let mut removed = 0;
    match store::resumable::expired(&deps.db, now, 500).await {
        Ok(ids) => {
            for id in ids {
                let Some(_busy) = deps.resumable_busy.claim(id) else {
                    continue;
                };
                drop_parts(deps, id).await;
                if store::resumable::delete(&deps.db, id).await.is_ok() {
                    let _ = tokio::fs::remove_file(deps.blobs.resumable_path(id)).await;
                    removed += 1;
                }
            }
        }
        Err(err) => tracing::warn!(error = %err, "resumable expiry skipped: database unavailable"),
    }
    // A file whose row is gone (removal failed half-way): after the grace period.
    if let Ok(mut entries) = tokio::fs::read_dir(deps.blobs.resumable_dir()).await {
        while let Ok(Some(entry)) = entries.next_entry().await {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| Uuid::parse_str(n).ok())
            else {
                continue;
            };
            let old = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= grace);
            if old
                && matches!(store::resumable::exists(&deps.db, id).await, Ok(false))
                && tokio::fs::remove_file(entry.path()).await.is_ok()
            {
                removed += 1;
            }
        }
    }
    if removed > 0 {
        metrics::counter!(m::RESUMABLE_UPLOADS_TOTAL, "event" => "expired")
            .increment(removed as u64);
    }
    removed
}
