//! The labelling part of the engine handle: reads go straight to the store after the
//! permission check; writes are the project actor's transitions.

use super::LabelService;
use crate::items::ItemService;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{AcceptSuggestion, BulkAnnotate, PutAnnotation, PutLabelSchema, PutSuggestion};
use crate::{
    authz::ProjectAction,
    command::settle,
    context::{Principal, RequestContext},
    domain::{
        DataKind,
        labels::{FieldInput, LabelField, carry, schema, suggest},
    },
    error::EngineError,
    idempotency::{Begin, Idempotent, fingerprint},
    store::{
        self,
        labels::{AnnotationRow, SchemaRow, SuggestionRow},
    },
};

/// Machine values for an item's annotation, kept apart from the human ones.
#[derive(Debug, Clone)]
pub struct SuggestionView {
    /// What made them: a pipeline's name, or `transcription` (the word timings).
    pub source: String,
    /// The source's confidence, 0 to 1.
    pub score: Option<f64>,
    pub schema_version: i32,
    pub values: BTreeMap<String, Value>,
    /// The text revision suggested spans count in (documents).
    pub text_revision: Option<i32>,
    /// Who posted them (none for the transcription's).
    pub author_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// A source's suggestion as posted.
#[derive(Debug, Clone)]
pub struct NewSuggestion {
    pub source: String,
    pub score: Option<f64>,
    pub values: BTreeMap<String, Value>,
}

/// Which suggestion to accept, and which of its fields (default: all it has).
#[derive(Debug, Clone)]
pub struct Acceptance {
    pub source: String,
    pub fields: Option<Vec<String>>,
}

impl From<SuggestionRow> for SuggestionView {
    fn from(r: SuggestionRow) -> Self {
        Self {
            source: r.source,
            score: r.score,
            schema_version: r.schema_version,
            values: r.label_values.0,
            text_revision: r.text_revision,
            author_id: Some(r.author_id),
            created_at: r.created_at,
        }
    }
}

/// A version of a project's label schema (version 0, no fields: none set yet).
#[derive(Debug, Clone)]
pub struct LabelSchemaView {
    pub project_id: Uuid,
    pub version: i32,
    pub fields: Vec<LabelField>,
    pub created_by: Option<Uuid>,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<SchemaRow> for LabelSchemaView {
    fn from(r: SchemaRow) -> Self {
        Self {
            project_id: r.project_id,
            version: r.version,
            fields: r.fields.0,
            created_by: Some(r.created_by),
            created_at: Some(r.created_at),
        }
    }
}

/// A revision of an item's annotation (revision 0, no values: never annotated).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AnnotationView {
    pub item_id: Uuid,
    pub revision: i32,
    pub schema_version: Option<i32>,
    pub values: BTreeMap<String, Value>,
    /// Spans whose words changed since they were made (`/values/entities/2`): to fix.
    pub stale_spans: Vec<String>,
    pub author_id: Option<Uuid>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<AnnotationRow> for AnnotationView {
    fn from(r: AnnotationRow) -> Self {
        Self {
            stale_spans: carry::stale_spans(&r.label_values.0),
            item_id: r.item_id,
            revision: r.revision,
            schema_version: Some(r.schema_version),
            values: r.label_values.0,
            author_id: Some(r.author_id),
            updated_at: Some(r.created_at),
        }
    }
}

/// Most items in one bulk annotation request.
pub const BULK_MAX: usize = 1000;

/// An `If-Match` header: the revision the writer read, or `*` (any revision there is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMatch {
    Any,
    Revision(i32),
    /// A tag this server never issued: matches nothing.
    Unknown,
}

impl IfMatch {
    /// `"3"`, `W/"3"`, `*`, or a list of them (the header matches when one does).
    pub fn parse(header: &str) -> Vec<IfMatch> {
        header
            .split(',')
            .map(str::trim)
            .map(|tag| {
                if tag == "*" {
                    return IfMatch::Any;
                }
                let tag = tag.strip_prefix("W/").unwrap_or(tag);
                tag.strip_prefix('"')
                    .and_then(|t| t.strip_suffix('"'))
                    .and_then(|t| t.parse().ok())
                    .map_or(IfMatch::Unknown, IfMatch::Revision)
            })
            .collect()
    }

