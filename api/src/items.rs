//! `/api/documents` and `/api/voice`: upload, list, read, stream and delete items.
//! Both kinds share one set of handlers; only the kind differs.

use alta_actors::ErrorCode;
use alta_actors::{
    Engine,
    context::RequestContext,
    domain::DataKind,
    idempotency::Idempotent,
    items::{
        FormPart, ItemListQuery, ItemText, ItemView, TextRevision, UploadForm as UploadFormParts,
    },
    media::audio::AudioAnalysis,
};
use chrono::{DateTime, Utc};
use poem::{Body, Request, RequestBody, web::Data};
use poem_openapi::{
    ApiResponse, Multipart, Object, OpenApi,
    param::{Header, Path, Query},
    payload::{Json, ParsePayload, Payload},
    registry::{MetaSchemaRef, Registry},
    types::multipart::Upload,
};
use uuid::Uuid;

use crate::{
    content::{ContentResponse, FileBody, content_disposition, download_name, ranged},
    enums::{DetectedType, ItemStatus, JobKind, JobState, TextSource, Wire},
    json_body::JsonBody,
    problem::ApiResult,
    projects::DataKindDto,
    required::Required,
    security::BearerAuth,
    tags::ApiTags,
};

/// An upload: the file and what is known about it. Only documents the form: the
/// handlers read it part by part as it arrives ([`UploadBody`]).
#[derive(Debug, Multipart)]
#[allow(dead_code)] // the schema of the form; never parsed into
pub struct UploadForm {
    /// The project to add it to (you must be a contributor or admin there). Send it
    /// before `file`, or as the `project_id` query parameter.
    pub project_id: Option<String>,
    /// The file. Its type is decided from its content, not its name or declared type.
    pub file: Upload,
    pub title: Option<String>,
    /// BCP 47 language tag, e.g. `sw` or `en-GB`.
    pub language: Option<String>,
    /// Your own id for the item, unique within the project.
    pub external_id: Option<String>,
    /// A JSON object (at most 16 KiB) kept with the item.
    pub metadata: Option<String>,
    /// Rework: the id of your item (sent back for changes, or not yet submitted) whose
    /// file this one replaces. The item keeps its id, history and earlier file; it is
    /// processed again, then you submit it again. The other fields are ignored.
    pub replaces: Option<String>,
    /// Ignored (Uppy's XHR upload sends the file's name with every file).
    pub name: Option<String>,
    /// Ignored (Uppy's XHR upload sends the file's declared type with every file).
    #[oai(rename = "type")]
    pub file_type: Option<String>,
    /// Ignored (Uppy's XHR upload sends it for files from a dropped folder).
    #[oai(rename = "relativePath")]
    pub relative_path: Option<String>,
}

/// An upload form, read part by part as it streams in (documented as [`UploadForm`]):
/// nothing of it is stored before the caller and the project are checked.
pub struct UploadBody(poem::web::Multipart);

impl Payload for UploadBody {
    const CONTENT_TYPE: &'static str = "multipart/form-data";

    fn check_content_type(content_type: &str) -> bool {
        <UploadForm as Payload>::check_content_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        <UploadForm as Payload>::schema_ref()
    }

    fn register(registry: &mut Registry) {
        <UploadForm as Payload>::register(registry);
    }
}

impl ParsePayload for UploadBody {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self(
            <poem::web::Multipart as poem::FromRequest>::from_request(request, body).await?,
        ))
    }
}

crate::payload::payload_extractor!(UploadBody);

/// The engine's view of the form: its parts, one after another.
impl UploadFormParts for UploadBody {
    type Body = std::pin::Pin<Box<dyn tokio::io::AsyncRead + Send>>;

    async fn next_part(
        &mut self,
    ) -> Result<Option<FormPart<Self::Body>>, alta_actors::EngineError> {
        let field =
            self.0
                .next_field()
                .await
                .map_err(|err| alta_actors::EngineError::Validation {
                    code: ErrorCode::InvalidBody,
                    field: None,
                    message: format!("the body is not a well-formed multipart form: {err}"),
                })?;
        Ok(field.map(|field| FormPart {
            name: field.name().unwrap_or_default().to_owned(),
            file_name: field.file_name().map(str::to_owned),
            content_type: field.content_type().map(str::to_owned),
            body: Box::pin(field.into_async_read()) as Self::Body,
        }))
    }
}

