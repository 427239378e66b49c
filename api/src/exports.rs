//! Dataset exports: ask for one, follow it, download it (with `Range`, so a large one
//! resumes), delete it. Project admins only.

use alta_actors::{
    Engine,
    context::RequestContext,
    domain::export::{ExportInput, LabelMatch, Split},
    exports::ExportView,
};
use chrono::{DateTime, Utc};
use poem::{Body, web::Data};
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use uuid::Uuid;

use crate::{
    content::{ContentResponse, FileBody, content_disposition, ranged},
    enums::{ItemStatus, Wire},
    json_body::JsonBody,
    problem::ApiResult,
    projects::{DataKindDto, NoContent},
    security::BearerAuth,
    tags::ApiTags,
};

/// How the items leave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ExportFormatDto {
    /// One JSON object per item (`.jsonl`).
    Jsonl,
    /// One row per item with flat columns (`.csv`; nested values as JSON text).
    Csv,
    /// A Hugging Face folder in a tar: the files, `metadata.jsonl` per split and a
    /// `README.md` dataset card; `load_dataset("audiofolder", data_dir=…)` reads it.
    Hf,
    /// A tar of WebDataset shards (`shard-000000.tar`, …, each at most
    /// `EXPORT_SHARD_MAX_BYTES`) holding `{id}.{ext}` and `{id}.json` per item.
    Webdataset,
}

/// The container of an archive export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum PackagingDto {
    /// A tar (streams, Unix tools).
    Tar,
    /// A zip (stored entries, ZIP64), which Windows opens as it is.
    Zip,
}

/// Where an export is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ExportStateDto {
    Queued,
    Running,
    Finished,
    Failed,
}

/// A label the item's current annotation must have.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct LabelMatchDto {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub field: String,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub value: String,
}

/// Which items an export takes.
#[derive(Debug, Clone, Default, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct ExportFilterDto {
    /// Review states taken (default: `approved` only).
    #[oai(validator(min_items = 1, max_items = 8))]
    pub states: Option<Vec<ItemStatus>>,
    /// One kind only (required for `hf`).
    pub kind: Option<DataKindDto>,
    pub contributor_id: Option<Uuid>,
    /// Items created at or after this time.
    pub from: Option<DateTime<Utc>>,
    /// Items created before this time.
    pub to: Option<DateTime<Utc>>,
    /// Labels every item's current annotation has (at most 10).
    #[oai(validator(max_items = 10))]
    pub labels: Option<Vec<LabelMatchDto>>,
    /// Only items decided after that export of this project was made (incremental).
    pub since_export: Option<Uuid>,
}

/// Train / validation / test ratios (each 0 to 1, adding up to 1). An item lands in
/// the same split in every export with the same ratios.
#[derive(Debug, Clone, Copy, Object)]
#[oai(deny_unknown_fields)]
pub struct SplitDto {
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub train: f64,
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub validation: f64,
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub test: f64,
}

/// An export to make.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ExportRequest {
    pub format: Wire<ExportFormatDto>,
    pub filter: Option<ExportFilterDto>,
    /// Put the files in the export (an archive with the manifest: `packaging`). `webdataset`
    /// always has them; `hf` has them unless this is `false` (then its `metadata.jsonl`
    /// files and card alone, naming where each file goes).
    pub include_files: Option<bool>,
    pub split: Option<SplitDto>,
    /// The archive's container when there are files: `tar` (default) or `zip`.
    pub packaging: Option<Wire<PackagingDto>>,
}

/// An export: what was asked, how far it is, and its file once finished.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ExportResponse {
    pub id: Uuid,
    pub project_id: Uuid,
    /// Who asked for it; absent: written by `alta export` on the server, to a file there
    /// (it has no download: 409 `export_not_stored`; a later export can still take what
    /// was decided since it).
    pub created_by: Option<Uuid>,
    pub format: Wire<ExportFormatDto>,
    pub state: Wire<ExportStateDto>,
    /// The request as checked (`filter` with its defaults, `include_files`, `split`).
    pub spec: serde_json::Value,
    /// Items are those created and decided (if at all) by this time.
    pub snapshot_at: DateTime<Utc>,
    pub items_done: i64,
    /// Known once the run has begun.
    pub items_total: Option<i64>,
    /// Bytes written so far; the file's size once finished.
    pub bytes: i64,
    pub file_name: Option<String>,
    pub content_type: Option<String>,
    /// The finished file's SHA-256, hex: check a download against it.
    pub sha256: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// When it is removed (`EXPORT_RETENTION_DAYS` after it ended).
    pub expires_at: Option<DateTime<Utc>>,
}

