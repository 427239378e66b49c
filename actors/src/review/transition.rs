//! Review transitions run by the project's actor: submit, claim a lease, renew it,
//! skip, and decide. Each runs in one transaction under the project's lock, moves the
//! item only through the state machine (`items::state`) with a conditional write, and
//! writes an audit row when the item's state changes.

use crate::ErrorCode;
use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::{
    authz::ProjectAction,
    context::Principal,
    deps::Deps,
    domain::{ProjectSettings, webhook::WebhookEvent},
    error::EngineError,
    items::ItemSubject,
    items::{
        ItemStatus, ItemView, check_visible,
        consensus::{Verdict, verdict},
        live_item, not_editable,
        state::{ItemEvent, next, next_strs},
    },
    metrics as m,
    project_actor::{Check, InProject, Touches, Transition},
    review::{Decision, DecisionInput},
    store::{
        self, Tx,
        items::ItemRow,
        reviews::{DecisionEffect, DecisionRow, KeptDecision, QueueFilter},
        texts::TextRow,
    },
};

/// Send items to review: each must be `ready` (or sent back for changes), and the
/// caller's own or the caller an admin. All or nothing.
#[derive(Clone)]
pub struct Submit {
    pub item_ids: Vec<Uuid>,
}

impl Transition for Submit {
    crate::replayable!();

    type Out = Vec<ItemView>;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::View)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<Vec<ItemView>, EngineError> {
        let (id, now) = (at.id(), at.now);
        let (from, to) = next_strs(ItemEvent::Submitted);
        let mut views = Vec::with_capacity(self.item_ids.len());
        // The project is the resource here; an id in the body that names no item the
        // caller can see is refused content (422), not a missing project (404).
        let unknown = |item_id: Uuid| {
            move |err: EngineError| match err {
                EngineError::NotFound { .. } => EngineError::Unprocessable {
                    code: ErrorCode::UnknownItem,
                    message: format!("item {item_id} is not an item of this project"),
                },
                other => other,
            }
        };
        let item_ids = self.item_ids.clone();
        for item_id in self.item_ids {
            let item = live_item(at.tx(), id, item_id)
                .await
                .map_err(unknown(item_id))?;
            check_visible(at.principal, at.role, &item).map_err(unknown(item_id))?;
            at.authorize(if item.contributor_id == at.principal.user_id {
                ProjectAction::Upload
            } else {
                ProjectAction::SubmitAnyItem
            })?;
            if !store::items::set_status(at.tx(), item_id, &from, to, None, None, now).await? {
                return Err(EngineError::Conflict {
                    code: ErrorCode::ItemNotReady,
                    message: format!(
                        "item {item_id} is {}; only ready items, or ones sent back for \
                         changes, can be submitted",
                        item.status
                    ),
                });
            }
            store::reviews::mark_submitted(at.tx(), item_id, now).await?;
            at.audit(
                "item.submitted",
                ("item", item_id.to_string()),
                json!({"kind": item.kind, "round": item.review_round}),
            );
            at.announce(WebhookEvent::ItemSubmitted, ItemSubject::Item(item_id))
                .await?;
            views.push(live_item(at.tx(), id, item_id).await?.into());
        }
        // All or nothing: the items' required labels, checked once they are known to
        // be the caller's to submit.
        crate::labels::check_complete(at, &item_ids).await?;
        Ok(views)
    }
}

fn lease_until(deps: &Deps, now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::from_std(deps.config.review.lease)
        .unwrap_or(chrono::Duration::minutes(10))
}

/// Give the caller the next item of their queue with a lease; the item they already
/// hold, if any (a retried call never takes two). `None` when the queue is empty.
#[derive(Clone)]
pub struct ClaimReview;

impl Transition for ClaimReview {
    crate::replayable!();