    pub fn matches(&self, revision: i32) -> bool {
        match self {
            IfMatch::Any => revision > 0,
            IfMatch::Revision(r) => *r == revision,
            IfMatch::Unknown => false,
        }
    }
}

impl LabelService {
    /// The project's label schema, or version `version` of it (members).
    pub async fn label_schema(
        &self,
        principal: &Principal,
        project_id: Uuid,
        version: Option<i32>,
    ) -> Result<LabelSchemaView, EngineError> {
        self.check_project(principal, project_id, ProjectAction::View)
            .await?;
        let row = match version {
            Some(v) => Some(
                store::labels::schema_version(&self.deps.db, project_id, v)
                    .await?
                    .ok_or(EngineError::NotFound {
                        what: "label schema version",
                    })?,
            ),
            None => store::labels::current_schema(&self.deps.db, project_id).await?,
        };
        Ok(row.map_or(
            LabelSchemaView {
                project_id,
                version: 0,
                fields: Vec::new(),
                created_by: None,
                created_at: None,
            },
            Into::into,
        ))
    }

    /// Set the project's label schema (project admins): a new version.
    pub async fn put_label_schema(
        &self,
        principal: &Principal,
        project_id: Uuid,
        fields: Vec<FieldInput>,
        force: bool,
        ctx: &RequestContext,
    ) -> Result<LabelSchemaView, EngineError> {
        let fields = schema::normalise(fields)?;
        let put = PutLabelSchema { fields, force };
        let row = self
            .apply_in_project(project_id, principal, ctx, put)
            .await?;
        Ok(row.into())
    }

    /// An item's annotation, for whoever may see the item.
    pub async fn annotation(
        &self,
        principal: &Principal,
        kind: DataKind,
        item_id: Uuid,
    ) -> Result<AnnotationView, EngineError> {
        self.service::<ItemService>()
            .item(principal, kind, item_id)
            .await?;
        let row = store::labels::current_annotation(&self.deps.db, item_id).await?;
        Ok(row.map_or(
            AnnotationView {
                item_id,
                revision: 0,
                schema_version: None,
                values: BTreeMap::new(),
                stale_spans: Vec::new(),
                author_id: None,
                updated_at: None,
            },
            Into::into,
        ))
    }

