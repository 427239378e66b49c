//! Labelling: a project's versioned label schema, and each document's or recording's
//! annotation (revisions, `ETag`/`If-Match` against lost updates) and the machine's
//! suggestions for it.

use std::collections::BTreeMap;

use alta_actors::{
    Engine,
    context::RequestContext,
    domain::{
        DataKind,
        labels::{FieldInput, FieldType, LabelField},
    },
    labels::{Acceptance, AnnotationView, LabelSchemaView, NewSuggestion, SuggestionView},
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Enum, Object, OpenApi,
    param::{Header, Path, Query},
    payload::Json,
};
use serde_json::Value;
use uuid::Uuid;

use crate::{json_body::JsonBody, problem::ApiResult, security::BearerAuth, tags::ApiTags};

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum LabelFieldType {
    /// One of `options`.
    Label,
    /// A subset of `options`, `min` to `max` of them.
    MultiLabel,
    /// An integer from `min` to `max`.
    Rating,
    /// Free text of at most `max_length` characters.
    Text,
    /// Documents: `[{start, end, label}]`, `[start, end)` in Unicode code points of the
    /// current text, `label` one of `options`.
    Spans,
    /// Recordings: `[{start_ms, end_ms, label, text?, speaker?}]` within the recording.
    Segments,
}

impl From<LabelFieldType> for FieldType {
    fn from(t: LabelFieldType) -> Self {
        match t {
            LabelFieldType::Label => Self::Label,
            LabelFieldType::MultiLabel => Self::MultiLabel,
            LabelFieldType::Rating => Self::Rating,
            LabelFieldType::Text => Self::Text,
            LabelFieldType::Spans => Self::Spans,
            LabelFieldType::Segments => Self::Segments,
        }
    }
}

impl From<FieldType> for LabelFieldType {
    fn from(t: FieldType) -> Self {
        match t {
            FieldType::Label => Self::Label,
            FieldType::MultiLabel => Self::MultiLabel,
            FieldType::Rating => Self::Rating,
            FieldType::Text => Self::Text,
            FieldType::Spans => Self::Spans,
            FieldType::Segments => Self::Segments,
        }
    }
}

/// A field of a label schema. Answers show every default filled in.
#[derive(Debug, Clone, Object)]
#[oai(skip_serializing_if_is_none, deny_unknown_fields)]
pub struct LabelFieldBody {
    /// `^[a-z][a-z0-9_]{0,63}$`, unique in the schema: the key in annotation values.
    pub name: String,
    /// What annotators see (default: the name).
    #[oai(validator(max_length = 200))]
    pub title: Option<String>,
    #[oai(rename = "type")]
    pub kind: LabelFieldType,
    /// Submission for review needs it set (default false).
    pub required: Option<bool>,
    /// The choices (label, multi_label) or the range labels (spans, segments).
    #[oai(validator(max_items = 200))]
    pub options: Option<Vec<String>>,
    /// rating: the lowest value; multi_label: the fewest choices.
    #[oai(validator(minimum(value = "-1000000"), maximum(value = "1000000")))]
    pub min: Option<i64>,
    /// rating: the highest value; multi_label: the most choices.
    #[oai(validator(minimum(value = "-1000000"), maximum(value = "1000000")))]
    pub max: Option<i64>,
    /// text: the most characters (default 10,000).
    #[oai(validator(minimum(value = "1"), maximum(value = "100000")))]
    pub max_length: Option<u32>,
    /// spans, segments: whether ranges may overlap (default false).
    pub allow_overlap: Option<bool>,
}

impl From<LabelFieldBody> for FieldInput {
    fn from(f: LabelFieldBody) -> Self {
        Self {
            name: f.name,
            title: f.title,
            kind: Some(f.kind.into()),
            required: f.required,
            options: f.options,
            min: f.min,
            max: f.max,
            max_length: f.max_length,
            allow_overlap: f.allow_overlap,
        }
    }
}

impl From<LabelField> for LabelFieldBody {
    fn from(f: LabelField) -> Self {
        Self {
            name: f.name,
            title: Some(f.title),
            kind: f.kind.into(),
            required: Some(f.required),
            options: f.options,
            min: f.min,
            max: f.max,
            max_length: f.max_length,
            allow_overlap: f.allow_overlap,
        }
    }
}

/// A label schema as sent.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct LabelSchemaInput {
    #[oai(validator(max_items = 50))]
    pub fields: Vec<LabelFieldBody>,
}