impl From<ExportView> for ExportResponse {
    fn from(v: ExportView) -> Self {
        Self {
            id: v.id,
            project_id: v.project_id,
            created_by: v.created_by,
            format: Wire::new(v.format.as_str()),
            state: Wire::new(v.state.as_str()),
            spec: serde_json::to_value(&v.spec).unwrap_or_default(),
            snapshot_at: v.snapshot_at,
            items_done: v.items_done,
            items_total: v.items_total,
            bytes: v.bytes,
            file_name: v.file_name,
            content_type: v.content_type,
            sha256: v.sha256,
            error: v.error,
            created_at: v.created_at,
            started_at: v.started_at,
            finished_at: v.finished_at,
            expires_at: v.expires_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ExportPage {
    pub items: Vec<ExportResponse>,
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ExportAccepted {
    /// Queued: follow it at `GET …/exports/{export_id}`. `Idempotent-Replayed: true`
    /// when this is the stored answer to an earlier request with the same
    /// `Idempotency-Key`.
    #[oai(status = 202)]
    Accepted(
        Json<ExportResponse>,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum ExportOk {
    #[oai(status = 200)]
    Ok(Json<ExportResponse>),
}

#[derive(ApiResponse)]
pub enum ExportPageOk {
    #[oai(status = 200)]
    Ok(Json<ExportPage>),
}

pub struct ExportsApi;

#[OpenApi(tag = "ApiTags::Exports")]
impl ExportsApi {
    /// Export a project's items
    ///
    /// Project admins. Runs in the background as a durable job (it survives restarts
    /// and resumes where it was); answers 202 at once. `format`: `jsonl`, `csv`, `hf`
    /// (needs `filter.kind`), `webdataset`. `filter` takes
    /// `approved` items unless `states` says otherwise; `since_export` takes only items
    /// decided after an earlier export. Rows carry the item, its file's path, sha256
    /// and size, the current text with word timings, the annotation, the review
    /// outcome and the contributor as a stable pseudonym (never an email). Bad content
    /// is 422 `invalid_export` with `field`. Honours `Idempotency-Key`.
    #[oai(
        path = "/api/projects/:project_id/exports",
        method = "post",
        operation_id = "exports_create"
    )]
    async fn create(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<ExportRequest>,
    ) -> ApiResult<ExportAccepted> {
        let request = body.0;
        let filter = request.filter.unwrap_or_default();
        let input = ExportInput {
            format: request.format.as_str().to_owned(),
            states: filter
                .states
                .map(|s| s.into_iter().map(|s| s.as_str().to_owned()).collect()),
            kind: filter
                .kind
                .map(|k| alta_actors::domain::DataKind::from(k).as_str().to_owned()),
            contributor_id: filter.contributor_id,
            from: filter.from,
            to: filter.to,
            labels: filter.labels.map(|labels| {
                labels
                    .into_iter()
                    .map(|l| LabelMatch {
                        field: l.field,
                        value: l.value,
                    })
                    .collect()
            }),
            since_export: filter.since_export,
            include_files: request.include_files,
            split: request.split.map(|s| Split {
                train: s.train,
                validation: s.validation,
                test: s.test,
            }),
            packaging: request.packaging.map(|p| p.as_str().to_owned()),
        };
        let outcome = engine
            .exports()
            .create_export(
                &auth.0,
                project_id.0,
                input,
                idempotency_key.0.as_deref(),
                &ctx,
            )
            .await?;
        let replayed = outcome.replayed().then(|| "true".to_owned());
        Ok(ExportAccepted::Accepted(
            Json(outcome.into_inner().into()),
            replayed,
        ))
    }

    /// List a project's exports
    ///
    /// Newest first. Project admins.
    #[oai(
        path = "/api/projects/:project_id/exports",
        method = "get",
        operation_id = "exports_list"
    )]
    async fn list(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        /// Page size, 1–200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` from the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<ExportPageOk> {
        let page = engine
            .exports()
            .exports(&auth.0, project_id.0, limit.0, cursor.0.as_deref())
            .await?;
        Ok(ExportPageOk::Ok(Json(ExportPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next_cursor,
        })))
    }

    /// Get an export
    ///
    /// Its state, items done of the total, bytes written, times, and its error if it
    /// failed. Project admins.
    #[oai(
        path = "/api/projects/:project_id/exports/:export_id",
        method = "get",
        operation_id = "exports_get"
    )]
    async fn get(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        export_id: Path<Uuid>,
    ) -> ApiResult<ExportOk> {
        let view = engine
            .exports()
            .export(&auth.0, project_id.0, export_id.0)
            .await?;
        Ok(ExportOk::Ok(Json(view.into())))
    }

    /// Delete an export
    ///
    /// With its file; a running one stops. Project admins.
    #[oai(
        path = "/api/projects/:project_id/exports/:export_id",
        method = "delete",
        operation_id = "exports_delete"
    )]
    async fn delete(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        export_id: Path<Uuid>,
    ) -> ApiResult<NoContent> {
        engine
            .exports()
            .delete_export(&auth.0, project_id.0, export_id.0, &ctx)
            .await?;
        Ok(NoContent::NoContent)
    }

    /// Download an export's file
    ///
    /// Once it is finished (409 `export_not_ready` before; 409 `export_not_stored` for
    /// an export `alta export` wrote to a file on the server). Streamed, with `Range`
    /// (`bytes=a-b`, `a-`, `-n`; 206 with `Content-Range`), so a large download
    /// resumes. With GCS storage and signed URLs, a 302 to a URL signed for
    /// `GCS_SIGNED_URL_SECONDS` that downloads it from the bucket (with `Range` too).
    /// Project admins.
    #[oai(
        path = "/api/projects/:project_id/exports/:export_id/download",
        method = "get",
        operation_id = "exports_download"
    )]
    async fn download(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        export_id: Path<Uuid>,
        #[oai(name = "Range")] range: Header<Option<String>>,
    ) -> ApiResult<ExportFileResponse> {
        let download = engine
            .exports()
            .export_download(&auth.0, project_id.0, export_id.0)
            .await?;
        if let Some(url) = engine.exports().export_signed_url(&download).await? {
            return Ok(ExportFileResponse::Redirect(url, "no-store".into()));
        }
        let export = &download.export;
        let content_type = export
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        let name = export
            .file_name
            .clone()
            .unwrap_or_else(|| format!("export-{}", export.id));
        let engine = engine.0;
        ranged(
            download.len,
            range.0.as_deref(),
            content_disposition(&name),
            |start, end| {
                let download = download.clone();
                let content_type = content_type.clone();
                async move {
                    let stream = engine.exports().export_range(&download, start, end).await?;
                    Ok(FileBody {
                        body: Body::from_bytes_stream(stream),
                        content_type,
                    })
                }
            },
            || FileBody {
                body: Body::empty(),
                content_type: content_type.clone(),
            },
        )
        .await
        .map(Into::into)
    }
}

