//! Labelling transitions of a project: a new version of its label schema, and a new
//! revision of an item's annotation. Both run in the project's actor, in its group's
//! change, with their audit rows. (Carrying spans over to a new text revision is the
//! items' business: `items::carry_spans`.)

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    ErrorCode,
    authz::ProjectAction,
    clock::stored_time,
    context::Principal,
    domain::{
        DataKind, ItemStatus,
        labels::{LabelField, carry, usage, values},
        webhook::WebhookEvent,
    },
    error::EngineError,
    idempotency::Claim,
    items::ItemSubject,
    items::{check_visible, live_item, not_editable},
    labels::IfMatch,
    project_actor::{Check, InProject, Transition},
    store::{
        self,
        items::ItemRow,
        labels::{AnnotationRow, SchemaRow},
    },
};

/// Annotate many items of the project at once (pipelines), all or nothing: each item as
/// its own `PutAnnotation` would (who, when, values), a fault anywhere refusing the lot
/// with a pointer into the request (`/items/3/values/stars`).
pub struct BulkAnnotate {
    pub items: Vec<(Uuid, BTreeMap<String, Value>)>,
    pub idempotency: Option<Claim>,
}

impl Transition for BulkAnnotate {
    type Out = Vec<AnnotationRow>;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Upload)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<Vec<AnnotationRow>, EngineError> {
        let id = at.id();
        let mut seen = std::collections::HashSet::new();
        let mut rows = Vec::with_capacity(self.items.len());
        for (i, (item_id, values)) in self.items.into_iter().enumerate() {
            if !seen.insert(item_id) {
                return Err(EngineError::validation(
                    ErrorCode::InvalidAnnotation,
                    format!("/items/{i}/item_id"),
                    format!("item {item_id} is listed twice"),
                ));
            }
            // An id that names no item the caller can see is refused content (422).
            let unknown = |err: EngineError| match err {
                EngineError::NotFound { .. } => EngineError::Unprocessable {
                    code: ErrorCode::UnknownItem,
                    message: format!("item {item_id} is not an item of this project"),
                },
                other => other,
            };
            let item = live_item(at.tx(), id, item_id).await.map_err(unknown)?;
            check_visible(at.principal, at.role, &item).map_err(unknown)?;
            check_annotatable(at, &item)?;
            let row = write_annotation(at, &item, values, None)
                .await
                .map_err(|err| match err {
                    EngineError::Validation {
                        code,
                        field: Some(field),
                        message,
                    } => EngineError::Validation {
                        code,
                        field: Some(format!("/items/{i}{field}").into()),
                        message: format!("item {item_id}: {message}"),
                    },
                    other => other,
                })?;
            rows.push(row);
        }
        let views: Vec<crate::labels::AnnotationView> =
            rows.iter().cloned().map(Into::into).collect();
        at.record_idempotent(&self.idempotency, 200, &views).await?;
        Ok(rows)
    }
}

/// A new version of the project's label schema (project admins). The same fields as
/// now change nothing. Removing a field or option that annotations use is refused
/// unless `force`, which leaves those annotations on their version.
pub struct PutLabelSchema {
    pub fields: Vec<LabelField>,
    pub force: bool,
}

impl Transition for PutLabelSchema {
    type Out = SchemaRow;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Update)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<SchemaRow, EngineError> {
        let (id, now) = (at.id(), stored_time(at.now));
        let current = store::labels::current_schema_tx(at.tx(), id).await?;
        if let Some(current) = &current
            && current.fields.0 == self.fields
        {
            return Ok(current.clone());
        }
        if let Some(current) = &current
            && !self.force
        {
            let mut in_use = Vec::new();
            for removal in usage::removals(&current.fields.0, &self.fields) {
                let (field, option) = removal.target();
                let n = store::labels::annotations_using(at.tx(), id, field, option).await?;
                if n > 0 {
                    in_use.push(removal.describe(n));
                }
            }
            if !in_use.is_empty() {
                return Err(EngineError::Conflict {
                    code: ErrorCode::SchemaInUse,
                    message: format!(
                        "{}; send force=true to keep those annotations on version {}",
                        in_use.join("; "),
                        current.version
                    ),
                });
            }
        }
        let row = SchemaRow {
            project_id: id,
            version: current.map_or(1, |c| c.version + 1),
            fields: sqlx::types::Json(self.fields),
            created_by: at.principal.user_id,
            created_at: now,
        };
        store::labels::insert_schema(at.tx(), &row).await?;
        at.audit(
            "label_schema.updated",
            ("project", id.to_string()),
            json!({"version": row.version, "fields": row.fields.0.len(), "force": self.force}),
        );
        Ok(row)
    }
}

/// A new revision of an item's annotation: by its contributor or a project admin, while
/// the item is `ready` or `changes_requested`, against the current schema.
#[derive(Clone)]
pub struct PutAnnotation {
    pub item_id: Uuid,
    pub values: BTreeMap<String, Value>,
    /// The `If-Match` tags, when the header was sent: one must name the current revision.
    pub if_match: Option<Vec<IfMatch>>,
}

impl Transition for PutAnnotation {
    crate::replayable!();

    type Out = AnnotationRow;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::View)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<AnnotationRow, EngineError> {
        let (id, item_id) = (at.id(), self.item_id);
        let item = live_item(at.tx(), id, item_id).await?;
        check_visible(at.principal, at.role, &item)?;
        check_annotatable(at, &item)?;
        write_annotation(at, &item, self.values, self.if_match).await
    }
}

