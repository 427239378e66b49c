//! Spans follow the text: a transition that writes a new text revision (a correction, a
//! fix-and-accept, a reprocess, a processing outcome) carries the item's annotation
//! over to it.

use serde_json::json;
use uuid::Uuid;

use crate::{
    clock::stored_time,
    domain::labels::carry,
    error::EngineError,
    project_actor::InProject,
    store::{self, labels::AnnotationRow},
};

/// A new text revision of `item_id` was just written: carry its annotation's spans over
/// to it (a new annotation revision, by the annotation's author, anchored to the new
/// text), marking stale those whose words changed.
pub(crate) async fn carry_spans(at: &mut InProject<'_>, item_id: Uuid) -> Result<(), EngineError> {
    let (id, now) = (at.id(), stored_time(at.now));
    // The annotation first: most items a new text reaches have none (one read, not two).
    let Some(annotation) = store::labels::current_annotation_tx(at.tx(), item_id).await? else {
        return Ok(());
    };
    let Some(new_text) = store::texts::current_tx(at.tx(), item_id).await? else {
        return Ok(());
    };
    let Some(anchor) = annotation.text_revision else {
        return Ok(());
    };
    if anchor == new_text.revision {
        return Ok(());
    }
    let Some(schema) =
        store::labels::schema_version_tx(at.tx(), id, annotation.schema_version).await?
    else {
        return Ok(());
    };
    let Some(old_text) = store::texts::revision_tx(at.tx(), item_id, anchor).await? else {
        return Ok(());
    };
    let map = carry::code_point_map(&old_text.text, &new_text.text);
    let (values, carried) = carry::carry(&schema.fields.0, &annotation.label_values.0, &map);
    if !carried.any() {
        return Ok(());
    }
    let row = AnnotationRow {
        revision: annotation.revision + 1,
        label_values: sqlx::types::Json(values),
        text_revision: Some(new_text.revision),
        created_at: now,
        ..annotation
    };
    store::labels::insert_annotation(at.tx(), &row).await?;
    at.audit(
        "item.spans_carried",
        ("item", item_id.to_string()),
        json!({
            "revision": row.revision,
            "text_revision": new_text.revision,
            "moved": carried.moved,
            "kept": carried.kept,
            "stale": carried.stale,
        }),
    );
    Ok(())
}
