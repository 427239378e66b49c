//! `/api/uploads`: resumable uploads over tus 1.0 (core, creation, termination,
//! checksum and expiration), for tus-js-client, Uppy and the other tus clients. The
//! protocol's own headers are checked by `middleware::tus`; each operation here makes
//! one engine call. A finished upload becomes a document or recording through the same
//! pipeline as `POST /api/documents` and `POST /api/voice`.

use alta_actors::ErrorCode;
use std::collections::HashMap;

use alta_actors::{
    Engine, EngineError,
    context::RequestContext,
    domain::DataKind,
    items::UploadDetails,
    resumable::{Checksum, ChecksumAlgorithm, CreateResumable, ResumableView},
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use poem::{Body, Request, RequestBody, http::StatusCode, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Header, Path},
    payload::{Json, ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef},
};
use uuid::Uuid;

use crate::{
    enums::{UploadState, Wire},
    middleware::tus::{TUS_EXTENSIONS, TUS_VERSION},
    problem::{ApiResult, Problem},
    projects::DataKindDto,
    required::Required,
    security::BearerAuth,
    tags::ApiTags,
};

/// Largest `Upload-Metadata` header accepted.
pub(crate) const MAX_METADATA_HEADER: usize = 24 * 1024;

/// The largest upload this server takes (`Tus-Max-Size`); projects may allow less.
#[derive(Debug, Clone, Copy)]
pub struct MaxUploadBytes(pub u64);

/// A `PATCH` body: the next bytes of the file, streamed.
pub struct OffsetOctetStream(pub Body);

impl Payload for OffsetOctetStream {
    const CONTENT_TYPE: &'static str = "application/offset+octet-stream";

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(Self::CONTENT_TYPE))
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("binary"),
            ..MetaSchema::new("string")
        }))
    }
}

impl ParsePayload for OffsetOctetStream {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(
            <Body as poem::FromRequest>::from_request(request, body).await?,
        ))
    }
}

crate::payload::payload_extractor!(OffsetOctetStream);

/// An upload's state, for clients that want more than its offset.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ResumableResponse {
    pub id: Uuid,
    pub project_id: Uuid,
    pub kind: Wire<DataKindDto>,
    /// Bytes announced (`Upload-Length`).
    pub length: u64,
    /// Bytes stored (`Upload-Offset`).
    pub offset: u64,
    pub state: Wire<UploadState>,
    /// The item it became, once completed.
    pub item_id: Option<Uuid>,
    /// Why the complete file was refused (failed).
    pub error_code: Option<String>,
    pub error_detail: Option<String>,
    pub created_at: DateTime<Utc>,
    /// An unfinished upload is removed after this (each chunk pushes it out).
    pub expires_at: DateTime<Utc>,
}

impl From<ResumableView> for ResumableResponse {
    fn from(v: ResumableView) -> Self {
        Self {
            id: v.id,
            project_id: v.project_id,
            kind: Wire::new(v.kind.as_str()),
            length: v.length,
            offset: v.offset,
            state: Wire::new(v.state.as_str()),
            item_id: v.item_id,
            error_code: v.error_code,
            error_detail: v.error_detail,
            created_at: v.created_at,
            expires_at: v.expires_at,
        }
    }
}

#[derive(ApiResponse)]
pub enum TusOptions {
    /// What this server supports.
    #[oai(status = 204)]
    NoContent(
        #[oai(header = "Tus-Version")] String,
        #[oai(header = "Tus-Extension")] String,
        #[oai(header = "Tus-Max-Size")] u64,
        #[oai(header = "Tus-Checksum-Algorithm")] String,
    ),
}

#[derive(ApiResponse)]
pub enum TusCreated {
    /// Created: send the bytes with `PATCH` to `Location`.
    #[oai(status = 201)]
    Created(
        #[oai(header = "Location")] String,
        #[oai(header = "Upload-Offset")] u64,
        #[oai(header = "Upload-Expires")] String,
    ),
}

