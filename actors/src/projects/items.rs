//! Item transitions run by the project's actor: commit an upload, delete an item,
//! correct its text, process it again.

use crate::ErrorCode;
use serde_json::json;
use uuid::Uuid;

use super::project::{Opened, audit, begin};
use crate::change::Change;
use crate::{
    authz::{self, ProjectAction},
    context::{Principal, RequestContext},
    engine::Deps,
    error::EngineError,
    idempotency::{self, Claim},
    items::state::{ItemEvent, next_strs},
    items::{ItemView, KIND_OCR, KIND_TRANSCRIPTION},
    metrics as m,
    store::{self, items::ItemRow, texts::TextRow},
};

/// The job that extracts an item's text: transcription for audio, OCR otherwise.
fn processing_kind(kind: &str) -> &'static str {
    if kind == "audio" {
        KIND_TRANSCRIPTION
    } else {
        KIND_OCR
    }
}

/// 409 when the project already holds a live item with this content.
async fn refuse_duplicate(
    tx: &mut store::Tx,
    project: Uuid,
    sha256: &str,
) -> Result<(), EngineError> {
    match store::items::id_by_sha256(tx, project, sha256).await? {
        Some(existing) => Err(EngineError::Conflict {
            code: ErrorCode::DuplicateContent,
            message: format!("identical content is already item {existing} in this project"),
        }),
        None => Ok(()),
    }
}

fn count_upload(row: &ItemRow) {
    metrics::counter!(m::UPLOADS_TOTAL, "kind" => row.kind.clone()).increment(1);
    metrics::counter!(m::UPLOAD_BYTES_TOTAL, "kind" => row.kind.clone())
        .increment(row.size_bytes.max(0) as u64);
}

/// Commit an uploaded item (its blob is already stored): the row, its follow-up job,
/// the project's storage count and the audit row, in one transaction.
/// Run inside `change` (the project's actor commits several together).
pub async fn add(
    change: &mut Change,
    opened: &mut Opened,
    deps: &Deps,
    principal: &Principal,
    row: &ItemRow,
    ctx: &RequestContext,
    idempotency: &Option<Claim>,
) -> Result<ItemView, EngineError> {
    let id = opened.project.id;
    opened
        .authorize(change, principal, ProjectAction::Upload)
        .await?;
    let tx: &mut store::Tx = change;
    refuse_duplicate(tx, id, &row.sha256).await?;
    if let Some(ext) = &row.external_id
        && let Some(existing) = store::items::id_by_external_id(tx, id, ext).await?
    {
        return Err(EngineError::Conflict {
            code: ErrorCode::DuplicateExternalId,
            message: format!("external_id {ext:?} is already item {existing} in this project"),
        });
    }
    let job_kind = processing_kind(&row.kind);
    let job_id = crate::jobs::enqueue(deps, tx, job_kind, json!({"item_id": row.id})).await?;
    let row = &ItemRow {
        job_id: Some(job_id),
        ..row.clone()
    };
    store::items::insert(tx, row).await?;
    store::items::add_storage_bytes(tx, id, row.size_bytes).await?;
    audit(
        tx,
        deps,
        ctx,
        principal,
        id,
        "item.uploaded",
        ("item", row.id.to_string()),
        json!({"kind": row.kind, "type": row.detected_type, "size_bytes": row.size_bytes, "sha256": row.sha256}),
    )
    .await?;
    let view = ItemView::from(row.clone());
    idempotency::record(tx, idempotency, 201, &view).await?;
    let waker = deps.job_waker.clone();
    let counted = row.clone();
    change.after_commit(move || {
        waker.notify_waiters();
        count_upload(&counted);
    });
    Ok(view)
}

/// Soft-delete an item: its owner may (with the right to upload), or an admin.
pub async fn delete(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    item_id: Uuid,
    ctx: &RequestContext,
) -> Result<(), EngineError> {
    let (mut tx, _, role) = begin(deps, id, principal, ProjectAction::View).await?;
    let item = store::items::find_live_tx(&mut tx, item_id)
        .await?
        .filter(|i| i.project_id == id)
        .ok_or(EngineError::NotFound { what: "item" })?;
    let action = if item.contributor_id == principal.user_id {
        ProjectAction::Upload
    } else {
        ProjectAction::DeleteAnyItem
    };
    authz::authorize_project(principal, role, action)?;
    store::items::soft_delete(&mut tx, item_id, deps.clock.now()).await?;
    store::items::add_storage_bytes(&mut tx, id, -item.size_bytes).await?;
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        "item.deleted",
        ("item", item_id.to_string()),
        json!({"kind": item.kind}),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The live item `item_id` of project `id`, and whether the caller uploaded it.
pub(super) async fn live_item(
    tx: &mut store::Tx,
    id: Uuid,
    item_id: Uuid,
) -> Result<ItemRow, EngineError> {
    store::items::find_live_tx(tx, item_id)
        .await?
        .filter(|i| i.project_id == id)
        .ok_or(EngineError::NotFound { what: "item" })
}

/// Someone else's item does not exist for a member who may not see every item (a
/// contributor): 404 before any permission check, as for reads.
pub(super) fn check_visible(
    principal: &Principal,
    role: Option<crate::domain::ProjectRole>,
    item: &ItemRow,
) -> Result<(), EngineError> {
    if item.contributor_id != principal.user_id
        && authz::authorize_project(principal, role, ProjectAction::ViewAllItems).is_err()
    {
        return Err(EngineError::NotFound { what: "item" });
    }
    Ok(())
}

/// Why an item cannot be changed now: still processing, or in (or past) review.
pub(super) fn not_editable(status: &str) -> EngineError {
    match status {
        "uploaded" | "processing" => EngineError::Conflict {
            code: ErrorCode::ItemProcessing,
            message: format!("the item is {status}; wait until processing ends"),
        },
        _ => EngineError::Conflict {
            code: ErrorCode::ItemInReview,
            message: format!("the item is {status}; it cannot be changed now"),
        },
    }
}

/// A person's revision of the text: the uploader (with the right to upload) or an admin.
/// The machine's output and earlier revisions stay.
pub async fn edit_text(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    item_id: Uuid,
    text: String,
    ctx: &RequestContext,
) -> Result<TextRow, EngineError> {
    let (mut tx, _, role) = begin(deps, id, principal, ProjectAction::View).await?;
    let item = live_item(&mut tx, id, item_id).await?;
    let action = if item.contributor_id == principal.user_id {
        ProjectAction::Upload
    } else {
        ProjectAction::EditAnyText
    };
    authz::authorize_project(principal, role, action)?;
    let now = deps.clock.now();
    let (from, to) = next_strs(ItemEvent::TextEdited);
    if !store::items::set_status(&mut tx, item_id, &from, to, None, None, now).await? {
        return Err(not_editable(&item.status));
    }
    let row = TextRow {
        id: Uuid::now_v7(),
        item_id,
        revision: 0,
        source: "human".into(),
        engine: None,
        author_id: Some(principal.user_id),
        job_id: None,
        text,
        pages: None,
        words: None,
        confidence: None,
        created_at: now,
    };
    store::texts::add_revision(&mut tx, &row).await?;
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        "item.text_edited",
        ("item", item_id.to_string()),
        json!({"kind": item.kind, "chars": row.text.chars().count()}),
    )
    .await?;
    tx.commit().await?;
    Ok(row)
}