    type Out = Option<ItemRow>;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Review)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<Option<ItemRow>, EngineError> {
        let (id, now, me) = (at.id(), at.now, at.principal.user_id);
        let until = lease_until(at.deps, now);
        let candidate = match store::reviews::held_by(at.tx(), id, me, now).await? {
            Some(held) => Some(held),
            None => {
                let filter = QueueFilter {
                    project_id: id,
                    reviewer_id: me,
                    now,
                    after: None,
                    limit: 1,
                };
                store::reviews::queue_head(at.tx(), &filter).await?
            }
        };
        let Some(item) = candidate else {
            return Ok(None);
        };
        // Under the project's lock nobody else can take it between the read and this
        // write; the condition still guards it.
        if !store::reviews::claim(at.tx(), item.id, me, until, now).await? {
            return Err(EngineError::Conflict {
                code: ErrorCode::ReviewClaimed,
                message: "another reviewer took the item; ask for the next one".into(),
            });
        }
        Ok(Some(live_item(at.tx(), id, item.id).await?))
    }
}

fn not_pending(item: &ItemRow) -> EngineError {
    EngineError::Conflict {
        code: ErrorCode::ItemNotPending,
        message: format!("the item is {}, not pending review", item.status),
    }
}

/// A pending item of this project, for a reviewer.
async fn pending_item(tx: &mut Tx, id: Uuid, item_id: Uuid) -> Result<ItemRow, EngineError> {
    let item = live_item(tx, id, item_id).await?;
    if item.status != ItemStatus::PendingReview {
        return Err(not_pending(&item));
    }
    Ok(item)
}

/// Push out the caller's lease on an item they hold.
#[derive(Clone)]
pub struct RenewReview {
    pub item_id: Uuid,
}

impl Transition for RenewReview {
    crate::replayable!();

    type Out = ItemRow;

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Review)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<ItemRow, EngineError> {
        let (id, item_id, now, me) = (at.id(), self.item_id, at.now, at.principal.user_id);
        pending_item(at.tx(), id, item_id).await?;
        let until = lease_until(at.deps, now);
        if !store::reviews::renew(at.tx(), item_id, me, until, now).await? {
            return Err(EngineError::Conflict {
                code: ErrorCode::LeaseLost,
                message: "you do not hold this item's lease (it expired, or was never yours)"
                    .into(),
            });
        }
        live_item(at.tx(), id, item_id).await
    }
}

/// Pass on an item for this round: it leaves the caller's queue, and their lease goes.
#[derive(Clone)]
pub struct SkipReview {
    pub item_id: Uuid,
}

impl Transition for SkipReview {
    crate::replayable!();

    type Out = ();

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Review)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(), EngineError> {
        let (id, item_id, now, me) = (at.id(), self.item_id, at.now, at.principal.user_id);
        let item = pending_item(at.tx(), id, item_id).await?;
        store::reviews::skip(at.tx(), item_id, item.review_round, me, now).await?;
        store::reviews::release(at.tx(), item_id, me).await?;
        Ok(())
    }
}

/// The reason code a decision gives, checked against the project's list.
fn check_decision(input: &DecisionInput, settings: &ProjectSettings) -> Result<(), EngineError> {
    match (input.decision, &input.reason_code) {
        (Decision::Reject, None) => Err(EngineError::validation(
            ErrorCode::ReasonRequired,
            "reason_code",
            format!(
                "a rejection needs a reason_code, one of {}",
                settings.reject_reasons.join(", ")
            ),
        )),
        (Decision::Reject, Some(code)) if !settings.reject_reasons.contains(code) => {
            Err(EngineError::validation(
                ErrorCode::InvalidReason,
                "reason_code",
                format!(
                    "{code:?} is not one of this project's reasons: {}",
                    settings.reject_reasons.join(", ")
                ),
            ))
        }
        (Decision::Approve, Some(_)) => Err(EngineError::validation(
            ErrorCode::ReasonNotAllowed,
            "reason_code",
            "a reason_code goes with a rejection only",
        )),
        _ if input.decision == Decision::Reject && input.corrected_annotation.is_some() => {
            Err(EngineError::validation(
                ErrorCode::CorrectionNotAllowed,
                "corrected_annotation",
                "corrected_annotation goes with an approval (fix and accept) only",
            ))
        }
        _ if input.decision == Decision::Reject && input.corrected_text.is_some() => {
            Err(EngineError::validation(
                ErrorCode::CorrectionNotAllowed,
                "corrected_text",
                "corrected_text goes with an approval (fix and accept) only",
            ))
        }
        _ => Ok(()),
    }
}