/// A version of a project's label schema.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct LabelSchemaResponse {
    pub project_id: Uuid,
    /// 1, 2, 3, …; 0 while the project has none.
    pub version: i32,
    pub fields: Vec<LabelFieldBody>,
    pub created_by: Option<Uuid>,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<LabelSchemaView> for LabelSchemaResponse {
    fn from(s: LabelSchemaView) -> Self {
        Self {
            project_id: s.project_id,
            version: s.version,
            fields: s.fields.into_iter().map(Into::into).collect(),
            created_by: s.created_by,
            created_at: s.created_at,
        }
    }
}

/// An item's annotation as sent: a value per field (`null` unsets one).
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AnnotationInput {
    pub values: BTreeMap<String, Value>,
}

/// A revision of an item's annotation.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct AnnotationResponse {
    pub item_id: Uuid,
    /// 1, 2, 3, …; 0 while the item has none.
    pub revision: i32,
    /// The schema version the values were checked against.
    pub schema_version: Option<i32>,
    pub values: BTreeMap<String, Value>,
    /// Spans whose words changed since they were made (JSON pointers into `values`);
    /// each is marked `stale: true` there. Fix them (send them again with offsets in
    /// the current text) before submitting.
    pub stale_spans: Vec<String>,
    pub author_id: Option<Uuid>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<AnnotationView> for AnnotationResponse {
    fn from(a: AnnotationView) -> Self {
        Self {
            stale_spans: a.stale_spans,
            item_id: a.item_id,
            revision: a.revision,
            schema_version: a.schema_version,
            values: a.values,
            author_id: a.author_id,
            updated_at: a.updated_at,
        }
    }
}

/// One item of a bulk annotation.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct BulkAnnotationItem {
    pub item_id: Uuid,
    pub values: BTreeMap<String, Value>,
}

/// Up to 1,000 items' annotations, written all or nothing.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct BulkAnnotationInput {
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub items: Vec<BulkAnnotationItem>,
}

/// The new revision of each item, in the order sent.
#[derive(Debug, Object)]
pub struct BulkAnnotationResponse {
    pub annotations: Vec<AnnotationResponse>,
}

#[derive(ApiResponse)]
pub enum BulkAnnotationOk {
    /// Written. `Idempotent-Replayed: true` when this is the stored answer to an earlier
    /// request with the same `Idempotency-Key`.
    #[oai(status = 200)]
    Ok(
        Json<BulkAnnotationResponse>,
        #[oai(header = "Idempotent-Replayed")] Option<String>,
    ),
}

/// One revision of an item's annotation.
#[derive(Debug, Object)]
pub struct AnnotationRevisionResponse {
    pub revision: i32,
    pub schema_version: i32,
    pub values: BTreeMap<String, Value>,
    pub author_id: Uuid,
    pub created_at: DateTime<Utc>,
}

/// Every revision of an item's annotation, oldest first.
#[derive(Debug, Object)]
pub struct AnnotationRevisionsResponse {
    pub revisions: Vec<AnnotationRevisionResponse>,
}

/// Machine values for an item's annotation, as a source posts them.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct SuggestionInput {
    /// What made them (a pipeline's model): `^[a-z0-9][a-z0-9_.:-]{0,63}$`, not
    /// `transcription`. A second post from the same source replaces the first.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub source: String,
    /// The source's confidence, 0 to 1.
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    pub score: Option<f64>,
    /// A value per field, as in an annotation.
    pub values: BTreeMap<String, Value>,
}

/// Machine values for an item's annotation, kept apart from the human ones.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SuggestionResponse {
    /// What made them: a pipeline's name, or `transcription` (the word timings).
    pub source: String,
    /// The source's confidence, 0 to 1.
    pub score: Option<f64>,
    /// The schema version the values were checked against.
    pub schema_version: i32,
    pub values: BTreeMap<String, Value>,
    /// The text revision suggested spans count in (documents).
    pub text_revision: Option<i32>,
    /// Who posted them (absent for `transcription`).
    pub author_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl From<SuggestionView> for SuggestionResponse {
    fn from(s: SuggestionView) -> Self {
        Self {
            source: s.source,
            score: s.score,
            schema_version: s.schema_version,
            values: s.values,
            text_revision: s.text_revision,
            author_id: s.author_id,
            created_at: s.created_at,
        }
    }
}