/// Audio measured at upload.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AudioAnalysisResponse {
    pub codec: String,
    pub sample_rate: u32,
    pub channels: u16,
    pub duration_seconds: f64,
    /// False when there is no decoder for the codec here: levels are then absent.
    pub decoded: bool,
    pub peak_dbfs: Option<f64>,
    pub rms_dbfs: Option<f64>,
    /// Fraction of samples at full scale.
    pub clipping_ratio: Option<f64>,
    pub leading_silence_seconds: Option<f64>,
    pub trailing_silence_seconds: Option<f64>,
}

impl From<AudioAnalysis> for AudioAnalysisResponse {
    fn from(a: AudioAnalysis) -> Self {
        Self {
            codec: a.codec,
            sample_rate: a.sample_rate,
            channels: a.channels,
            duration_seconds: a.duration_seconds,
            decoded: a.decoded,
            peak_dbfs: a.peak_dbfs,
            rms_dbfs: a.rms_dbfs,
            clipping_ratio: a.clipping_ratio,
            leading_silence_seconds: a.leading_silence_seconds,
            trailing_silence_seconds: a.trailing_silence_seconds,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ItemResponse {
    pub id: Uuid,
    pub project_id: Uuid,
    pub kind: Wire<DataKindDto>,
    pub contributor_id: Uuid,
    pub status: Wire<ItemStatus>,
    pub title: Option<String>,
    pub language: Option<String>,
    pub external_id: Option<String>,
    pub metadata: serde_json::Value,
    /// The client's file name, cleaned (used to name downloads).
    pub file_name: String,
    /// The type decided from the content.
    pub detected_type: Wire<DetectedType>,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub audio: Option<AudioAnalysisResponse>,
    /// The latest processing job (`GET /api/jobs/{id}` for more).
    pub job_id: Option<Uuid>,
    /// Its state, in reads of items (absent in the answer to an upload).
    pub job: Option<JobSummaryResponse>,
    /// Why there is no text (`processing_failed`): e.g. `no_text_layer`,
    /// `no_ocr_engine`, `no_transcription_engine`, `processing_gave_up`.
    pub processing_error_code: Option<String>,
    pub processing_error: Option<String>,
    /// Rework rounds used so far (a changes-requested verdict starts the next).
    pub review_round: i32,
    /// When the current review round began.
    pub submitted_at: Option<DateTime<Utc>>,
    /// When review reached `approved` or `rejected`.
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<ItemView> for ItemResponse {
    fn from(i: ItemView) -> Self {
        Self {
            id: i.id,
            project_id: i.project_id,
            kind: Wire::new(i.kind.as_str()),
            contributor_id: i.contributor_id,
            status: Wire::new(i.status.as_str()),
            title: i.title,
            language: i.language,
            external_id: i.external_id,
            metadata: i.metadata,
            file_name: i.file_name,
            detected_type: Wire::new(i.detected_type),
            content_type: i.content_type,
            size_bytes: i.size_bytes,
            sha256: i.sha256,
            audio: i.audio.map(Into::into),
            job_id: i.job_id,
            job: i.job.map(|j| JobSummaryResponse {
                id: j.id,
                kind: Wire::new(j.kind),
                state: Wire::new(j.state.as_str()),
                attempts: j.attempts,
                last_error: j.last_error,
            }),
            processing_error_code: i.processing_error_code,
            processing_error: i.processing_error,
            review_round: i.review_round,
            submitted_at: i.submitted_at,
            decided_at: i.decided_at,
            created_at: i.created_at,
            updated_at: i.updated_at,
        }
    }
}

/// Where an item's latest processing job is.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct JobSummaryResponse {
    pub id: Uuid,
    pub kind: Wire<JobKind>,
    pub state: Wire<JobState>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ItemPage {
    pub items: Vec<ItemResponse>,
    pub next_cursor: Option<String>,
}

#[derive(ApiResponse)]
pub enum ItemCreated {
    /// Stored; processing follows. `Idempotent-Replayed: true` on a replay.
    #[oai(status = 201)]
    Created(
        Json<ItemResponse>,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

#[derive(ApiResponse)]
pub enum ItemOk {
    #[oai(status = 200)]
    Ok(Json<ItemResponse>),
}

/// A person's text for an item.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct TextInput {
    /// The whole text (at most 2 MiB), replacing the current one as a new revision.
    pub text: String,
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct TextRevisionResponse {
    pub revision: i32,
    pub source: Wire<TextSource>,
    /// The engine, for machine output: `plain_text`, `pdf_text_layer`, `docx`, `tesseract`.
    pub engine: Option<String>,
    /// Who wrote it, for a human revision.
    pub author_id: Option<Uuid>,
    pub text: String,
    /// Text per page (documents).
    pub pages: Option<Vec<String>>,
    /// Word timings and confidences (transcripts from an engine).
    pub words: Option<serde_json::Value>,
    pub confidence: Option<f64>,
    pub created_at: DateTime<Utc>,
}

impl From<TextRevision> for TextRevisionResponse {
    fn from(r: TextRevision) -> Self {
        Self {
            revision: r.revision,
            source: Wire::new(r.source),
            engine: r.engine,
            author_id: r.author_id,
            text: r.text,
            pages: r.pages,
            words: r.words,
            confidence: r.confidence,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ItemTextResponse {
    pub item: ItemResponse,
    /// The newest revision; absent while there is no text (see the item's `status` and
    /// `processing_error_code`).
    pub current: Option<TextRevisionResponse>,
    pub revisions: Vec<TextRevisionResponse>,
}

impl From<ItemText> for ItemTextResponse {
    fn from(t: ItemText) -> Self {
        Self {
            item: t.item.into(),
            current: t.current.map(Into::into),
            revisions: t.revisions.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(ApiResponse)]
pub enum ItemTextOk {
    #[oai(status = 200)]
    Ok(Json<ItemTextResponse>),
}

#[derive(ApiResponse)]
pub enum ItemAccepted {
    /// Queued for processing again.
    #[oai(status = 202)]
    Accepted(Json<ItemResponse>),
}

#[derive(ApiResponse)]
pub enum ItemPageOk {
    #[oai(status = 200)]
    Ok(Json<ItemPage>),
}

#[derive(ApiResponse)]
pub enum ItemDeleted {
    /// Deleted (soft).
    #[oai(status = 204)]
    NoContent,
}

fn parse_project_id(raw: &str) -> Result<Uuid, alta_actors::EngineError> {
    Uuid::parse_str(raw.trim()).map_err(|_| {
        alta_actors::EngineError::validation(
            ErrorCode::InvalidProjectId,
            "project_id",
            "project_id must be a UUID",
        )
    })
}

async fn upload(
    engine: &Engine,
    ctx: &RequestContext,
    auth: &BearerAuth,
    project_id: Option<String>,
    form: UploadBody,
    key: Option<String>,
    kind: DataKind,
) -> ApiResult<ItemCreated> {
    let project_id = project_id.as_deref().map(parse_project_id).transpose()?;
    let outcome = engine
        .items()
        .upload_form(&auth.0, kind, project_id, form, key.as_deref(), ctx)
        .await?;
    let replayed = matches!(outcome, Idempotent::Replayed(_)).then(|| "true".to_owned());
    Ok(ItemCreated::Created(
        Json(outcome.into_inner().into()),
        replayed,
    ))
}

#[allow(clippy::too_many_arguments)]
async fn list(
    engine: &Engine,
    auth: &BearerAuth,
    kind: DataKind,
    project_id: Option<Uuid>,
    status: Option<alta_actors::domain::ItemStatus>,
    contributor_id: Option<Uuid>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<u32>,
    cursor: Option<String>,
    labels: Vec<String>,
) -> ApiResult<ItemPageOk> {
    let query = ItemListQuery {
        project_id,
        status,
        labels,
        contributor_id,
        from,
        to,
        limit,
        cursor,
    };
    let page = engine.items().items(&auth.0, kind, query).await?;
    Ok(ItemPageOk::Ok(Json(ItemPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })))
}

async fn content(
    engine: &Engine,
    auth: &BearerAuth,
    kind: DataKind,
    id: Uuid,
    range: Option<String>,
) -> ApiResult<ContentResponse> {
    let (item, len) = engine.items().item_content(&auth.0, kind, id).await?;
    let disposition = content_disposition(&download_name(&item.file_name, &item.detected_type));
    let content_type = item.content_type.clone();
    ranged(
        len,
        range.as_deref(),
        disposition,
        |start, end| {
            let (item, content_type) = (&item, content_type.clone());
            async move {
                let stream = engine.items().item_content_range(item, start, end).await?;
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
}

macro_rules! item_api {
    (
        $api:ident, $kind:expr,
        paths: $base:literal, $one:literal, $file:literal, $text_path:literal, $reprocess_path:literal,
        ids: $upload:literal, $list:literal, $get:literal, $content:literal, $delete:literal,
            $text:literal, $edit:literal, $reprocess:literal,
        docs: $upload_doc:literal, $list_doc:literal, $get_doc:literal, $content_doc:literal, $delete_doc:literal,
            $text_doc:literal, $edit_doc:literal, $reprocess_doc:literal
    ) => {
        pub struct $api;

        #[OpenApi(tag = "ApiTags::Data")]
        impl $api {
            #[doc = $upload_doc]
            ///
            /// Multipart form, read as it arrives: `project_id` (first, or in the query
            /// string) is checked before any byte of the file is stored (400
            /// `project_id_first` for a file before it). The file streams into the blob
            /// store (never held in memory), is hashed and typed from its bytes; the
            /// same content twice in one project is 409 `duplicate_content`. Honours
            /// `Idempotency-Key`. When the server is busy, uploads wait a few seconds
            /// for a turn, then get 503 with `Retry-After`.
            #[oai(path = $base, method = "post", operation_id = $upload)]
            async fn upload(
                &self,
                engine: Data<&Engine>,
                ctx: Data<&RequestContext>,
                auth: BearerAuth,
                #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
                /// The project, when not sent as the form's first field.
                #[oai(name = "project_id")]
                project_id: Query<Option<String>>,
                form: UploadBody,
            ) -> ApiResult<ItemCreated> {
                upload(
                    &engine,
                    &ctx,
                    &auth,
                    project_id.0,
                    form,
                    idempotency_key.0,
                    $kind,
                )
                .await
            }

            #[doc = $list_doc]
            ///
            /// Contributors see their own; reviewers and admins see everyone's. Filters:
            /// `status`, `contributor_id`, `from`/`to` (creation time), `label=field:value`
            /// (repeatable; read from an index of the current labels). `project_id` is
            /// required.
            #[oai(path = $base, method = "get", operation_id = $list)]
            #[allow(clippy::too_many_arguments)]
            async fn list(
                &self,
                engine: Data<&Engine>,
                auth: BearerAuth,
                project_id: Query<Required<Uuid>>,
                status: Query<Option<ItemStatus>>,
                contributor_id: Query<Option<Uuid>>,
                from: Query<Option<DateTime<Utc>>>,
                to: Query<Option<DateTime<Utc>>>,
                #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<
                    Option<u32>,
                >,
                #[oai(validator(max_length = 64))] cursor: Query<Option<String>>,
                /// `field:value`, repeatable (all must hold): items whose current labels
                /// include it (label and multi_label fields; at most 10).
                label: Query<Option<Vec<String>>>,
            ) -> ApiResult<ItemPageOk> {
                list(
                    &engine,
                    &auth,
                    $kind,
                    project_id.0.0,
                    status.0.map(Into::into),
                    contributor_id.0,
                    from.0,
                    to.0,
                    limit.0,
                    cursor.0,
                    label.0.unwrap_or_default(),
                )
                .await
            }

            #[doc = $get_doc]
            #[oai(path = $one, method = "get", operation_id = $get)]
            async fn get(
                &self,
                engine: Data<&Engine>,
                auth: BearerAuth,
                id: Path<Uuid>,
            ) -> ApiResult<ItemOk> {
                Ok(ItemOk::Ok(Json(
                    engine
                        .items()
                        .item_detail(&auth.0, $kind, id.0)
                        .await?
                        .into(),
                )))
            }

            #[doc = $content_doc]
            #[oai(path = $file, method = "get", operation_id = $content)]
            async fn content(
                &self,
                engine: Data<&Engine>,
                auth: BearerAuth,
                id: Path<Uuid>,
                #[oai(name = "Range")] range: Header<Option<String>>,
            ) -> ApiResult<ContentResponse> {
                content(&engine, &auth, $kind, id.0, range.0).await
            }

            #[doc = $delete_doc]
            #[oai(path = $one, method = "delete", operation_id = $delete)]
            async fn delete(
                &self,
                engine: Data<&Engine>,
                ctx: Data<&RequestContext>,
                auth: BearerAuth,
                id: Path<Uuid>,
            ) -> ApiResult<ItemDeleted> {
                engine
                    .items()
                    .delete_item(&auth.0, $kind, id.0, &ctx)
                    .await?;
                Ok(ItemDeleted::NoContent)
            }

            #[doc = $text_doc]
            ///
            /// `current` is the newest revision; `revisions` holds the machine's output and
            /// every correction after it (who, when), oldest first.
            #[oai(path = $text_path, method = "get", operation_id = $text)]
            async fn text(
                &self,
                engine: Data<&Engine>,
                auth: BearerAuth,
                id: Path<Uuid>,
            ) -> ApiResult<ItemTextOk> {
                let text = engine.items().item_text(&auth.0, $kind, id.0).await?;
                Ok(ItemTextOk::Ok(Json(text.into())))
            }

            #[doc = $edit_doc]
            ///
            /// Its uploader or a project admin, once processing has ended (409
            /// `item_processing` before). Adds a revision; earlier ones stay. The item
            /// becomes `ready`.
            #[oai(path = $text_path, method = "put", operation_id = $edit)]
            async fn edit_text(
                &self,
                engine: Data<&Engine>,
                ctx: Data<&RequestContext>,
                auth: BearerAuth,
                id: Path<Uuid>,
                body: JsonBody<TextInput>,
            ) -> ApiResult<ItemTextOk> {
                let text = engine
                    .items()
                    .edit_item_text(&auth.0, $kind, id.0, body.0.text, &ctx)
                    .await?;
                Ok(ItemTextOk::Ok(Json(text.into())))
            }

            #[doc = $reprocess_doc]
            ///
            /// Project admins, once processing has ended (409 `item_processing` before).
            /// The item goes back to `uploaded` with a new job.
            #[oai(path = $reprocess_path, method = "post", operation_id = $reprocess)]
            async fn reprocess(
                &self,
                engine: Data<&Engine>,
                ctx: Data<&RequestContext>,
                auth: BearerAuth,
                id: Path<Uuid>,
            ) -> ApiResult<ItemAccepted> {
                let item = engine
                    .items()
                    .reprocess_item(&auth.0, $kind, id.0, &ctx)
                    .await?;
                Ok(ItemAccepted::Accepted(Json(item.into())))
            }
        }
    };
}

item_api!(
    DocumentsApi, DataKind::Document,
    paths: "/api/documents", "/api/documents/:id", "/api/documents/:id/content",
        "/api/documents/:id/text", "/api/documents/:id/reprocess",
    ids: "document_upload", "document_list", "document_get", "document_content", "document_delete",
        "document_text", "document_edit_text", "document_reprocess",
    docs: "Upload a document", "List a project's documents", "Get a document",
        "Download a document's file (supports Range)", "Delete a document (its contributor or a project admin; soft)",
        "A document's text (OCR output and corrections)", "Correct a document's text",
        "Extract a document's text again"
);
item_api!(
    VoiceApi, DataKind::Audio,
    paths: "/api/voice", "/api/voice/:id", "/api/voice/:id/content",
        "/api/voice/:id/transcript", "/api/voice/:id/reprocess",
    ids: "voice_upload", "voice_list", "voice_get", "voice_content", "voice_delete",
        "voice_transcript", "voice_edit_transcript", "voice_reprocess",
    docs: "Upload a recording", "List a project's recordings", "Get a recording",
        "Download a recording (supports Range, so long audio can be seeked)",
        "Delete a recording (its contributor or a project admin; soft)",
        "A recording's transcript", "Write or correct a recording's transcript",
        "Transcribe a recording again"
);