    /// Every revision of an item's annotation, oldest first.
    pub async fn annotation_revisions(
        &self,
        principal: &Principal,
        kind: DataKind,
        item_id: Uuid,
    ) -> Result<Vec<AnnotationView>, EngineError> {
        self.service::<ItemService>()
            .item(principal, kind, item_id)
            .await?;
        let rows = store::labels::revisions(&self.deps.db, item_id).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Annotate up to [`BULK_MAX`] items of a project at once, all or nothing (for
    /// pipelines); honours `Idempotency-Key`.
    pub async fn put_annotations(
        &self,
        principal: &Principal,
        project_id: Uuid,
        items: Vec<(Uuid, BTreeMap<String, Value>)>,
        idempotency_key: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Idempotent<Vec<AnnotationView>>, EngineError> {
        if items.is_empty() || items.len() > BULK_MAX {
            return Err(EngineError::validation(
                crate::ErrorCode::InvalidAnnotation,
                "/items",
                format!("send 1 to {BULK_MAX} items"),
            ));
        }
        let print = fingerprint(&(project_id, &items))?;
        let route = "PUT /api/projects/{project_id}/annotations";
        let claim = match self
            .begin_idempotent(principal, route, idempotency_key, &print)
            .await?
        {
            Begin::Replay(views) => return Ok(Idempotent::Replayed(views)),
            Begin::Proceed(claim) => claim,
        };
        let bulk = BulkAnnotate {
            items,
            idempotency: claim.clone(),
        };
        let asked = self
            .apply_in_project_tracked(project_id, principal, ctx, bulk)
            .await;
        let (result, maybe_written) = settle(asked);
        self.end_idempotent(&claim, maybe_written).await;
        result.map(|rows| Idempotent::Fresh(rows.into_iter().map(Into::into).collect()))
    }

    /// Write a new revision of an item's annotation. `if_match`: the tags of the
    /// `If-Match` header (412 unless one names the current revision).
    pub async fn put_annotation(
        &self,
        principal: &Principal,
        kind: DataKind,
        item_id: Uuid,
        values: BTreeMap<String, Value>,
        if_match: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<AnnotationView, EngineError> {
        let item = self
            .service::<ItemService>()
            .item(principal, kind, item_id)
            .await?;
        let put = PutAnnotation {
            item_id,
            values,
            if_match: if_match.map(IfMatch::parse),
        };
        let row = self
            .apply_in_project(item.project_id, principal, ctx, put)
            .await?;
        Ok(row.into())
    }

    /// An item's suggestions: those posted by sources, and for a transcribed recording
    /// whose schema has `segments` fields, segments read from the word timings.
    pub async fn suggestions(
        &self,
        principal: &Principal,
        kind: DataKind,
        item_id: Uuid,
    ) -> Result<Vec<SuggestionView>, EngineError> {
        let item = self
            .service::<ItemService>()
            .item(principal, kind, item_id)
            .await?;
        let mut out: Vec<SuggestionView> = store::labels::suggestions(&self.deps.db, item_id)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
        if kind == DataKind::Audio
            && let Some(schema) =
                store::labels::current_schema(&self.deps.db, item.project_id).await?
            && let Some(timed) = store::texts::timed(&self.deps.db, item_id).await?
            && let Some(words) = &timed.words
        {
            let duration = item
                .audio
                .as_ref()
                .map(|a| a.duration_seconds)
                .filter(|s| *s > 0.0)
                .map(|s| (s * 1000.0).round() as u64);
            let values = suggest::from_word_timings(&schema.fields.0, &words.0, duration);
            if !values.is_empty() {
                out.push(SuggestionView {
                    source: suggest::TRANSCRIPTION_SOURCE.into(),
                    score: timed.confidence,
                    schema_version: schema.version,
                    values,
                    text_revision: None,
                    author_id: None,
                    created_at: timed.created_at,
                });
            }
        }
        Ok(out)
    }

    /// Post a source's suggestion for an item (its contributor or a project admin, as
    /// for values), replacing what that source suggested before.
    pub async fn put_suggestion(
        &self,
        principal: &Principal,
        kind: DataKind,
        item_id: Uuid,
        suggestion: NewSuggestion,
        ctx: &RequestContext,
    ) -> Result<SuggestionView, EngineError> {
        suggest::check_source(&suggestion.source)?;
        suggest::check_score(suggestion.score)?;
        let item = self
            .service::<ItemService>()
            .item(principal, kind, item_id)
            .await?;
        let put = PutSuggestion {
            item_id,
            source: suggestion.source,
            score: suggestion.score,
            values: suggestion.values,
        };
        let row = self
            .apply_in_project(item.project_id, principal, ctx, put)
            .await?;
        Ok(row.into())
    }

    /// Accept a source's suggestion (every field of it, or `fields`) into a new revision
    /// of the item's annotation; `if_match` as for [`LabelService::put_annotation`].
    pub async fn accept_suggestion(
        &self,
        principal: &Principal,
        kind: DataKind,
        item_id: Uuid,
        acceptance: Acceptance,
        if_match: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<AnnotationView, EngineError> {
        let item = self
            .service::<ItemService>()
            .item(principal, kind, item_id)
            .await?;
        let accept = AcceptSuggestion {
            item_id,
            source: acceptance.source,
            fields: acceptance.fields,
            if_match: if_match.map(IfMatch::parse),
        };
        let row = self
            .apply_in_project(item.project_id, principal, ctx, accept)
            .await?;
        Ok(row.into())
    }
}