/// An item's suggestions, by source.
#[derive(Debug, Object)]
pub struct SuggestionsResponse {
    pub suggestions: Vec<SuggestionResponse>,
}

/// Which suggestion to accept, and which of its fields.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct AcceptSuggestionInput {
    #[oai(validator(min_length = 1, max_length = 64))]
    pub source: String,
    /// The fields to take from it (default: every field it has).
    #[oai(validator(min_items = 1, max_items = 50))]
    pub fields: Option<Vec<String>>,
}

#[derive(ApiResponse)]
pub enum SuggestionsOk {
    #[oai(status = 200)]
    Ok(Json<SuggestionsResponse>),
}

#[derive(ApiResponse)]
pub enum SuggestionOk {
    /// Stored (replacing the source's earlier suggestion).
    #[oai(status = 200)]
    Ok(Json<SuggestionResponse>),
}

fn etag(n: i32) -> String {
    format!("\"{n}\"")
}

#[derive(ApiResponse)]
pub enum LabelSchemaOk {
    /// The schema; `ETag` is its version.
    #[oai(status = 200)]
    Ok(Json<LabelSchemaResponse>, #[oai(header = "ETag")] String),
}

impl From<LabelSchemaView> for LabelSchemaOk {
    fn from(s: LabelSchemaView) -> Self {
        let tag = etag(s.version);
        Self::Ok(Json(s.into()), tag)
    }
}

#[derive(ApiResponse)]
pub enum AnnotationOk {
    /// The annotation; `ETag` is its revision (send it as `If-Match` with a change).
    #[oai(status = 200)]
    Ok(Json<AnnotationResponse>, #[oai(header = "ETag")] String),
}

impl From<AnnotationView> for AnnotationOk {
    fn from(a: AnnotationView) -> Self {
        let tag = etag(a.revision);
        Self::Ok(Json(a.into()), tag)
    }
}

#[derive(ApiResponse)]
pub enum AnnotationRevisionsOk {
    #[oai(status = 200)]
    Ok(Json<AnnotationRevisionsResponse>),
}

pub struct LabelsApi;

#[OpenApi(tag = "ApiTags::Labels")]
impl LabelsApi {
    /// A project's label schema
    ///
    /// Any member. `version` reads an earlier version (404 when there is none); without
    /// it, the current one (version 0 with no fields while none is set).
    #[oai(
        path = "/api/projects/:project_id/label-schema",
        method = "get",
        operation_id = "label_schema_get"
    )]
    async fn schema(
        &self,
        engine: Data<&Engine>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        #[oai(validator(minimum(value = "1"), maximum(value = "1000000000")))] version: Query<
            Option<i32>,
        >,
    ) -> ApiResult<LabelSchemaOk> {
        Ok(engine
            .labels()
            .label_schema(&auth.0, project_id.0, version.0)
            .await?
            .into())
    }

    /// Set a project's label schema
    ///
    /// Project admins. Each change is a new version; earlier ones stay readable. The
    /// same fields as now change nothing. Adding fields or options is always allowed;
    /// removing a field or an option that annotations use is 409 `schema_in_use`
    /// (with counts) unless `force=true`, which keeps those annotations on their
    /// version. A schema that breaks a rule is 422 `invalid_label_schema` with `field`
    /// pointing at the part at fault (`/fields/1/options`).
    #[oai(
        path = "/api/projects/:project_id/label-schema",
        method = "put",
        operation_id = "label_schema_put"
    )]
    async fn put_schema(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        force: Query<Option<bool>>,
        body: JsonBody<LabelSchemaInput>,
    ) -> ApiResult<LabelSchemaOk> {
        let fields = body.0.fields.into_iter().map(Into::into).collect();
        Ok(engine
            .labels()
            .put_label_schema(
                &auth.0,
                project_id.0,
                fields,
                force.0.unwrap_or(false),
                &ctx,
            )
            .await?
            .into())
    }

    /// Annotate many items at once
    ///
    /// For pipelines: up to 1,000 `{item_id, values}` of the project (documents and
    /// recordings), each checked as `PUT …/annotation` would check it, written all or
    /// nothing (a fault anywhere refuses the lot, `field` pointing into the request:
    /// `/items/3/values/stars`). Contributors for their own items, project admins for
    /// any; reviewers 403. Honours `Idempotency-Key`.
    #[oai(
        path = "/api/projects/:project_id/annotations",
        method = "put",
        operation_id = "annotations_bulk_put"
    )]
    async fn put_many(
        &self,
        engine: Data<&Engine>,
        ctx: Data<&RequestContext>,
        auth: BearerAuth,
        project_id: Path<Uuid>,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<BulkAnnotationInput>,
    ) -> ApiResult<BulkAnnotationOk> {
        let items = body
            .0
            .items
            .into_iter()
            .map(|i| (i.item_id, i.values))
            .collect();
        let outcome = engine
            .labels()
            .put_annotations(
                &auth.0,
                project_id.0,
                items,
                idempotency_key.0.as_deref(),
                &ctx,
            )
            .await?;
        let replayed = outcome.replayed().then(|| "true".to_owned());
        let annotations = outcome.into_inner().into_iter().map(Into::into).collect();
        Ok(BulkAnnotationOk::Ok(
            Json(BulkAnnotationResponse { annotations }),
            replayed,
        ))
    }
}