/// Queue OCR or transcription again (project admins). The newest job is the item's;
/// an older one that still runs finds it superseded and does nothing.
pub async fn reprocess(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    item_id: Uuid,
    ctx: &RequestContext,
) -> Result<ItemView, EngineError> {
    let (mut tx, _, role) = begin(deps, id, principal, ProjectAction::View).await?;
    let item = live_item(&mut tx, id, item_id).await?;
    authz::authorize_project(principal, role, ProjectAction::Reprocess)?;
    let job_kind = processing_kind(&item.kind);
    let job_id = crate::jobs::enqueue(deps, &mut tx, job_kind, json!({"item_id": item_id})).await?;
    let now = deps.clock.now();
    let (from, to) = next_strs(ItemEvent::Reprocess);
    if !store::items::set_status(&mut tx, item_id, &from, to, Some(job_id), None, now).await? {
        return Err(not_editable(&item.status));
    }
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        "item.reprocess",
        ("item", item_id.to_string()),
        json!({"kind": item.kind, "job_id": job_id}),
    )
    .await?;
    let row = live_item(&mut tx, id, item_id).await?;
    tx.commit().await?;
    deps.job_waker.notify_waiters();
    Ok(row.into())
}

/// Rework: the item's file is replaced by one just stored (`row` describes it). Its
/// uploader (with the right to upload) or an admin, when the item is not in review or
/// processing. The earlier file is kept in the item's file history; the item is
/// processed again and then submitted again by its contributor.
pub async fn replace_file(
    deps: &Deps,
    id: Uuid,
    principal: &Principal,
    item_id: Uuid,
    row: &ItemRow,
    ctx: &RequestContext,
    idempotency: &Option<Claim>,
) -> Result<ItemView, EngineError> {
    let (mut tx, _, role) = begin(deps, id, principal, ProjectAction::View).await?;
    let item = live_item(&mut tx, id, item_id).await?;
    let action = if item.contributor_id == principal.user_id {
        ProjectAction::Upload
    } else {
        ProjectAction::EditAnyText
    };
    check_visible(principal, role, &item)?;
    authz::authorize_project(principal, role, action)?;
    if item.kind != row.kind {
        return Err(EngineError::validation(
            ErrorCode::KindMismatch,
            "replaces",
            format!(
                "item {item_id} is a {}; replace it with the same kind",
                item.kind
            ),
        ));
    }
    refuse_duplicate(&mut tx, id, &row.sha256).await?;
    let job_kind = processing_kind(&row.kind);
    let job_id = crate::jobs::enqueue(deps, &mut tx, job_kind, json!({"item_id": item_id})).await?;
    let now = deps.clock.now();
    let (from, to) = next_strs(ItemEvent::FileReplaced);
    if !store::items::set_status(&mut tx, item_id, &from, to, Some(job_id), None, now).await? {
        return Err(not_editable(&item.status));
    }
    store::items::keep_previous_file(&mut tx, &item, principal.user_id, now).await?;
    store::items::replace_file(&mut tx, item_id, row, now).await?;
    store::items::add_storage_bytes(&mut tx, id, row.size_bytes).await?;
    audit(
        &mut tx,
        deps,
        ctx,
        principal,
        id,
        "item.file_replaced",
        ("item", item_id.to_string()),
        json!({
            "kind": row.kind,
            "type": row.detected_type,
            "size_bytes": row.size_bytes,
            "sha256": row.sha256,
            "previous_sha256": item.sha256,
            "job_id": job_id,
        }),
    )
    .await?;
    let view = ItemView::from(live_item(&mut tx, id, item_id).await?);
    idempotency::record(&mut tx, idempotency, 201, &view).await?;
    tx.commit().await?;
    deps.job_waker.notify_waiters();
    count_upload(row);
    Ok(view)
}
