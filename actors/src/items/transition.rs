//! Item transitions run by the project's actor: commit an upload, delete an item,
//! correct its text, process it again, replace its file, retry its failed job.

use crate::ErrorCode;
use serde_json::json;
use uuid::Uuid;

use crate::{
    authz::{self, Action, ProjectAction},
    context::Principal,
    domain::{DataKind, ItemStatus, JobState, webhook::WebhookEvent},
    error::EngineError,
    idempotency::Claim,
    items::state::{ItemEvent, next_strs},
    items::{ItemSubject, ItemView, KIND_OCR, KIND_TRANSCRIPTION},
    metrics as m,
    project_actor::{Check, InProject, Touches, Transition},
    store::{self, items::ItemRow, texts::TextRow},
};

/// The job that extracts an item's text: transcription for audio, OCR otherwise.
fn processing_kind(kind: DataKind) -> &'static str {
    match kind {
        DataKind::Audio => KIND_TRANSCRIPTION,
        DataKind::Document => KIND_OCR,
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
    metrics::counter!(m::UPLOADS_TOTAL, "kind" => row.kind.as_str()).increment(1);
    metrics::counter!(m::UPLOAD_BYTES_TOTAL, "kind" => row.kind.as_str())
        .increment(row.size_bytes.max(0) as u64);
}

/// Commit an uploaded item (its blob is already stored): the row, its follow-up job,
/// the project's storage count and the audit row.
#[derive(Clone)]
pub struct AddItem {
    pub row: Box<ItemRow>,
    pub idempotency: Option<Claim>,
}

impl Transition for AddItem {
    crate::replayable!();

    fn touches(&self) -> Touches {
        Touches::NoExistingItem // it adds its own
    }

    type Out = ItemView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Upload)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ItemView, EngineError> {
        let id = at.id();
        let job_kind = processing_kind(self.row.kind);
        let job_id = at.enqueue(job_kind, json!({"item_id": self.row.id}));
        let row = ItemRow {
            job_id: Some(job_id),
            ..*self.row
        };
        // The unique indexes refuse a duplicate in the insert itself (one round trip);
        // only then is it looked up, to say which item it duplicates. On a group's fast
        // path the insert is kept for the group's one statement of kept writes (a
        // refusal there starts the group over, and this path then finds it).
        if at.change.defers_rows() {
            at.change.keep_new_item(row.clone());
        } else if !store::items::insert_unless_taken(at.tx(), &row).await? {
            refuse_duplicate(at.tx(), id, &row.sha256).await?;
            if let Some(ext) = &row.external_id
                && let Some(existing) = store::items::id_by_external_id(at.tx(), id, ext).await?
            {
                return Err(EngineError::Conflict {
                    code: ErrorCode::DuplicateExternalId,
                    message: format!(
                        "external_id {ext:?} is already item {existing} in this project"
                    ),
                });
            }
            return Err(EngineError::internal(format!(
                "item {} was refused by a unique index, yet nothing it duplicates was found",
                row.id
            )));
        }
        at.add_storage_bytes(row.size_bytes);
        at.audit(
            "item.uploaded",
            ("item", row.id.to_string()),
            json!({"kind": row.kind, "type": row.detected_type, "size_bytes": row.size_bytes, "sha256": row.sha256}),
        );
        let view = ItemView::from(row.clone());
        let written = ItemSubject::AsWritten(Box::new(view.clone()));
        at.announce(WebhookEvent::ItemUploaded, written).await?;
        at.record_idempotent(&self.idempotency, 201, &view).await?;
        at.change.after_commit(move || count_upload(&row));
        Ok(view)
    }
}

/// Soft-delete an item: its owner may (with the right to upload), or an admin.
#[derive(Clone)]
pub struct DeleteItem {
    pub item_id: Uuid,
}

impl Transition for DeleteItem {
    crate::replayable!();

    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::View)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let (id, item_id, now) = (at.id(), self.item_id, at.now);
        let item = live_item(at.tx(), id, item_id).await?;
        at.authorize(owner_or(at.principal, &item, ProjectAction::DeleteAnyItem))?;
        // Announced first: the payload shows the item as it was.
        at.announce(WebhookEvent::ItemDeleted, ItemSubject::Item(item_id))
            .await?;
        store::items::soft_delete(at.tx(), item_id, now).await?;
        at.add_storage_bytes(-item.size_bytes);
        at.audit(
            "item.deleted",
            ("item", item_id.to_string()),
            json!({"kind": item.kind}),
        );
        Ok(())
    }
}

/// Upload for the caller's own item, `otherwise` for someone else's.
fn owner_or(principal: &Principal, item: &ItemRow, otherwise: ProjectAction) -> ProjectAction {
    if item.contributor_id == principal.user_id {
        ProjectAction::Upload
    } else {
        otherwise
    }
}