/// The annotation routes of one kind of item (`/api/documents/:id/annotation…`,
/// `/api/voice/:id/annotation…`): the same operations, their own paths and ids.
macro_rules! annotation_api {
    (
        $api:ident, $kind:expr,
        paths: $one:literal, $revisions_path:literal, $suggestions_path:literal, $accept_path:literal,
        ids: $get:literal, $put:literal, $revisions:literal, $suggestions:literal,
            $suggest:literal, $accept:literal,
        docs: $get_doc:literal, $put_doc:literal, $revisions_doc:literal, $suggestions_doc:literal,
            $suggest_doc:literal, $accept_doc:literal
    ) => {
        pub struct $api;

        #[OpenApi(tag = "ApiTags::Labels")]
        impl $api {
            #[doc = $get_doc]
            #[oai(path = $one, method = "get", operation_id = $get)]
            async fn annotation(
                &self,
                engine: Data<&Engine>,
                auth: BearerAuth,
                id: Path<Uuid>,
            ) -> ApiResult<AnnotationOk> {
                Ok(engine
                    .labels()
                    .annotation(&auth.0, $kind, id.0)
                    .await?
                    .into())
            }

            #[doc = $put_doc]
            ///
            /// Its contributor or a project admin, while it is `ready` (or failed, or sent
            /// back for changes; 409 `item_in_review` or `item_processing` otherwise): a
            /// new revision, checked against the current schema (422
            /// `invalid_annotation` with `field`, e.g. `/values/entities/3/end`). Spans
            /// count Unicode code points of the current text; segments are
            /// `[start_ms, end_ms)` within the recording. `If-Match` with the `ETag`
            /// read guards against lost updates (412 `precondition_failed`).
            #[oai(path = $one, method = "put", operation_id = $put)]
            async fn put_annotation(
                &self,
                engine: Data<&Engine>,
                ctx: Data<&RequestContext>,
                auth: BearerAuth,
                id: Path<Uuid>,
                #[oai(name = "If-Match")] if_match: Header<Option<String>>,
                body: JsonBody<AnnotationInput>,
            ) -> ApiResult<AnnotationOk> {
                let view = engine
                    .labels()
                    .put_annotation(
                        &auth.0,
                        $kind,
                        id.0,
                        body.0.values,
                        if_match.0.as_deref(),
                        &ctx,
                    )
                    .await?;
                Ok(view.into())
            }

            #[doc = $revisions_doc]
            #[oai(path = $revisions_path, method = "get", operation_id = $revisions)]
            async fn revisions(
                &self,
                engine: Data<&Engine>,
                auth: BearerAuth,
                id: Path<Uuid>,
            ) -> ApiResult<AnnotationRevisionsOk> {
                revisions(&engine, &auth, $kind, id.0).await
            }

            #[doc = $suggestions_doc]
            ///
            /// Machine values kept apart from the human ones, one per source: what
            /// pipelines posted, and for a transcribed recording whose schema has
            /// `segments` fields, the source `transcription`: the transcript's words joined
            /// into segments (split at pauses of a second, at most 30 s long), labelled
            /// with the field's first option, scored with the engine's confidence.
            #[oai(path = $suggestions_path, method = "get", operation_id = $suggestions)]
            async fn suggestions(
                &self,
                engine: Data<&Engine>,
                auth: BearerAuth,
                id: Path<Uuid>,
            ) -> ApiResult<SuggestionsOk> {
                let suggestions = engine.labels().suggestions(&auth.0, $kind, id.0).await?;
                let suggestions = suggestions.into_iter().map(Into::into).collect();
                Ok(SuggestionsOk::Ok(Json(SuggestionsResponse { suggestions })))
            }

            #[doc = $suggest_doc]
            ///
            /// For pipelines (an API token): values checked as for the annotation (422
            /// `invalid_annotation` with `field`; no field is required), replacing what
            /// the same `source` suggested before. Who and when as for the annotation.
            /// The human values do not change until someone accepts the suggestion.
            #[oai(path = $suggestions_path, method = "put", operation_id = $suggest)]
            async fn put_suggestion(
                &self,
                engine: Data<&Engine>,
                ctx: Data<&RequestContext>,
                auth: BearerAuth,
                id: Path<Uuid>,
                body: JsonBody<SuggestionInput>,
            ) -> ApiResult<SuggestionOk> {
                let body = body.0;
                let suggestion = NewSuggestion {
                    source: body.source,
                    score: body.score,
                    values: body.values,
                };
                let view = engine
                    .labels()
                    .put_suggestion(&auth.0, $kind, id.0, suggestion, &ctx)
                    .await?;
                Ok(SuggestionOk::Ok(Json(view.into())))
            }

            #[doc = $accept_doc]
            ///
            /// A new revision of the annotation by the caller, with the suggestion's
            /// values (all its fields, or those in `fields`) in place of the current ones,
            /// checked against the current schema. Who, when and `If-Match` as for
            /// `PUT …/annotation`. 404 when the source suggested nothing; 409
            /// `suggestion_stale` when suggested spans were made on an earlier text.
            #[oai(path = $accept_path, method = "post", operation_id = $accept)]
            async fn accept_suggestion(
                &self,
                engine: Data<&Engine>,
                ctx: Data<&RequestContext>,
                auth: BearerAuth,
                id: Path<Uuid>,
                #[oai(name = "If-Match")] if_match: Header<Option<String>>,
                body: JsonBody<AcceptSuggestionInput>,
            ) -> ApiResult<AnnotationOk> {
                let acceptance = Acceptance {
                    source: body.0.source,
                    fields: body.0.fields,
                };
                let view = engine
                    .labels()
                    .accept_suggestion(
                        &auth.0,
                        $kind,
                        id.0,
                        acceptance,
                        if_match.0.as_deref(),
                        &ctx,
                    )
                    .await?;
                Ok(view.into())
            }
        }
    };
}