#[derive(ApiResponse)]
pub enum TusHead {
    /// The stored offset. `Alta-Item-Id` names the item once the upload is complete.
    #[oai(status = 200)]
    Ok(
        #[oai(header = "Upload-Offset")] u64,
        #[oai(header = "Upload-Length")] u64,
        #[oai(header = "Upload-Metadata")] Option<String>,
        #[oai(header = "Upload-Expires")] Option<String>,
        #[oai(header = "Cache-Control")] String,
        #[oai(header = "Alta-Item-Id")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum TusPatched {
    /// Stored and committed. When this chunk completed the file, `Alta-Item-Id` names
    /// the item it became.
    #[oai(status = 204)]
    NoContent(
        #[oai(header = "Upload-Offset")] u64,
        #[oai(header = "Upload-Expires")] Option<String>,
        #[oai(header = "Alta-Item-Id")] Option<String>,
    ),
    /// The chunk does not match its `Upload-Checksum`; nothing of it was kept.
    #[oai(status = 460, content_type = "application/problem+json")]
    ChecksumMismatch(Json<Problem>),
}

#[derive(ApiResponse)]
pub enum TusTerminated {
    /// Removed, with the bytes received so far.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
pub enum ResumableOk {
    #[oai(status = 200)]
    Ok(Json<ResumableResponse>),
}

/// RFC 9110 HTTP-date, as tus wants for `Upload-Expires`.
fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn header_error(code: ErrorCode, field: &'static str, msg: impl Into<String>) -> EngineError {
    EngineError::validation(code, field, msg)
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs; a key may stand alone.
fn parse_metadata(raw: &str) -> Result<HashMap<String, String>, EngineError> {
    let bad = |msg: String| header_error(ErrorCode::InvalidUploadMetadata, "Upload-Metadata", msg);
    if raw.len() > MAX_METADATA_HEADER {
        return Err(bad(format!(
            "Upload-Metadata must be at most {MAX_METADATA_HEADER} bytes"
        )));
    }
    let mut out = HashMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut parts = pair.split(' ').filter(|p| !p.is_empty());
        let key = parts.next().unwrap_or_default();
        let value = parts.next().unwrap_or_default();
        if parts.next().is_some() || key.is_empty() || !key.is_ascii() {
            return Err(bad(format!("{pair:?} is not `key base64value`")));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(value))
            .map_err(|_| bad(format!("the value of {key} is not base64")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| bad(format!("the value of {key} is not UTF-8 text")))?;
        if out.insert(key.to_owned(), text).is_some() {
            return Err(bad(format!("{key} is given twice")));
        }
    }
    Ok(out)
}

fn create_input(
    length: Option<String>,
    defer: Option<String>,
    raw_metadata: Option<String>,
) -> Result<CreateResumable, EngineError> {
    if defer.is_some() {
        return Err(header_error(
            ErrorCode::DeferLengthUnsupported,
            "Upload-Defer-Length",
            "the length must be known when the upload is created (send Upload-Length)",
        ));
    }
    let length = length
        .as_deref()
        .map(str::trim)
        .and_then(|l| l.parse::<u64>().ok())
        .ok_or_else(|| {
            header_error(
                ErrorCode::InvalidUploadLength,
                "Upload-Length",
                "Upload-Length must be the file's size in bytes",
            )
        })?;
    let raw_metadata = raw_metadata.unwrap_or_default();
    let mut meta = parse_metadata(&raw_metadata)?;
    let mut take = |keys: &[&str]| keys.iter().find_map(|k| meta.remove(*k));
    // The values are base64 inside one header: no schema can state them, so what is
    // wrong with them is refused content (422), not a malformed request.
    let header_error = |code, field: &'static str, msg| EngineError::RefusedContent {
        code,
        field: Some(field.into()),
        message: String::from(msg),
    };
    let project_id = take(&["project_id", "projectId"])
        .ok_or_else(|| {
            header_error(
                ErrorCode::MissingProjectId,
                "Upload-Metadata",
                "Upload-Metadata must carry project_id",
            )
        })
        .and_then(|p| {
            Uuid::parse_str(p.trim()).map_err(|_| {
                header_error(
                    ErrorCode::InvalidProjectId,
                    "Upload-Metadata",
                    "project_id must be a UUID",
                )
            })
        })?;
    let kind = match take(&["kind"]).as_deref().map(str::trim) {
        Some("document") => DataKind::Document,
        Some("audio" | "voice") => DataKind::Audio,
        _ => {
            return Err(header_error(
                ErrorCode::InvalidKind,
                "Upload-Metadata",
                "Upload-Metadata must carry kind: document or audio",
            ));
        }
    };
    let details = UploadDetails {
        file_name: take(&["filename", "name"]),
        declared_type: take(&["filetype", "type"]),
        title: take(&["title"]),
        language: take(&["language"]),
        external_id: take(&["external_id", "externalId"]),
        metadata: take(&["metadata"]),
        replaces: take(&["replaces"]),
    };
    Ok(CreateResumable {
        project_id,
        kind,
        length,
        raw_metadata,
        details,
    })
}

/// `Upload-Checksum: <algorithm> <base64 digest>`.
fn parse_checksum(raw: Option<String>) -> Result<Option<Checksum>, EngineError> {
    // An empty header says nothing (as if it were not sent).
    let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
        return Ok(None);
    };
    let (name, digest) = raw.trim().split_once(' ').ok_or_else(|| {
        header_error(
            ErrorCode::InvalidChecksum,
            "Upload-Checksum",
            "Upload-Checksum is `<algorithm> <base64 digest>`",
        )
    })?;
    let algorithm = ChecksumAlgorithm::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
        .ok_or_else(|| {
            header_error(
                ErrorCode::UnsupportedChecksumAlgorithm,
                "Upload-Checksum",
                "supported checksum algorithms: sha1, sha256",
            )
        })?;
    let digest = base64::engine::general_purpose::STANDARD
        .decode(digest.trim())
        // Fits the header's pattern, yet does not decode (padding, trailing bits): the
        // content is refused.
        .map_err(|_| EngineError::RefusedContent {
            code: ErrorCode::InvalidChecksum,
            field: Some("Upload-Checksum".into()),
            message: "the checksum digest is not base64".into(),
        })?;
    Ok(Some(Checksum { algorithm, digest }))
}

fn parse_offset(raw: &str) -> Result<u64, EngineError> {
    raw.trim().parse::<u64>().map_err(|_| {
        header_error(
            ErrorCode::InvalidUploadOffset,
            "Upload-Offset",
            "Upload-Offset must be a byte offset",
        )
    })
}

fn checksum_mismatch(err: &EngineError) -> Problem {
    let mut p = Problem::new(
        StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
        err.code(),
        err.to_string(),
    );
    p.title = "Checksum Mismatch".into();
    p.field = Some("Upload-Checksum".into());
    p
}

pub struct UploadsApi;

#[OpenApi(tag = "ApiTags::Uploads")]
impl UploadsApi {
    /// What the resumable upload endpoint supports (tus discovery).
    #[oai(
        path = "/api/uploads",
        method = "options",
        operation_id = "tus_options"
    )]
    async fn options(&self, max: Data<&MaxUploadBytes>) -> ApiResult<TusOptions> {
        Ok(TusOptions::NoContent(
            TUS_VERSION.into(),
            TUS_EXTENSIONS.into(),
            max.0.0,
            "sha1,sha256".into(),
        ))
    }

    /// Start a resumable upload (tus creation).
    ///
    /// `Upload-Length` is the file's size. `Upload-Metadata` carries `project_id`,
    /// `kind` (`document` or `audio`) and optionally `filename`, `filetype`, `title`,
    /// `language`, `external_id` and `metadata` (a JSON object), each base64-encoded
    /// as tus requires. Every check that needs no bytes (membership, accepted kinds,
    /// size limit, fields) happens now. Requires `Tus-Resumable: 1.0.0`.
    #[oai(path = "/api/uploads", method = "post", operation_id = "tus_create")]
    async fn create(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        #[oai(name = "Upload-Length")] length: Header<Required<String>>,
        #[oai(name = "Upload-Defer-Length")] defer: Header<Option<String>>,
        #[oai(name = "Upload-Metadata")] metadata: Header<Required<String>>,
        ctx: Data<&RequestContext>,
    ) -> ApiResult<TusCreated> {
        let input = create_input(length.0.0, defer.0, metadata.0.0)?;
        let view = engine
            .resumable()
            .create_resumable(&auth.0, input, &ctx)
            .await?;
        Ok(TusCreated::Created(
            format!("/api/uploads/{}", view.id),
            0,
            http_date(view.expires_at),
        ))
    }

    /// The stored offset of an upload (tus `HEAD`): resume from there.
    #[oai(path = "/api/uploads/:id", method = "head", operation_id = "tus_head")]
    async fn head(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<TusHead> {
        let view = engine.resumable().resumable(&auth.0, id.0).await?;
        if let Some(code) = view
            .error_code
            .as_deref()
            .filter(|_| view.item_id.is_none())
        {
            return Err(EngineError::Gone {
                code: ErrorCode::UploadRefused,
                message: format!("the complete file was refused ({code})"),
            }
            .into());
        }
        let receiving = view.item_id.is_none();
        Ok(TusHead::Ok(
            view.offset,
            view.length,
            (!view.raw_metadata.is_empty()).then(|| view.raw_metadata.clone()),
            receiving.then(|| http_date(view.expires_at)),
            "no-store".into(),
            view.item_id.map(|i| i.to_string()),
        ))
    }

    /// Send the next bytes (tus `PATCH`), `Content-Type:
    /// application/offset+octet-stream`, at `Upload-Offset` (which must be the stored
    /// offset: 409 `offset_mismatch` otherwise). With `Upload-Checksum` (sha1 or
    /// sha256), a mismatching chunk is dropped with 460. The chunk that completes the
    /// file makes the item, refusing it as `POST /api/documents` would (and then the
    /// upload is gone: 410 afterwards).
    #[oai(
        path = "/api/uploads/:id",
        method = "patch",
        operation_id = "tus_patch"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn patch(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        id: Path<Uuid>,
        #[oai(name = "Upload-Offset")] offset: Header<String>,
        #[oai(name = "Upload-Checksum")] checksum: Header<Option<String>>,
        body: OffsetOctetStream,
    ) -> ApiResult<TusPatched> {
        let offset = parse_offset(&offset.0)?;
        let checksum = parse_checksum(checksum.0)?;
        let result = engine
            .resumable()
            .append_resumable(
                &auth.0,
                id.0,
                offset,
                checksum,
                body.0.into_async_read(),
                &ctx,
            )
            .await;
        match result {
            Ok(view) => Ok(TusPatched::NoContent(
                view.offset,
                view.item_id.is_none().then(|| http_date(view.expires_at)),
                view.item_id.map(|i| i.to_string()),
            )),
            Err(err) if err.code() == ErrorCode::ChecksumMismatch => {
                Ok(TusPatched::ChecksumMismatch(Json(checksum_mismatch(&err))))
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Stop an upload and remove what it received (tus termination). A completed
    /// upload's item stays.
    #[oai(
        path = "/api/uploads/:id",
        method = "delete",
        operation_id = "tus_terminate"
    )]
    async fn terminate(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        id: Path<Uuid>,
        ctx: Data<&RequestContext>,
    ) -> ApiResult<TusTerminated> {
        engine
            .resumable()
            .terminate_resumable(&auth.0, id.0, &ctx)
            .await?;
        Ok(TusTerminated::NoContent)
    }

    /// An upload's state as JSON: offset, and the item it became or why it was
    /// refused (useful when the response to the last chunk was lost).
    #[oai(path = "/api/uploads/:id", method = "get", operation_id = "get_upload")]
    async fn get(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        id: Path<Uuid>,
    ) -> ApiResult<ResumableOk> {
        let view = engine.resumable().resumable(&auth.0, id.0).await?;
        Ok(ResumableOk::Ok(Json(view.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn metadata_pairs() {
        let raw = format!(
            "project_id {},kind {}, filename {},flag",
            b64("0190d3a2-7c1e-7000-8000-000000000001"),
            b64("audio"),
            b64("räthsel.wav")
        );
        let input = create_input(Some("10".into()), None, Some(raw)).expect("valid");
        assert_eq!(input.kind, DataKind::Audio);
        assert_eq!(input.length, 10);
        assert_eq!(input.details.file_name.as_deref(), Some("räthsel.wav"));
    }

    #[test]
    fn metadata_errors() {
        let code = |raw: &str, len: Option<&str>| {
            create_input(len.map(Into::into), None, Some(raw.into()))
                .err()
                .map(|e| e.code().as_str())
        };
        let ok_meta = format!(
            "project_id {},kind {}",
            b64("0190d3a2-7c1e-7000-8000-000000000001"),
            b64("document")
        );
        assert_eq!(code(&ok_meta, None), Some("invalid_upload_length"));
        assert_eq!(code(&ok_meta, Some("-1")), Some("invalid_upload_length"));
        assert_eq!(code("kind !!!", Some("1")), Some("invalid_upload_metadata"));
        assert_eq!(code("a b c", Some("1")), Some("invalid_upload_metadata"));
        assert_eq!(
            code(&format!("kind {}", b64("audio")), Some("1")),
            Some("missing_project_id")
        );
        assert_eq!(
            code(
                &format!("project_id {},kind {}", b64("nope"), b64("audio")),
                Some("1")
            ),
            Some("invalid_project_id")
        );
        assert_eq!(
            code(
                &format!(
                    "project_id {},kind {}",
                    b64("0190d3a2-7c1e-7000-8000-000000000001"),
                    b64("video")
                ),
                Some("1")
            ),
            Some("invalid_kind")
        );
        assert!(create_input(Some("1".into()), Some("1".into()), Some(ok_meta)).is_err());
    }

    #[test]
    fn checksums() {
        assert!(parse_checksum(None).expect("none").is_none());
        let c = parse_checksum(Some("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=".into()))
            .expect("ok")
            .expect("some");
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(c.digest.len(), 20);
        assert_eq!(
            parse_checksum(Some("md5 AAAA".into()))
                .err()
                .map(|e| e.code().as_str()),
            Some("unsupported_checksum_algorithm")
        );
        assert_eq!(
            parse_checksum(Some("sha1".into()))
                .err()
                .map(|e| e.code().as_str()),
            Some("invalid_checksum")
        );
    }
}