/// The live item `item_id` of project `id`, and whether the caller uploaded it.
pub(crate) async fn live_item(
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
pub(crate) fn check_visible(
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
pub(crate) fn not_editable(status: ItemStatus) -> EngineError {
    match status {
        ItemStatus::Uploaded | ItemStatus::Processing => EngineError::Conflict {
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
#[derive(Clone)]
pub struct EditText {
    pub item_id: Uuid,
    pub text: String,
}

impl Transition for EditText {
    crate::replayable!();

    type Out = TextRow;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::View)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<TextRow, EngineError> {
        let (id, item_id, now) = (at.id(), self.item_id, at.now);
        let item = live_item(at.tx(), id, item_id).await?;
        at.authorize(owner_or(at.principal, &item, ProjectAction::EditAnyText))?;
        let (from, to) = next_strs(ItemEvent::TextEdited);
        if !store::items::set_status(at.tx(), item_id, &from, to, None, None, now).await? {
            return Err(not_editable(item.status));
        }
        let row = TextRow::human(item_id, at.principal.user_id, self.text, now);
        store::texts::add_revision(at.tx(), &row).await?;
        super::carry_spans(at, item_id).await?;
        at.audit(
            "item.text_edited",
            ("item", item_id.to_string()),
            json!({"kind": item.kind, "chars": row.text.chars().count()}),
        );
        Ok(row)
    }
}

/// Queue OCR or transcription again (project admins). The newest job is the item's;
/// an older one that still runs finds it superseded and does nothing.
pub struct Reprocess {
    pub item_id: Uuid,
}

impl Transition for Reprocess {
    type Out = ItemView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::View)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ItemView, EngineError> {
        let (id, item_id, now) = (at.id(), self.item_id, at.now);
        let item = live_item(at.tx(), id, item_id).await?;
        at.authorize(ProjectAction::Reprocess)?;
        let job_id = at.enqueue(processing_kind(item.kind), json!({"item_id": item_id}));
        let (from, to) = next_strs(ItemEvent::Reprocess);
        if !store::items::set_status(at.tx(), item_id, &from, to, Some(job_id), None, now).await? {
            return Err(not_editable(item.status));
        }
        at.audit(
            "item.reprocess",
            ("item", item_id.to_string()),
            json!({"kind": item.kind, "job_id": job_id}),
        );
        Ok(live_item(at.tx(), id, item_id).await?.into())
    }
}

/// Rework: the item's file is replaced by one just stored (`row` describes it). Its
/// uploader (with the right to upload) or an admin, when the item is not in review or
/// processing. The earlier file is kept in the item's file history; the item is
/// processed again and then submitted again by its contributor.
pub struct ReplaceFile {
    pub item_id: Uuid,
    pub row: Box<ItemRow>,
    pub idempotency: Option<Claim>,
}

impl Transition for ReplaceFile {
    type Out = ItemView;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::View)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ItemView, EngineError> {
        let (id, item_id, now, row) = (at.id(), self.item_id, at.now, &*self.row);
        let item = live_item(at.tx(), id, item_id).await?;
        check_visible(at.principal, at.role, &item)?;
        at.authorize(owner_or(at.principal, &item, ProjectAction::EditAnyText))?;
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
        refuse_duplicate(at.tx(), id, &row.sha256).await?;
        let job_id = at.enqueue(processing_kind(row.kind), json!({"item_id": item_id}));
        let (from, to) = next_strs(ItemEvent::FileReplaced);
        if !store::items::set_status(at.tx(), item_id, &from, to, Some(job_id), None, now).await? {
            return Err(not_editable(item.status));
        }
        let user = at.principal.user_id;
        store::items::keep_previous_file(at.tx(), &item, user, now).await?;
        store::items::replace_file(at.tx(), item_id, row, now).await?;
        at.add_storage_bytes(row.size_bytes);
        at.audit(
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
        );
        let view = ItemView::from(live_item(at.tx(), id, item_id).await?);
        at.record_idempotent(&self.idempotency, 201, &view).await?;
        let counted = *self.row;
        at.change.after_commit(move || count_upload(&counted));
        Ok(view)
    }
}

/// A super admin's retry of a failed processing job (the caller checked the right to
/// manage jobs): the job goes back in the queue and, when it is still its item's job,
/// the item waits for it again, together or neither. An item that finished either way
/// goes back to `uploaded` (409 when it has moved on to review); one still `uploaded` or
/// `processing` (its job gave up before saying so) is left for the job to start again.
/// A deleted item, or one with a newer job, is left alone.
pub struct RetryJob {
    pub job_id: Uuid,
    pub kind: String,
    /// The job's state as the caller read it, for the 409 when it is not failed.
    pub state: JobState,
    pub item_id: Uuid,
}

impl Transition for RetryJob {
    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        // Super admins only, in a live or deleted project alike.
        Check::Itself
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        authz::authorize(at.principal, Action::ManageJobs)?;
        at.project()?;
        let (id, job_id, item_id, now) = (at.id(), self.job_id, self.item_id, at.now);
        if !store::jobs::retry_failed(at.tx(), job_id, now).await? {
            return Err(EngineError::Conflict {
                code: ErrorCode::JobNotFailed,
                message: format!("the job is {}, not failed", self.state),
            });
        }
        let item = store::items::find_live_tx(at.tx(), item_id)
            .await?
            .filter(|i| i.project_id == id && i.job_id == Some(job_id));
        if let Some(item) = item
            && !matches!(item.status, ItemStatus::Uploaded | ItemStatus::Processing)
        {
            let (from, to) = next_strs(ItemEvent::Reprocess);
            if !store::items::set_status(at.tx(), item_id, &from, to, Some(job_id), None, now)
                .await?
            {
                return Err(not_editable(item.status));
            }
        }
        at.audit(
            "job.retried",
            ("job", job_id.to_string()),
            json!({"kind": self.kind, "item": item_id}),
        );
        at.wake_workers(&self.kind);
        Ok(())
    }
}