/// Who and when may change an item's labels (values or suggestions): its contributor,
/// or a project admin for anyone's, while the item is `ready`, failed, or sent back
/// for changes (not while it is processed or in review).
pub(super) fn check_annotatable(at: &InProject<'_>, item: &ItemRow) -> Result<(), EngineError> {
    if item.contributor_id != at.principal.user_id {
        at.authorize(ProjectAction::EditAnyText)?;
    } else {
        at.authorize(ProjectAction::Upload)?;
    }
    if !matches!(
        item.status,
        ItemStatus::Ready | ItemStatus::ChangesRequested | ItemStatus::ProcessingFailed
    ) {
        return Err(not_editable(item.status));
    }
    Ok(())
}

/// The project's current schema, or 409 `no_label_schema`.
pub(super) async fn require_schema(at: &mut InProject<'_>) -> Result<SchemaRow, EngineError> {
    let id = at.id();
    store::labels::current_schema_tx(at.tx(), id)
        .await?
        .ok_or_else(|| EngineError::Conflict {
            code: ErrorCode::NoLabelSchema,
            message: "the project has no label schema yet; a project admin sets one".into(),
        })
}

/// What `item`'s values are checked against: its current text (documents) or its
/// recording's length; with the text revision spans count in.
pub(super) async fn target_of(
    at: &mut InProject<'_>,
    item: &ItemRow,
) -> Result<(Option<String>, Option<i32>, Option<u64>), EngineError> {
    let text = match item.kind {
        DataKind::Document => store::texts::current_tx(at.tx(), item.id).await?,
        DataKind::Audio => None,
    };
    Ok((
        text.as_ref().map(|t| t.text.clone()),
        text.map(|t| t.revision),
        item.duration_ms(),
    ))
}

/// A new revision of `item`'s annotation by the caller: `values` checked against the
/// project's current schema and the item's current text (or recording), `if_match`
/// against the current revision. The caller has checked who and when.
pub(crate) async fn write_annotation(
    at: &mut InProject<'_>,
    item: &ItemRow,
    values: BTreeMap<String, Value>,
    if_match: Option<Vec<IfMatch>>,
) -> Result<AnnotationRow, EngineError> {
    let (id, item_id, now) = (at.id(), item.id, stored_time(at.now));
    {
        let schema = require_schema(at).await?;
        let current = store::labels::current_annotation_tx(at.tx(), item_id).await?;
        let revision = current.as_ref().map_or(0, |c| c.revision);
        if let Some(tags) = &if_match
            && !tags.iter().any(|t| t.matches(revision))
        {
            return Err(EngineError::PreconditionFailed {
                code: ErrorCode::PreconditionFailed,
                message: format!(
                    "the annotation is at revision {revision}; read it again and reapply \
                     your change"
                ),
            });
        }
        let (text, text_revision, duration_ms) = target_of(at, item).await?;
        let target = values::Target {
            kind: item.kind,
            text: text.as_deref(),
            duration_ms,
        };
        let checked = values::check(&schema.fields.0, values, &target)?;
        let row = AnnotationRow {
            item_id,
            revision: revision + 1,
            project_id: id,
            schema_version: schema.version,
            label_values: sqlx::types::Json(checked),
            text_revision,
            author_id: at.principal.user_id,
            created_at: now,
        };
        store::labels::insert_annotation(at.tx(), &row).await?;
        let labels = values::indexed_labels(&schema.fields.0, &row.label_values.0);
        store::labels::replace_labels(at.tx(), id, item_id, &labels).await?;
        at.audit(
            "item.annotated",
            ("item", item_id.to_string()),
            json!({
                "revision": row.revision,
                "schema_version": row.schema_version,
                "fields": row.label_values.0.len(),
            }),
        );
        let annotation = json!({
            "revision": row.revision,
            "schema_version": row.schema_version,
            "values": row.label_values.0,
            "author_id": row.author_id,
            "created_at": row.created_at,
        });
        at.announce(
            WebhookEvent::AnnotationUpdated,
            ItemSubject::Annotation {
                item_id,
                annotation,
            },
        )
        .await?;
        Ok(row)
    }
}

/// Items among `items` whose annotation lacks a required field of the project's
/// schema, or has spans whose words changed since: 422 `annotation_incomplete` naming
/// them (submission is all or nothing).
pub(crate) async fn check_complete(
    at: &mut InProject<'_>,
    items: &[Uuid],
) -> Result<(), EngineError> {
    let id = at.id();
    let Some(schema) = store::labels::current_schema_tx(at.tx(), id).await? else {
        return Ok(());
    };
    // One read for the lot (a submission holds at most 500 items).
    let annotations: std::collections::HashMap<Uuid, AnnotationRow> =
        store::labels::current_of_tx(at.tx(), items)
            .await?
            .into_iter()
            .map(|a| (a.item_id, a))
            .collect();
    let mut incomplete = Vec::new();
    for &item in items {
        let values = annotations.get(&item).map(|a| &a.label_values.0);
        let missing = values::missing_required(&schema.fields.0, values);
        if !missing.is_empty() {
            incomplete.push(format!("{item} lacks {}", missing.join(", ")));
        }
        let stale = values.map(carry::stale_spans).unwrap_or_default();
        if !stale.is_empty() {
            incomplete.push(format!(
                "{item} has spans whose text changed ({})",
                stale.join(", ")
            ));
        }
    }
    if incomplete.is_empty() {
        return Ok(());
    }
    Err(EngineError::validation(
        ErrorCode::AnnotationIncomplete,
        "item_ids",
        format!(
            "required labels are missing; nothing was submitted: {}",
            incomplete.join("; ")
        ),
    ))
}
