//! Machine suggestions for an item's annotation: a source (a pipeline's model) posts
//! its values beside the human ones; the contributor accepts them into a revision.
//! Both run in the project's actor, with their audit rows.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use super::transition::{check_annotatable, require_schema, target_of, write_annotation};
use crate::{
    ErrorCode,
    authz::ProjectAction,
    clock::stored_time,
    context::Principal,
    domain::labels::{FieldType, suggest, values},
    error::EngineError,
    items::{check_visible, live_item},
    labels::IfMatch,
    project_actor::{Check, InProject, Transition},
    store::{
        self,
        labels::{AnnotationRow, SuggestionRow},
    },
};

/// A source's suggestion for an item: checked as values are (no field is required),
/// replacing what the source suggested before. Who and when as for the values.
#[derive(Clone)]
pub struct PutSuggestion {
    pub item_id: Uuid,
    pub source: String,
    pub score: Option<f64>,
    pub values: BTreeMap<String, Value>,
}

impl Transition for PutSuggestion {
    crate::replayable!();

    type Out = SuggestionRow;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::View)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<SuggestionRow, EngineError> {
        let (id, now) = (at.id(), stored_time(at.now));
        let item = live_item(at.tx(), id, self.item_id).await?;
        check_visible(at.principal, at.role, &item)?;
        check_annotatable(at, &item)?;
        let schema = require_schema(at).await?;
        let (text, text_revision, duration_ms) = target_of(at, &item).await?;
        let target = values::Target {
            kind: item.kind,
            text: text.as_deref(),
            duration_ms,
        };
        let checked = values::check(&schema.fields.0, self.values, &target)?;
        let row = SuggestionRow {
            item_id: item.id,
            source: self.source,
            project_id: id,
            schema_version: schema.version,
            label_values: sqlx::types::Json(checked),
            score: self.score,
            text_revision,
            author_id: at.principal.user_id,
            created_at: now,
        };
        store::labels::put_suggestion(at.tx(), &row).await?;
        at.audit(
            "item.suggested",
            ("item", item.id.to_string()),
            json!({
                "source": row.source,
                "schema_version": row.schema_version,
                "fields": row.label_values.0.len(),
            }),
        );
        Ok(row)
    }
}

/// Accept a source's suggestion (all its fields, or those named) into a new revision of
/// the item's annotation by the caller. Suggested spans made on an earlier text are
/// refused (409 `suggestion_stale`): their offsets may point at other words now.
#[derive(Clone)]
pub struct AcceptSuggestion {
    pub item_id: Uuid,
    pub source: String,
    pub fields: Option<Vec<String>>,
    pub if_match: Option<Vec<IfMatch>>,
}

impl Transition for AcceptSuggestion {
    crate::replayable!();

    type Out = AnnotationRow;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::View)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<AnnotationRow, EngineError> {
        let id = at.id();
        let item = live_item(at.tx(), id, self.item_id).await?;
        check_visible(at.principal, at.role, &item)?;
        check_annotatable(at, &item)?;
        let schema = require_schema(at).await?;
        let (suggested, anchor) = if self.source == suggest::TRANSCRIPTION_SOURCE {
            let timed = store::texts::timed_tx(at.tx(), item.id).await?;
            let values = timed.and_then(|t| t.words).map(|words| {
                suggest::from_word_timings(&schema.fields.0, &words.0, item.duration_ms())
            });
            (values.filter(|v| !v.is_empty()), None)
        } else {
            let row = store::labels::suggestion_tx(at.tx(), item.id, &self.source).await?;
            let anchor = row.as_ref().and_then(|r| r.text_revision);
            (row.map(|r| r.label_values.0), anchor)
        };
        let suggested = suggested.ok_or(EngineError::NotFound { what: "suggestion" })?;
        let (_, text_revision, _) = target_of(at, &item).await?;
        let accepts_spans = schema.fields.0.iter().any(|f| {
            f.kind == FieldType::Spans
                && suggested.contains_key(&f.name)
                && self
                    .fields
                    .as_ref()
                    .is_none_or(|only| only.contains(&f.name))
        });
        if accepts_spans && anchor != text_revision {
            return Err(EngineError::Conflict {
                code: ErrorCode::SuggestionStale,
                message: format!(
                    "the suggested spans count in text revision {}, and the text is now at \
                     revision {}; the source suggests again on the current text",
                    anchor.unwrap_or_default(),
                    text_revision.unwrap_or_default()
                ),
            });
        }
        let current = store::labels::current_annotation_tx(at.tx(), item.id)
            .await?
            .map(|a| a.label_values.0)
            .unwrap_or_default();
        let values = suggest::accept(current, &suggested, self.fields.as_deref())?;
        let row = write_annotation(at, &item, values, self.if_match).await?;
        at.audit(
            "item.suggestion_accepted",
            ("item", item.id.to_string()),
            json!({"source": self.source, "revision": row.revision, "fields": self.fields}),
        );
        Ok(row)
    }
}