/// Approve or reject an item: the decision counts in the current round, and the
/// consensus rule (`items::consensus`) says where the item goes.
#[derive(Clone)]
pub struct Decide {
    pub item_id: Uuid,
    pub input: Box<DecisionInput>,
}

impl Transition for Decide {
    crate::replayable!();

    fn touches(&self) -> Touches {
        Touches::Item {
            id: self.item_id,
            read_ahead: true,
        }
    }

    type Out = (ItemRow, DecisionRow);

    fn check(&self, _: &Principal) -> Check {
        Check::Member(ProjectAction::Review)
    }

    async fn apply(self, at: &mut InProject<'_>) -> Result<(ItemRow, DecisionRow), EngineError> {
        decide(at, self.item_id, &self.input).await
    }
}

async fn decide(
    at: &mut InProject<'_>,
    item_id: Uuid,
    input: &DecisionInput,
) -> Result<(ItemRow, DecisionRow), EngineError> {
    let (id, now, me) = (at.id(), at.now, at.principal.user_id);
    // Stored settings were validated on write; a missing field falls back to its default.
    let settings: ProjectSettings =
        serde_json::from_value(at.project()?.settings.0.clone()).unwrap_or_default();
    let (item, tally) = at
        .item_with_tally(item_id)
        .await?
        .filter(|(item, _)| item.project_id == id)
        .ok_or(EngineError::NotFound { what: "item" })?;
    if item.contributor_id == me {
        return Err(EngineError::Refused {
            code: ErrorCode::SelfReview,
            message: "you cannot review your own item".into(),
        });
    }
    if item.status != ItemStatus::PendingReview {
        return Err(not_pending(&item));
    }
    if let (Some(holder), Some(until)) = (item.review_claimed_by, item.review_lease_until)
        && holder != me
        && until > now
    {
        return Err(EngineError::Conflict {
            code: ErrorCode::ReviewClaimed,
            message: "another reviewer holds this item; take the next one from the queue".into(),
        });
    }
    check_decision(input, &settings)?;
    let round = item.review_round;
    if tally.mine {
        return Err(EngineError::Conflict {
            code: ErrorCode::AlreadyDecided,
            message: "you already decided this item in this round".into(),
        });
    }
    let (mut approvals, mut rejections) = (tally.approvals, tally.rejections);
    match input.decision {
        Decision::Approve => approvals += 1,
        Decision::Reject => rejections += 1,
    }
    let outcome = verdict(
        approvals,
        rejections,
        settings.reviews_required,
        u32::try_from(round).unwrap_or(0),
        settings.max_rework_rounds,
    );

    let announced = match outcome {
        Verdict::Pending => None,
        Verdict::Approved => Some(WebhookEvent::ItemApproved),
        Verdict::ChangesRequested => Some(WebhookEvent::ItemChangesRequested),
        Verdict::Rejected => Some(WebhookEvent::ItemRejected),
    };
    // On a group's fast path a plain decision is kept for the group's one statement of
    // kept writes, and the item answered as that statement leaves it. Not one that
    // writes more than its row and its item, or reads them back: a correction, a
    // rework round (its notice lists the round's reasons), an announced event (its
    // payload reads the item).
    let keep = at.change.defers_rows()
        && input.corrected_text.is_none()
        && input.corrected_annotation.is_none()
        && outcome != Verdict::ChangesRequested
        && match announced {
            Some(event) => at.subscribers(event).await?.is_empty(),
            None => true,
        };

    // Fix and accept: the reviewer's correction becomes the current text.
    let text_revision = match &input.corrected_text {
        Some(text) => Some(add_reviewer_text(at.tx(), item_id, me, text, now).await?),
        None => None,
    };
    let decision = DecisionRow {
        id: Uuid::now_v7(),
        item_id,
        project_id: id,
        reviewer_id: me,
        round,
        decision: input.decision.as_str().into(),
        reason_code: input.reason_code.clone(),
        comment: input.comment.clone(),
        text_revision,
        outcome: outcome_str(outcome).into(),
        created_at: now,
    };

    let event = match outcome {
        Verdict::Pending => None,
        Verdict::Approved => Some(ItemEvent::ReviewApproved),
        Verdict::ChangesRequested => Some(ItemEvent::ChangesRequested),
        Verdict::Rejected => Some(ItemEvent::ReviewRejected),
    };
    // The decision and what it does to the item, in one statement; the item as the
    // verdict left it (read back by that statement).
    let effect = match event {
        None => DecisionEffect::Release,
        Some(event) => DecisionEffect::Settle {
            to: next_strs(event).1,
            rework: outcome == Verdict::ChangesRequested,
        },
    };
    let settled = if keep {
        let kept = KeptDecision {
            row: decision.clone(),
            settle_to: event.map(|event| next(event).1),
        };
        let after = kept.applied_to(&item);
        at.change.keep_decision(kept);
        Some(after)
    } else {
        store::reviews::record_decision(at.tx(), &decision, effect).await?
    };
    if let DecisionEffect::Settle { rework, .. } = effect {
        if settled.is_none() {
            return Err(not_editable(item.status));
        }
        if rework {
            let reasons = store::reviews::round_rejections(at.tx(), item_id, round).await?;
            store::reviews::add_notice(
                at.tx(),
                item.contributor_id,
                item_id,
                id,
                &reasons.join("; "),
                now,
            )
            .await?;
        }
    }
    if text_revision.is_some() {
        crate::items::carry_spans(at, item_id).await?;
    }
    // Fix and accept the labels: a revision by the reviewer, against the text as it now is.
    let annotation_revision = match &input.corrected_annotation {
        Some(values) => Some(
            crate::labels::write_annotation(at, &item, values.clone(), None)
                .await?
                .revision,
        ),
        None => None,
    };
    at.audit(
        "item.review_decided",
        ("item", item_id.to_string()),
        json!({
            "decision": decision.decision,
            "reason_code": decision.reason_code,
            "round": round,
            "outcome": decision.outcome,
            "text_revision": text_revision,
            "annotation_revision": annotation_revision,
        }),
    );
    if let Some(event) = announced {
        at.announce(event, ItemSubject::Item(item_id)).await?;
    }
    // Corrected text or labels may have touched the row since the verdict.
    let row = match settled {
        Some(row) if text_revision.is_none() && annotation_revision.is_none() => row,
        _ => live_item(at.tx(), id, item_id).await?,
    };

    let decided = input.decision.as_str();
    let reason = decision
        .reason_code
        .as_deref()
        .map_or("none", m::review_reason_label);
    let verdict = (outcome != Verdict::Pending)
        .then_some(item.submitted_at)
        .flatten()
        .map(|submitted| {
            let seconds = (now - submitted).num_milliseconds().max(0) as f64 / 1000.0;
            (outcome_str(outcome), seconds)
        });
    at.change.after_commit(move || {
        metrics::counter!(m::REVIEW_DECISIONS_TOTAL, "outcome" => decided, "reason" => reason)
            .increment(1);
        if let Some((label, seconds)) = verdict {
            metrics::histogram!(m::REVIEW_VERDICT_SECONDS, "verdict" => label).record(seconds);
        }
    });
    Ok((row, decision))
}

fn outcome_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Pending => "pending",
        Verdict::Approved => "approved",
        Verdict::ChangesRequested => "changes_requested",
        Verdict::Rejected => "rejected",
    }
}

/// A reviewer's corrected text, as a new human revision; its revision number.
async fn add_reviewer_text(
    tx: &mut Tx,
    item_id: Uuid,
    reviewer: Uuid,
    text: &str,
    now: DateTime<Utc>,
) -> Result<i32, EngineError> {
    let row = TextRow::human(item_id, reviewer, text.to_owned(), now);
    store::texts::add_revision(tx, &row).await?;
    Ok(store::texts::latest_revision(tx, item_id)
        .await?
        .unwrap_or(0))
}