/// An export's file: from the server, or (GCS with signed URLs) from the bucket.
#[derive(ApiResponse)]
pub enum ExportFileResponse {
    /// With GCS storage: a URL signed for `GCS_SIGNED_URL_SECONDS` that downloads the
    /// file from the bucket directly (it honours `Range` too).
    #[oai(status = 302)]
    Redirect(
        #[oai(header = "Location")] String,
        #[oai(header = "Cache-Control")] String,
    ),
    /// The whole file.
    #[oai(status = 200)]
    Full(
        FileBody,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Accept-Ranges")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// The requested byte range.
    #[oai(status = 206)]
    Partial(
        FileBody,
        #[oai(header = "Content-Disposition")] String,
        #[oai(header = "Content-Range")] String,
        #[oai(header = "Content-Length")] u64,
    ),
    /// The range lies outside the file.
    #[oai(status = 416, content_type = "application/problem+json")]
    RangeNotSatisfiable(
        poem_openapi::payload::Json<crate::problem::Problem>,
        #[oai(header = "Content-Range")] String,
    ),
}

impl From<ContentResponse> for ExportFileResponse {
    fn from(response: ContentResponse) -> Self {
        match response {
            ContentResponse::Full(body, disposition, ranges, len) => {
                Self::Full(body, disposition, ranges, len)
            }
            ContentResponse::Partial(body, disposition, range, len) => {
                Self::Partial(body, disposition, range, len)
            }
            ContentResponse::RangeNotSatisfiable(problem, range) => {
                Self::RangeNotSatisfiable(problem, range)
            }
        }
    }
}