annotation_api!(
    DocumentAnnotationsApi, DataKind::Document,
    paths: "/api/documents/:id/annotation", "/api/documents/:id/annotation/revisions",
        "/api/documents/:id/annotation/suggestions", "/api/documents/:id/annotation/suggestions/accept",
    ids: "document_annotation_get", "document_annotation_put", "document_annotation_revisions",
        "document_annotation_suggestions", "document_annotation_suggestion_put",
        "document_annotation_suggestion_accept",
    docs: "A document's annotation", "Label a document",
        "Every revision of a document's annotation", "A document's label suggestions",
        "Suggest labels for a document", "Accept suggested labels for a document"
);
annotation_api!(
    VoiceAnnotationsApi, DataKind::Audio,
    paths: "/api/voice/:id/annotation", "/api/voice/:id/annotation/revisions",
        "/api/voice/:id/annotation/suggestions", "/api/voice/:id/annotation/suggestions/accept",
    ids: "voice_annotation_get", "voice_annotation_put", "voice_annotation_revisions",
        "voice_annotation_suggestions", "voice_annotation_suggestion_put",
        "voice_annotation_suggestion_accept",
    docs: "A recording's annotation", "Label a recording",
        "Every revision of a recording's annotation", "A recording's label suggestions",
        "Suggest labels for a recording", "Accept suggested labels for a recording"
);

async fn revisions(
    engine: &Engine,
    auth: &BearerAuth,
    kind: DataKind,
    id: Uuid,
) -> ApiResult<AnnotationRevisionsOk> {
    let revisions = engine
        .labels()
        .annotation_revisions(&auth.0, kind, id)
        .await?;
    let revisions = revisions
        .into_iter()
        .map(|r| AnnotationRevisionResponse {
            revision: r.revision,
            schema_version: r.schema_version.unwrap_or_default(),
            values: r.values,
            author_id: r.author_id.unwrap_or_default(),
            created_at: r.updated_at.unwrap_or_default(),
        })
        .collect();
    Ok(AnnotationRevisionsOk::Ok(Json(
        AnnotationRevisionsResponse { revisions },
    )))
}
